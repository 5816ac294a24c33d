import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from graphrel.models.bert2dnn_data import Bert2DnnDataModule
from graphrel.data.ngrams import NgramFeaturizer
from graphrel.errors import GraphrelInputError
from graphrel.losses import temperature_targets
from graphrel.models.bert2dnn import Bert2DnnStudent
from graphrel.scoring.bert2dnn_scorer import Bert2DnnScorer
from graphrel.models.bert2dnn_training import save_student, train_bert2dnn
from graphrel.run import PAIRS, TEACHER_SCORES
from helpers import one_thread  # noqa: F401 (autouse fixture: tiny models on one thread)

WORDS = ["drill", "bit", "hammer", "nail", "paint", "brush", "pipe", "valve", "door", "hinge", "light", "bulb"]
TINY = {"vocab_size": 30522, "hidden_size": 32}  # random wordpiece embeddings, the real tokenizer


def synthetic_run(seed=0, queries=40):
    """Pairs like a pipeline run: relevant when the product shares the query's first word."""
    rng = np.random.default_rng(seed)
    rows = []
    for q in range(queries):
        words = list(rng.choice(WORDS, 2, replace=False))
        split = "train" if q < queries * 0.6 else ("val" if q < queries * 0.8 else "test")
        for p in range(5):
            relevant = p < 2
            title = words[:1] + list(rng.choice(WORDS, 3)) if relevant else list(rng.choice(WORDS, 4))
            rows.append((f"q{q}", " ".join(words), f"P{q}-{p}", " ".join(title).title() + " (2-pack)",
                         float(relevant), split if p < 4 else "transfer"))
    frame = pd.DataFrame(rows, columns=["query_id", "query", "product_id", "product_text", "label", "split"])
    frame.loc[frame.split == "transfer", "label"] = np.nan
    # the teacher: relevant when the title starts with the query's first word
    same_first = frame["query"].str.split().str[0] == frame["product_text"].str.lower().str.split().str[0]
    frame["teacher_logit"] = np.where(same_first, 2.0, -2.0) + rng.normal(0, 0.3, len(frame))
    return frame


#: The paper's plain model (the class defaults add match features and the label term).
PLAIN = {"init": "random", "match_features": False, "label_weight": 0.0}


def tiny_student(**options):
    defaults = {**PLAIN, "embedding_dim": 16, "hidden": (32, 16), "backbone_config": TINY}
    return Bert2DnnStudent(**{**defaults, **options})


def batch_of(featurizer, queries, titles, logits=None):
    q_ids, q_off = featurizer.encode(queries)
    p_ids, p_off = featurizer.encode(titles)
    batch = {"query_ids": torch.from_numpy(q_ids), "query_offsets": torch.from_numpy(q_off),
             "product_ids": torch.from_numpy(p_ids), "product_offsets": torch.from_numpy(p_off)}
    if logits is not None:
        batch["teacher_logit"] = torch.as_tensor(logits, dtype=torch.float32)
        batch["label"] = torch.full((len(queries),), float("nan"))
    return batch


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("run")
    frame = synthetic_run()
    frame.drop(columns="teacher_logit").to_parquet(directory / PAIRS, index=False)
    scores = frame[["query_id", "product_id", "teacher_logit"]].assign(
        teacher_score=lambda f: 1 / (1 + np.exp(-f.teacher_logit)))
    scores.to_parquet(directory / TEACHER_SCORES, index=False)
    return directory


def test_paper_architecture_and_shapes():
    model = Bert2DnnStudent(num_embeddings=100, **PLAIN)
    widths = [layer.out_features for layer in model.mlp if isinstance(layer, torch.nn.Linear)]
    assert widths == [1024, 512, 128, 64, 1] and model.mlp[0].in_features == 4 * 64
    assert model.embedding.embedding_dim == 64 and model.embedding.mode == "sum"
    featurizer = NgramFeaturizer.fit(["drill bit", "paint brush"], min_count=1, num_buckets=100 - 9)
    batch = batch_of(featurizer, ["drill", "", "unseen"], ["drill bit set", "paint brush", ""])
    logits = model(batch)
    assert logits.shape == (3,) and torch.isfinite(logits).all()
    scores = model.scores(logits)
    assert ((scores >= 0) & (scores <= 1)).all()
    # sum / sqrt(n): a bag of n copies of one vector has norm sqrt(n) times the vector's
    vector = model.embedding.weight[5]
    bag = model.embed(torch.tensor([5, 5, 5, 5]), torch.tensor([0]))
    assert torch.allclose(bag[0], 2 * vector, atol=1e-6)
    assert model.embed(torch.tensor([5]), torch.tensor([0, 1])).abs().sum(1)[1] == 0  # empty bag -> zeros


def test_temperature_softens_targets_and_calibrated_scores_undo_it():
    logits = torch.tensor([-3.0, 0.0, 1.0, 3.0])
    t1, t4 = temperature_targets(logits, 1.0), temperature_targets(logits, 4.0)
    assert ((t4 - 0.5).abs() < (t1 - 0.5).abs())[[0, 2, 3]].all() and torch.allclose(t4[1], torch.tensor(0.5))
    featurizer = NgramFeaturizer.fit(["drill bit"], min_count=1, num_buckets=8)
    batch = batch_of(featurizer, ["drill", "bit"], ["drill bit", "paint"], logits=[2.0, -2.0])
    for temperature in (1.0, 4.0):
        model = tiny_student(num_embeddings=featurizer.num_embeddings, temperature=temperature)
        student = model(batch)
        want = torch.nn.functional.binary_cross_entropy_with_logits(student, torch.sigmoid(batch["teacher_logit"]
                                                                                          / temperature))
        assert torch.isclose(model.loss(batch), want)
        assert torch.allclose(model.scores(student), torch.sigmoid(temperature * student))
    raw = tiny_student(num_embeddings=featurizer.num_embeddings, temperature=4.0, calibrate_output=False)
    assert torch.allclose(raw.scores(torch.tensor([1.0])), torch.sigmoid(torch.tensor([1.0])))


@pytest.mark.parametrize("optimizer, learning_rate, factor", [("adagrad", 0.1, 0.9), ("adam", 0.01, 0.2)])
def test_loss_decreases_on_a_tiny_task(optimizer, learning_rate, factor):
    torch.manual_seed(0)
    frame = synthetic_run()
    featurizer = NgramFeaturizer.fit(pd.concat([frame["query"], frame.product_text]), min_count=1, num_buckets=64)
    batch = batch_of(featurizer, frame["query"].tolist(), frame.product_text.tolist(), frame.teacher_logit)
    targets = torch.sigmoid(batch["teacher_logit"])
    floor = -(targets * targets.log() + (1 - targets) * (1 - targets).log()).mean().item()  # least soft-target BCE
    model = tiny_student(optimizer=optimizer, learning_rate=learning_rate)
    model.attach_ngrams(featurizer)
    optimizers = model.configure_optimizers()
    optimizers = optimizers if isinstance(optimizers, list) else [optimizers]
    excess = []
    for _ in range(60):
        for optimizer in optimizers:
            optimizer.zero_grad()
        loss = model.loss(batch)
        loss.backward()
        for optimizer in optimizers:
            optimizer.step()
        excess.append(loss.item() - floor)
    assert excess[-1] < factor * excess[0]


@pytest.mark.parametrize("optimizer", ["adagrad", "adam"])
def test_frozen_table_trains_only_the_mlp(optimizer):
    frame = synthetic_run()
    featurizer = NgramFeaturizer.fit(pd.concat([frame["query"], frame.product_text]), min_count=1, num_buckets=16)
    batch = batch_of(featurizer, frame["query"].tolist(), frame.product_text.tolist(), frame.teacher_logit)
    model = tiny_student(optimizer=optimizer, embedding_lr=0.0)
    model.attach_ngrams(featurizer)
    optimizers = model.configure_optimizers()
    (optimizer,) = optimizers if isinstance(optimizers, list) else [optimizers]
    table, first = model.embedding.weight.detach().clone(), model.mlp[0].weight.detach().clone()
    model.loss(batch).backward()
    optimizer.step()
    assert torch.equal(model.embedding.weight.detach(), table)
    assert not torch.equal(model.mlp[0].weight.detach(), first)


def test_datamodule_splits_and_transfer_choices(run_dir):
    frame = synthetic_run()
    train_queries = set(frame.query_id[frame.split == "train"])
    n_train = (frame.split == "train").sum()
    n_transfer_train = ((frame.split == "transfer") & frame.query_id.isin(train_queries)).sum()
    expected = {"none": n_train, "train_queries": n_train + n_transfer_train,
                "all": n_train + (frame.split == "transfer").sum()}
    for transfer, count in expected.items():
        data = Bert2DnnDataModule(run_dir=str(run_dir), batch_size=16, transfer=transfer, min_count=1)
        data.setup("fit")
        assert len(data.frames["train"]) == count
        assert data.frames["train"].loc[data.frames["train"].split == "transfer", "label"].isna().all()
        assert (data.frames["val"].split == "val").all() and len(data.frames["test"]) == (frame.split == "test").sum()
    batch = next(iter(data.train_dataloader()))
    assert batch["query_offsets"].shape == (16,) and batch["teacher_logit"].shape == (16,)
    # every batch carries its pairs' exact n-gram overlap, computed from the batch's own bags
    from graphrel.data.ngrams import match_features

    want = match_features(*(batch[k].numpy() for k in ("query_ids", "query_offsets", "product_ids",
                                                      "product_offsets")))
    assert batch["match"].shape == (16, 3) and np.array_equal(batch["match"].numpy(), want)
    plain = Bert2DnnDataModule(run_dir=str(run_dir), batch_size=16, min_count=1, match_features=False)
    plain.setup("fit")
    assert "match" not in next(iter(plain.train_dataloader()))  # no overlap work for plain students
    assert sum(len(b["label"]) for b in data.val_dataloader()) == (frame.split == "val").sum()
    with pytest.raises(GraphrelInputError):
        Bert2DnnDataModule(run_dir=str(run_dir), transfer="everything")


def test_match_features_reach_the_mlp_in_forward_and_in_the_scorer(tmp_path):
    """match_features=True: the MLP also reads the pair's n-gram overlap; the batch, the
    forward pass and the scorer agree, and a model built with them refuses a batch without."""
    frame = synthetic_run()
    featurizer = NgramFeaturizer.fit(pd.concat([frame["query"], frame.product_text]), min_count=2, num_buckets=32)
    model = tiny_student(match_features=True)
    model.attach_ngrams(featurizer)
    model.eval()
    assert model.mlp[0].in_features == 4 * 16 + 3
    queries, titles = frame["query"].tolist(), frame.product_text.tolist()
    batch = batch_of(featurizer, queries, titles)
    with pytest.raises(ValueError, match="match_features"):
        model(batch)
    from graphrel.data.ngrams import match_features

    batch["match"] = torch.from_numpy(match_features(batch["query_ids"].numpy(), batch["query_offsets"].numpy(),
                                                     batch["product_ids"].numpy(), batch["product_offsets"].numpy()))
    with torch.inference_mode():
        want = model.scores(model(batch)).numpy()
    directory = save_student(model, featurizer, tmp_path / "student")
    got = Bert2DnnScorer.load(directory).score(frame.query_id, queries, frame.product_id, titles, batch_size=7)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_save_load_score_round_trip(tmp_path):
    frame = synthetic_run()
    featurizer = NgramFeaturizer.fit(pd.concat([frame["query"], frame.product_text]), min_count=2, num_buckets=32)
    model = tiny_student(temperature=2.0)
    model.attach_ngrams(featurizer)
    model.eval()
    directory = save_student(model, featurizer, tmp_path / "student")
    assert {p.name for p in directory.iterdir()} == {"student.json", "model.ckpt", "ngrams.json"}
    scorer = Bert2DnnScorer.load(directory)
    queries = frame["query"].tolist() + ["unseen cordless wrench"]
    titles = frame.product_text.tolist() + [""]
    got = scorer.score(range(len(queries)), queries, range(len(titles)), titles, batch_size=7)
    with torch.inference_mode():
        want = model.scores(model(batch_of(featurizer, queries, titles))).numpy()
    assert got.dtype == np.float32 and got.shape == (len(queries),)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # input order is kept: a permutation of the input permutes the scores
    order = np.random.default_rng(0).permutation(len(queries))
    permuted = scorer.score(order, [queries[i] for i in order], order, [titles[i] for i in order])
    np.testing.assert_allclose(permuted, got[order], rtol=1e-5, atol=1e-6)
    # bfloat16 MLP: the same scores to about 1e-2
    fast = Bert2DnnScorer.load(directory, dtype="bfloat16")
    np.testing.assert_allclose(fast.score(queries, queries, titles, titles), got, atol=2e-2)
    # `graphrel score` loads any student type through the manifest
    from graphrel.scoring.load import load_scorer

    assert isinstance(load_scorer(directory), Bert2DnnScorer) and load_scorer(directory).dtype == torch.float32
    # the manifest's scoring dtype is what `graphrel score` uses; an unknown one is refused
    save_student(model, featurizer, tmp_path / "fast", extra={"scoring_dtype": "bfloat16"})
    assert load_scorer(tmp_path / "fast").dtype == torch.bfloat16
    np.testing.assert_allclose(load_scorer(tmp_path / "fast").score(queries, queries, titles, titles), got, atol=2e-2)
    save_student(model, featurizer, tmp_path / "odd", extra={"scoring_dtype": "float8"})
    with pytest.raises(GraphrelInputError, match="unsupported scoring dtype"):
        load_scorer(tmp_path / "odd")
    # a rewrite replaces the directory whole
    save_student(model, featurizer, directory)
    assert Bert2DnnScorer.load(directory).score([0], ["drill"], [0], ["drill bit"]).shape == (1,)


def test_load_scorer_rejects_unknown_model_types(tmp_path):
    from graphrel.scoring.load import load_scorer

    (tmp_path / "student.json").write_text(json.dumps({"model": "SomethingElse"}))
    with pytest.raises(GraphrelInputError, match="unsupported student type 'SomethingElse'"):
        load_scorer(tmp_path)
    (tmp_path / "student.json").write_text("[1, 2]")
    with pytest.raises(GraphrelInputError, match="not a JSON object"):
        load_scorer(tmp_path)


def test_load_rejects_bad_directories(tmp_path):
    with pytest.raises(GraphrelInputError, match="no student.json"):
        Bert2DnnScorer.load(tmp_path)
    (tmp_path / "student.json").write_text(json.dumps({"model": "KOrderStudent", "checkpoint": "model.ckpt"}))
    with pytest.raises(GraphrelInputError, match="expected Bert2DnnStudent"):
        Bert2DnnScorer.load(tmp_path)
    (tmp_path / "student.json").write_text(json.dumps({"model": "Bert2DnnStudent", "checkpoint": "model.ckpt"}))
    with pytest.raises(GraphrelInputError, match="checkpoint not found"):
        Bert2DnnScorer.load(tmp_path)


def test_train_bert2dnn_on_a_run_writes_a_scorer_directory(run_dir, tmp_path):
    manifest = train_bert2dnn(run_dir, tmp_path / "bert2dnn", temperature=2.0, init="wordpiece", epochs=2,
                              batch_size=16, min_count=1, num_buckets=32, backbone_config=TINY,
                              model_options={"embedding_dim": 16, "hidden": (32, 16)})
    assert manifest["model"] == "Bert2DnnStudent" and manifest["temperature"] == 2.0
    assert 0 <= manifest["best_val_auc"] <= 1 and manifest["train_pairs"] > 0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind
    scorer = Bert2DnnScorer.load(tmp_path / "bert2dnn")
    assert scorer.model.hparams.init == "wordpiece" and scorer.featurizer.num_buckets == 32
    frame = synthetic_run()
    scores = scorer.score(frame.query_id, frame["query"], frame.product_id, frame.product_text)
    assert scores.shape == (len(frame),) and ((scores >= 0) & (scores <= 1)).all()
    # the checkpoint carries its vocabulary too
    assert scorer.model.featurizer().ngrams == scorer.featurizer.ngrams


def test_graphrel_fit_with_the_shipped_config(run_dir, tmp_path):
    """`graphrel fit --config configs/bert2dnn.yaml` trains and checkpoints with the vocabulary."""
    from graphrel.cli import main

    config = Path(__file__).resolve().parents[2] / "configs" / "bert2dnn.yaml"
    code = main(["fit", "--config", str(config), "--data.init_args.run_dir", str(run_dir),
                 "--data.init_args.min_count", "1", "--data.init_args.batch_size", "16",
                 "--model.init_args.init", "random", "--model.init_args.hidden", "[32, 16]",
                 "--trainer.max_epochs", "1", "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
                 "--trainer.default_root_dir", str(tmp_path)])
    assert code in (0, None)
    (checkpoint,) = tmp_path.rglob("*.ckpt")
    model = Bert2DnnStudent.load_from_checkpoint(checkpoint, map_location="cpu")
    assert model.hparams.num_embeddings == model.embedding.num_embeddings == model.featurizer().num_embeddings
    # and `graphrel test --ckpt_path` rebuilds the model from the checkpoint's hyper-parameters
    code = main(["test", "--config", str(config), "--data.init_args.run_dir", str(run_dir),
                 "--data.init_args.min_count", "1", "--ckpt_path", str(checkpoint), "--trainer.logger", "false",
                 "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(tmp_path / "test")])
    assert code in (0, None)


def test_logged_test_auc_is_the_metric_of_the_test_pairs(run_dir):
    """``graphrel test`` logs test_auc / test_spearman as graphrel.metrics on the same scores."""
    import lightning as L

    from graphrel.metrics import auc, spearman

    data = Bert2DnnDataModule(run_dir=str(run_dir), batch_size=16, min_count=1)
    data.setup("fit")
    model = tiny_student(match_features=True)
    model.attach_ngrams(data.ngrams)
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    logged = trainer.test(model, datamodule=data, verbose=False)[0]
    model.eval()
    with torch.inference_mode():
        batches = list(data.test_dataloader())
        scores = torch.cat([model.scores(model(batch)) for batch in batches]).numpy()
    labels = torch.cat([batch["label"] for batch in batches]).numpy()
    keep = ~np.isnan(labels)
    assert logged["test_auc"] == pytest.approx(auc(scores[keep], labels[keep]), abs=1e-6)
    assert logged["test_spearman"] == pytest.approx(spearman(scores[keep], labels[keep]), abs=1e-6)
