"""A graph student reading nearest logged queries: a query new to the log gets a neighbourhood,
the text fallback takes only pairs of which nothing is known, and the scorer counts exactly
the paths it takes; ranking losses train on batches of whole queries."""

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch

from graphrel.backbone import load_tokenizer
from graphrel.data.epoch_order import EpochOrder
from graphrel.data.features import PairFeaturizer
from graphrel.data.graph import SIMILAR_QUERY_METAPATHS, build_graph
from graphrel.data.tokens import WordpieceCache
from graphrel.models.korder import KOrderStudent
from graphrel.models.korder_data import StudentDataModule
from graphrel.scoring.korder_scorer import StudentScorer

from test_korder import quiet_trainer, synthetic_pairs, tiny_student


@pytest.fixture(scope="module")
def pairs():
    return synthetic_pairs()


@pytest.fixture(scope="module")
def featurizer(pairs):
    return PairFeaturizer(build_graph(pairs), WordpieceCache(load_tokenizer()), cap=4, similar_queries=3,
                          min_similarity=0.3)


def students(featurizer, **options):
    torch.manual_seed(0)
    text = tiny_student(0, neighbourhood_statistics=False)
    graph = tiny_student(2, text_fallback=options.pop("text_fallback", True), similar_queries=3,
                         min_similarity=0.3, **options)
    if graph.text_fallback is not None:
        graph.load_text_student(text)
    graph.attach_graph(featurizer.query_node_tokens, featurizer.product_node_tokens)
    return text.eval(), graph.eval()


def test_the_student_reads_the_similar_query_metapaths_and_statistics(featurizer):
    _, graph = students(featurizer)
    assert graph.metapaths[-2:] == SIMILAR_QUERY_METAPATHS
    assert tiny_student(0, neighbourhood_statistics=True, similar_queries=3).reads_similar_query_statistics
    assert not tiny_student(0, neighbourhood_statistics=False, similar_queries=3).reads_similar_query_statistics
    batch = featurizer.from_texts(["new"], ["q3 drill bit"], ["P-none"], ["drill bit set"])
    with torch.inference_mode():
        before = graph(batch)
        batch["similar_queries"] = batch["similar_queries"] + 0.5
        assert not torch.allclose(before, graph(batch))  # the statistics reach the head


def test_a_new_query_with_a_similar_logged_query_takes_the_graph_path(featurizer, pairs):
    text, graph = students(featurizer)
    logged = pairs["query"].iloc[0]  # e.g. "q0 drill bit": "drill bit q0" is a new query close to it
    similar = " ".join(reversed(logged.split()))
    batch = featurizer.from_texts(["new-1", "new-2"], [similar, "zzzz qqqq"], ["P-none", "P-none"],
                                  ["drill bit set", "drill bit set"])
    assert batch["similar_queries"][0, 0] > 0 and batch["similar_queries"][1, 0] == 0
    with torch.inference_mode():
        scores, attention = graph(batch, return_attention=True)
        assert attention["text_fallback"].tolist() == [False, True]  # nothing known of the second only
        assert scores[1] == pytest.approx(text(batch)[1].item(), abs=1e-6)
        assert scores[0] != pytest.approx(text(batch)[0].item(), abs=1e-6)


def test_the_scorer_counts_the_paths_the_model_takes(featurizer, pairs):
    _, graph = students(featurizer)
    scorer = StudentScorer(model=graph, featurizer=featurizer)
    rows = pd.DataFrame({"query_id": ["n1", "n2", "n3", pairs.query_id.iloc[0]],
                         "query": [" ".join(reversed(pairs["query"].iloc[0].split())), "zzzz qqqq", "zzzz qqqq",
                                   pairs["query"].iloc[0]],
                         "product_id": ["P-none", "P-none", pairs.product_id.iloc[0], "P-none"],
                         "product_text": ["drill bit set"] * 4})
    paths = scorer.paths(rows.query_id, rows.product_id, queries=rows["query"])
    batch = featurizer.from_texts(rows.query_id, rows["query"], rows.product_id, rows.product_text)
    with torch.inference_mode():
        taken = graph(batch, return_attention=True)[1]["text_fallback"]
    # n1: similar logged query; n2: nothing known; n3: its product has logged queries; logged query
    assert taken.tolist() == [False, True, False, False]
    assert paths == {"graph": 3, "text_fallback": 1, "queries_not_in_graph": 3, "products_not_in_graph": 3,
                     "built_neighbourhood": 1, "nothing_known": 1}
    with pytest.raises(ValueError, match="query texts"):
        scorer.paths(rows.query_id, rows.product_id)
    _, without = students(featurizer, text_fallback=False)  # no fallback: the graph path scores all
    assert StudentScorer(model=without, featurizer=featurizer).paths(rows.query_id, rows.product_id,
                                                                     queries=rows["query"]) == {
        **paths, "graph": 4, "text_fallback": 0}


def test_a_data_module_without_the_models_similar_queries_is_refused(pairs):
    from graphrel.errors import GraphrelInputError

    plain = PairFeaturizer(build_graph(pairs), WordpieceCache(load_tokenizer()), cap=4)
    data = StudentDataModule(batch_size=16)
    data.set_data(pairs, plain)
    model = tiny_student(2, similar_queries=3, min_similarity=0.3)
    with pytest.raises(GraphrelInputError, match="similar_queries"):
        quiet_trainer(1).fit(model, datamodule=data)


def test_query_groups_stay_together_in_a_shuffled_epoch():
    groups = np.repeat(np.arange(7), [3, 1, 4, 2, 5, 1, 2])
    order = EpochOrder(len(groups), True, seed=3, groups=groups).permutation(0)
    assert sorted(order) == list(range(len(groups)))
    seen = groups[order]
    runs = [g for i, g in enumerate(seen) if i == 0 or seen[i - 1] != g]
    assert len(runs) == 7 and sorted(runs) == list(range(7))  # each group one contiguous run
    assert not np.array_equal(order, np.arange(len(groups)))
    assert not np.array_equal(order, EpochOrder(len(groups), True, seed=3, groups=groups).permutation(1))


@pytest.mark.parametrize("ranking_loss", ["listwise", "margin_mse"])
def test_a_ranking_loss_changes_training_and_still_learns_the_teacher(featurizer, pairs, ranking_loss):
    from graphrel.losses import distillation_loss, temperature_targets

    def trained(**options):
        L.seed_everything(0, verbose=False)
        model = tiny_student(2, similar_queries=3, min_similarity=0.3, **options)
        data = StudentDataModule(batch_size=16, similar_queries=3, min_similarity=0.3,
                                 group_by_query=options.get("ranking_loss", "none") != "none")
        data.set_data(pairs, featurizer)
        quiet_trainer(8).fit(model, datamodule=data)
        batch = featurizer.from_nodes(*featurizer.neighbours.node_indices(pairs.query_id, pairs.product_id))
        with torch.inference_mode():
            logits = model.eval()(batch)
        teacher = torch.tensor(pairs.teacher_logit.values, dtype=torch.float32)
        return logits, distillation_loss(logits, temperature_targets(teacher)).item()

    plain, plain_loss = trained()
    ranked, ranked_loss = trained(ranking_loss=ranking_loss, ranking_weight=1.0)
    assert not torch.allclose(plain, ranked, atol=1e-4)
    assert ranked_loss < 0.6  # random logits sit near 0.69 + the margin of a 2-logit teacher


def test_bad_ranking_settings_are_refused():
    with pytest.raises(ValueError, match="ranking_loss"):
        tiny_student(2, ranking_loss="pairwise")
    with pytest.raises(ValueError, match="ranking_weight"):
        tiny_student(2, ranking_loss="listwise", ranking_weight=-1.0)
    with pytest.raises(ValueError, match="similar_queries"):
        tiny_student(2, similar_queries=-1)


def test_inference_neighbours_equal_the_training_path(featurizer, pairs):
    """At inference all metapaths' neighbours come from one stacked table of both node types;
    with gradients on (the training path) each is projected from its own type's vectors. Same
    logits and attention, known and absent neighbours alike."""
    _, graph = students(featurizer, text_fallback=False)
    sample = pairs.iloc[::3]
    batch = featurizer.from_texts(list(sample.query_id) + ["new"], list(sample["query"]) + ["drill bit q3"],
                                  list(sample.product_id) + ["P-none"], list(sample.product_text) + ["drill bit set"])
    assert (batch["Q-P/ids"] < 0).any() and (batch["Q~Q/ids"] >= 0).any()  # both kinds of neighbour
    with torch.inference_mode():
        fast, fast_attention = graph(batch, return_attention=True)
    with torch.enable_grad():
        slow, slow_attention = graph(batch, return_attention=True)
    torch.testing.assert_close(fast, slow.detach(), rtol=1e-5, atol=1e-6)
    for name in graph.metapaths:
        torch.testing.assert_close(fast_attention[name], slow_attention[name].detach(), rtol=1e-5, atol=1e-6)
