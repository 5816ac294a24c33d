import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch

from graphrel.backbone import load_tokenizer
from graphrel.models.korder_data import StudentDataModule
from graphrel.data.features import PairFeaturizer
from graphrel.data.graph import build_graph
from graphrel.data.tokens import WordpieceCache
from graphrel.models.korder import KOrderStudent

WORDS = ["drill", "bit", "hammer", "nail", "paint", "brush", "pipe", "valve", "door", "hinge", "light", "bulb"]


def synthetic_pairs(seed=0, queries=30):
    rng = np.random.default_rng(seed)
    rows = []
    for q in range(queries):
        qwords = list(rng.choice(WORDS, 2, replace=False))
        for p in range(4):
            overlap = p < 2
            twords = qwords[:1] + list(rng.choice(WORDS, 3)) if overlap else list(rng.choice(WORDS, 4))
            product = f"P{rng.integers(60)}"
            rows.append((f"q{q} " + " ".join(qwords), product, " ".join(twords) + f" {product}", float(overlap)))
    frame = pd.DataFrame(rows, columns=["query", "product_id", "product_text", "label"])
    frame["product_text"] = frame.groupby("product_id")["product_text"].transform("first")
    frame = frame.drop_duplicates(["query", "product_id"]).reset_index(drop=True)
    frame["query_id"] = frame["query"]
    frame["teacher_logit"] = np.where(frame.label > 0, 2.0, -2.0) + rng.normal(0, 0.3, len(frame))
    frame["teacher_score"] = 1 / (1 + np.exp(-frame.teacher_logit))
    split = np.where(np.arange(queries) < queries * 0.7, "train", "val")
    frame["split"] = split[frame["query"].str.extract(r"q(\d+)")[0].astype(int)]
    return frame


@pytest.fixture(scope="module")
def featurizer_and_pairs():
    pairs = synthetic_pairs()
    featurizer = PairFeaturizer(build_graph(pairs), WordpieceCache(load_tokenizer()), cap=4)
    return featurizer, pairs


def quiet_trainer(max_epochs: int) -> L.Trainer:
    return L.Trainer(max_epochs=max_epochs, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False, accelerator="cpu")


def tiny_student(order=2, **options):
    options = {"text_fallback": False, **options}
    return KOrderStudent(order=order, hidden=8, text_hidden=16, learning_rate=1e-2,
                         backbone_config={"vocab_size": 30522, "hidden_size": 16}, **options)


def test_order_zero_has_no_graph_parts_and_order_two_has_four_metapaths():
    assert not hasattr(tiny_student(0), "metapath_attention")
    k2 = tiny_student(2)
    assert set(k2.metapaths) == {"Q-P", "P-Q", "Q-P-Q", "P-Q-P"}
    assert k2.metapath_attention.empty.shape[0] == 4


def test_scores_unseen_pairs_and_returns_attention(featurizer_and_pairs):
    featurizer, _ = featurizer_and_pairs
    model = tiny_student(2)
    model.attach_graph(featurizer.query_node_tokens, featurizer.product_node_tokens)
    model.eval()
    batch = featurizer.from_texts(["never seen"], ["a brand new query"], ["P0"], ["drill bit set"])
    with torch.inference_mode():
        logits, attention = model(batch, return_attention=True)
    assert logits.shape == (1,) and torch.isfinite(logits).all()
    assert attention["Q-P"].sum() == 0  # unseen query: no Q-P neighbours
    assert torch.isclose(attention["metapaths"].sum(), torch.tensor(1.0))


def score_first_pair(model, pairs, edges):
    """Student score of the first pair of ``pairs`` in the graph built from ``edges``."""
    featurizer = PairFeaturizer(build_graph(edges), WordpieceCache(load_tokenizer()), cap=4)
    model.attach_graph(featurizer.query_node_tokens, featurizer.product_node_tokens)
    batch = featurizer.from_texts(pairs.query_id[:1], pairs["query"][:1], pairs.product_id[:1],
                                  pairs.product_text[:1])
    with torch.inference_mode():
        return model(batch).item()


def test_own_edge_teacher_score_never_reaches_the_pair(featurizer_and_pairs):
    _, pairs = featurizer_and_pairs
    model = tiny_student(2).eval()
    results = [score_first_pair(model, pairs, pairs.assign(teacher_score=np.where(pairs.index == 0, own, pairs.teacher_score)))
               for own in (0.01, 0.99)]
    assert results[0] == pytest.approx(results[1], abs=1e-6)


def test_neighbour_scores_change_the_graph_student(featurizer_and_pairs):
    _, pairs = featurizer_and_pairs
    model = tiny_student(1).eval()
    others = ((pairs.query_id == pairs.query_id[0]) & (pairs.index != 0)).to_numpy()
    results = [score_first_pair(model, pairs, pairs.assign(teacher_score=np.where(others, other, pairs.teacher_score)))
               for other in (0.01, 0.99)]
    assert results[0] != pytest.approx(results[1], abs=1e-6)


def test_training_learns_the_teacher(featurizer_and_pairs):
    featurizer, pairs = featurizer_and_pairs
    L.seed_everything(0, verbose=False)
    model = tiny_student(2)
    data = StudentDataModule(batch_size=16)
    data.set_data(pairs, featurizer)
    model.attach_graph(featurizer.query_node_tokens, featurizer.product_node_tokens)
    from graphrel.losses import distillation_loss, temperature_targets

    def loss_now():
        model.eval()
        batch = featurizer.from_nodes(*featurizer.neighbours.node_indices(pairs.query_id, pairs.product_id))
        with torch.inference_mode():
            return distillation_loss(model(batch), temperature_targets(torch.tensor(pairs.teacher_logit.values,
                                                                                   dtype=torch.float32))).item()

    before = loss_now()
    trainer = quiet_trainer(15)
    trainer.fit(model, datamodule=data)
    assert loss_now() < before - 0.05
    assert "val_auc" in trainer.callback_metrics


def test_neighbourhood_statistics_reach_the_head_only_when_enabled(featurizer_and_pairs):
    featurizer, pairs = featurizer_and_pairs
    batch = featurizer.from_nodes(*featurizer.neighbours.node_indices(pairs.query_id[:16], pairs.product_id[:16]))
    assert batch["neighbourhood"].shape == (16, 4)
    changed = {**batch, "neighbourhood": batch["neighbourhood"] + 1.0}
    for enabled in (False, True):
        torch.manual_seed(0)
        model = KOrderStudent(order=1, hidden=8, text_hidden=16, neighbourhood_statistics=enabled,
                              backbone_config={"vocab_size": 30522, "hidden_size": 16})
        model.attach_graph(featurizer.query_node_tokens, featurizer.product_node_tokens)
        model.eval()
        with torch.inference_mode():
            moved = not torch.allclose(model(batch), model(changed))
        assert moved == enabled


def test_checkpoint_names_its_class_for_the_lightning_cli_and_still_loads(tmp_path):
    model = tiny_student(1)
    checkpoint = {"hyper_parameters": dict(model.hparams), "state_dict": model.state_dict(),
                  "pytorch-lightning_version": L.__version__}
    model.on_save_checkpoint(checkpoint)
    assert checkpoint["hyper_parameters"]["_class_path"] == "graphrel.models.korder.KOrderStudent"
    torch.save(checkpoint, tmp_path / "model.ckpt")
    loaded = KOrderStudent.load_from_checkpoint(tmp_path / "model.ckpt", map_location="cpu")
    assert loaded.hparams.order == 1
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))


def test_logged_val_auc_and_spearman_are_the_metrics_of_the_val_pairs(featurizer_and_pairs):
    """torchmetrics in the module logs what graphrel.metrics gives on the same scores."""
    from graphrel.metrics import auc, spearman

    featurizer, pairs = featurizer_and_pairs
    L.seed_everything(0, verbose=False)
    model = tiny_student(2)
    data = StudentDataModule(batch_size=16)
    data.set_data(pairs, featurizer)
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    logged = trainer.validate(model, datamodule=data, verbose=False)[0]
    model.eval()
    with torch.inference_mode():
        batches = list(data.val_dataloader())
        scores = torch.cat([torch.sigmoid(model(batch)) for batch in batches]).numpy()
    labels = torch.cat([batch["label"] for batch in batches]).numpy()
    assert len(labels) == (pairs.split == "val").sum()
    assert logged["val_auc"] == pytest.approx(auc(scores, labels), abs=1e-6)
    assert logged["val_spearman"] == pytest.approx(spearman(scores, labels), abs=1e-6)


def text_and_graph_students(featurizer, seed=0):
    """A (random) text-only student and a k=2 student whose fallback is a copy of it."""
    torch.manual_seed(seed)
    text = tiny_student(0, neighbourhood_statistics=False)
    graph = tiny_student(2, text_fallback=True)
    graph.load_text_student(text)
    graph.attach_graph(featurizer.query_node_tokens, featurizer.product_node_tokens)
    return text.eval(), graph.eval()


def test_text_fallback_scores_a_new_query_exactly_as_the_text_student(featurizer_and_pairs):
    featurizer, pairs = featurizer_and_pairs
    text, graph = text_and_graph_students(featurizer)
    new = featurizer.from_texts(["never seen", "also new"], ["a brand new query", "hammer nail"], ["P0", "P1"],
                                ["drill bit set", "hinge door"])
    logged = featurizer.from_texts(pairs.query_id[:4], pairs["query"][:4], pairs.product_id[:4], pairs.product_text[:4])
    with torch.inference_mode():
        assert torch.equal(graph(new), text(new))  # every query new: the text student's logits
        assert not torch.allclose(graph(logged), text(logged))  # logged queries: the graph student
        mixed = featurizer.from_texts(["never seen", pairs.query_id[0]], ["a brand new query", pairs["query"][0]],
                                      ["P0", pairs.product_id[0]], ["drill bit set", pairs.product_text[0]])
        scores, attention = graph(mixed, return_attention=True)
        assert attention["text_fallback"].tolist() == [True, False]
        assert scores[0] == pytest.approx(text(new)[0].item(), abs=1e-6)
        assert scores[1] == pytest.approx(graph(logged)[0].item(), abs=1e-6)


def test_text_fallback_is_frozen_and_leaves_the_graph_students_initialisation_alone(featurizer_and_pairs):
    featurizer, pairs = featurizer_and_pairs
    torch.manual_seed(3)
    plain = tiny_student(2)
    after_plain = torch.rand(3)
    torch.manual_seed(3)
    with_fallback = tiny_student(2, text_fallback=True)
    assert torch.equal(torch.rand(3), after_plain)  # same random draws afterwards (dropout masks)
    for key, value in plain.state_dict().items():
        assert torch.equal(value, with_fallback.state_dict()[key])
    text, graph = text_and_graph_students(featurizer)
    before = {k: v.clone() for k, v in graph.text_fallback.state_dict().items()}
    graph.train()
    assert not graph.text_fallback.training  # no dropout in the frozen copy
    graph.configure_optimizers = lambda: torch.optim.SGD([p for p in graph.parameters() if p.requires_grad], lr=1.0)
    optimiser = graph.configure_optimizers()
    batch = featurizer.from_nodes(*featurizer.neighbours.node_indices(pairs.query_id[:16], pairs.product_id[:16]))
    graph(batch).sum().backward()
    optimiser.step()
    assert all(torch.equal(v, graph.text_fallback.state_dict()[k]) for k, v in before.items())
    assert graph.text_fallback["encoder"].embedding is graph.encoder.embedding  # one wordpiece matrix


def test_load_text_student_refuses_a_graph_student_or_a_student_without_fallback(featurizer_and_pairs):
    with pytest.raises(ValueError, match="text-only"):
        tiny_student(2, text_fallback=True).load_text_student(tiny_student(1))
    with pytest.raises(ValueError, match="another shape"):
        tiny_student(2, text_fallback=True).load_text_student(
            KOrderStudent(order=0, hidden=8, text_hidden=32, neighbourhood_statistics=False, text_fallback=False,
                          backbone_config={"vocab_size": 30522, "hidden_size": 16}))
    with pytest.raises(ValueError, match="no text fallback"):
        tiny_student(2).load_text_student(tiny_student(0, neighbourhood_statistics=False))


def test_fitting_a_fallback_student_without_the_runs_text_student_is_a_clear_error(featurizer_and_pairs, tmp_path):
    from graphrel.errors import GraphrelInputError

    featurizer, pairs = featurizer_and_pairs
    data = StudentDataModule(run_dir=str(tmp_path), batch_size=16)
    data.set_data(pairs, featurizer)
    trainer = quiet_trainer(1)
    with pytest.raises(GraphrelInputError, match="text-only student") as error:
        trainer.fit(tiny_student(2, text_fallback=True), datamodule=data)
    assert "student_k0" in str(error.value)
