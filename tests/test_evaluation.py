"""Evaluation protocols (new_query, new_pairs), symmetric timing, and the BERM-O targets."""

import numpy as np
import pandas as pd
import pytest
import torch

from graphrel.evaluation import add_ratios, hold_out_test_pairs, median_seconds, protocol_edges
from graphrel.losses import logits_for_targets, temperature_targets


def labelled_pairs(seed=0, queries=40):
    rng = np.random.default_rng(seed)
    rows = []
    for q in range(queries):
        split = ("train", "val", "test")[q % 3]
        for p in rng.choice(200, size=rng.integers(1, 9), replace=False):
            rows.append((f"q{q}", f"p{p}", split))
    return pd.DataFrame(rows, columns=["query_id", "product_id", "split"])


def test_half_of_each_test_query_is_context_the_rest_evaluated():
    pairs = labelled_pairs()
    out = hold_out_test_pairs(pairs, context_fraction=0.5, seed=3)
    assert (out.split[pairs.split != "test"] == pairs.split[pairs.split != "test"]).all()  # only test pairs move
    test = out[pairs.split == "test"]
    for query, group in test.groupby("query_id"):
        n = len(group)
        assert (group.split == "test_context").sum() == n // 2, query
        assert (group.split == "test").sum() == n - n // 2, query  # a query with one pair keeps it evaluated
    again = hold_out_test_pairs(pairs, context_fraction=0.5, seed=3)
    other = hold_out_test_pairs(pairs, context_fraction=0.5, seed=4)
    assert (again.split == out.split).all() and (other.split != out.split).any()
    with pytest.raises(ValueError, match="context_fraction"):
        hold_out_test_pairs(pairs, context_fraction=1.0, seed=0)


def test_protocol_graphs_never_hold_an_evaluated_pair():
    pairs = hold_out_test_pairs(labelled_pairs(), context_fraction=0.5, seed=0)
    transfer = pairs.drop_duplicates("query_id").assign(product_id=lambda f: f.query_id + "-t", split="transfer")
    scored = pd.concat([pairs, transfer], ignore_index=True)
    new_pairs, new_query = protocol_edges(scored, "new_pairs"), protocol_edges(scored, "new_query")
    evaluated = set(zip(*scored[scored.split == "test"][["query_id", "product_id"]].to_numpy().T))
    for edges in (new_pairs, new_query):
        assert not evaluated & set(zip(edges.query_id, edges.product_id))
    # new_pairs keeps every other pair: the test queries' context and transfer candidates included
    assert len(new_pairs) == (scored.split != "test").sum()
    assert (new_pairs.split == "test_context").any()
    # new_query: no edge of a val or test query at all, every edge of a training query
    train_queries = set(scored.query_id[scored.split == "train"])
    assert set(new_query.query_id) == train_queries
    assert len(new_query) == scored.query_id.isin(train_queries).sum()
    with pytest.raises(ValueError, match="unknown protocol"):
        protocol_edges(scored, "old")


def test_every_timed_run_starts_cold_after_a_warm_up_on_other_pairs():
    calls = []
    timed, warmup = pd.DataFrame({"x": range(5)}), pd.DataFrame({"x": range(100, 102)})

    def score(frame):
        calls.append(("score", list(frame.x)))

    seconds = median_seconds(score, timed, warmup=warmup, repeats=3, reset=lambda: calls.append(("reset",)))
    assert calls == [("reset",), ("score", [100, 101]), ("score", list(range(5)))] * 3
    assert seconds >= 0
    with pytest.raises(ValueError, match="repeats"):
        median_seconds(score, timed, warmup=warmup, repeats=0)


def test_ratios_to_the_teacher():
    models = add_ratios({"teacher": {"auc": 0.8, "spearman": 0.5, "ndcg@10": 0.9, "pairs_per_second": 100},
                         "student": {"auc": 0.72, "spearman": 0.55, "ndcg@10": 0.9, "pairs_per_second": 5000}})
    assert models["student"]["ratio_to_teacher"] == pytest.approx({"auc": 0.9, "spearman": 1.1, "ndcg@10": 1.0})
    assert models["student"]["speedup_vs_teacher"] == 50
    assert "ratio_to_teacher" not in models["teacher"]


@pytest.mark.parametrize("temperature", [1.0, 2.0, 0.5])
def test_online_student_learns_the_graph_students_scores_at_any_temperature(temperature):
    scores = torch.tensor([0.01, 0.2, 0.5, 0.73, 0.999])
    targets = temperature_targets(logits_for_targets(scores, temperature), temperature)
    torch.testing.assert_close(targets, scores, atol=1e-6, rtol=0)


def test_pipeline_distils_bermo_from_the_graph_students_scores_not_their_square_of_temperature(tmp_path,
                                                                                             monkeypatch):
    """BERM-O targets = the k-order student's scores, whatever the student temperature."""
    import graphrel.scoring
    from graphrel.pipeline import Pipeline, PipelineConfig, StudentConfig

    graph_scores = np.array([0.9, 0.2, 0.6], dtype=np.float32)

    class FakeScorer:
        @staticmethod
        def score(query_ids, queries, product_ids, product_texts):
            return graph_scores[: len(query_ids)]

    monkeypatch.setattr(graphrel.scoring.StudentScorer, "load", classmethod(lambda cls, directory: FakeScorer()))
    captured = {}
    pipeline = Pipeline(PipelineConfig(student=StudentConfig(temperature=2.0)), tmp_path)
    monkeypatch.setattr(pipeline, "fit_student", lambda name, order, frame, featurizer, **kw: captured.update(
        frame=frame, **kw))
    scored = pd.DataFrame({"query_id": ["a", "a", "b", "c"], "query": ["a"] * 2 + ["b", "c"],
                           "product_id": ["1", "2", "3", "4"], "product_text": ["t"] * 4,
                           "split": ["train", "transfer", "train", "val"],
                           "teacher_logit": np.float32([0.1, 0.2, 0.3, 0.4])})
    pipeline.fit_online_student(scored, None, tmp_path / "student_korder")
    learnt = temperature_targets(torch.from_numpy(captured["frame"].teacher_logit.to_numpy()[:3]), 2.0)
    np.testing.assert_allclose(learnt.numpy(), graph_scores, atol=1e-5)
    assert captured["frame"].teacher_logit.iloc[3] == np.float32(0.4)  # val pairs are not rescored
