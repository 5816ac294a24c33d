"""Scale-out with Lightning's own DDP strategy on CPU (gloo): student fit and predict on two
processes from a YAML config, predictions sharded per rank and merged in input order.

The real-data tests run Lightning in subprocesses (``python -m graphrel.cli`` and the
``graphrel`` console script): DDP re-runs the command line for rank 1, which must not be
pytest's.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from graphrel.scoring.prediction_writer import list_shards, merge_prediction_shards, shard_path

SUBPROCESS_TIMEOUT = 600  # seconds; a hung rank must not hang CI


# -- unit tests (no data) ------------------------------------------------------------------
def _write_shard(directory: Path, rank: int, row_ids, scores) -> None:
    pd.DataFrame({"row_id": np.asarray(row_ids, np.int64), "score": np.asarray(scores, np.float32)}).to_parquet(
        shard_path(directory, rank), index=False)


def test_merge_drops_padding_duplicates_and_restores_order(tmp_path):
    # DistributedSampler-style: rank r gets rows r, r+2, ...; rank 1 is padded with row 10 again.
    _write_shard(tmp_path, 0, [10, 12, 14], [0.10, 0.12, 0.14])
    _write_shard(tmp_path, 1, [11, 13, 10], [0.11, 0.13, 0.10])
    merged = merge_prediction_shards(tmp_path, expected_rows=5)
    assert merged["row_id"].tolist() == [10, 11, 12, 13, 14]
    np.testing.assert_allclose(merged["score"], [0.10, 0.11, 0.12, 0.13, 0.14], atol=1e-6)
    assert pd.read_parquet(tmp_path / "predictions.parquet").equals(merged)
    assert not list(tmp_path.glob("*.tmp"))


def test_merge_orders_shards_by_rank_number(tmp_path):
    for rank in (0, 2, 10):  # lexical order would put rank 10 before rank 2
        _write_shard(tmp_path, rank, [5], [rank / 100])
    assert [p.name for p in list_shards(tmp_path)] == [
        "predictions-rank0.parquet", "predictions-rank2.parquet", "predictions-rank10.parquet"]
    assert merge_prediction_shards(tmp_path)["score"].item() == pytest.approx(0.0)  # lowest rank kept


def test_merge_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        merge_prediction_shards(tmp_path)
    _write_shard(tmp_path, 0, [0, 1], [0.5, 0.5])
    with pytest.raises(ValueError, match="expected 3"):
        merge_prediction_shards(tmp_path, expected_rows=3)
    assert not (tmp_path / "predictions.parquet").exists()
    pd.DataFrame({"row_id": [2]}).to_parquet(shard_path(tmp_path, 1))
    with pytest.raises(ValueError, match="score"):
        merge_prediction_shards(tmp_path)


class _StubNeighbours:
    def node_indices(self, query_ids, product_ids):
        return np.arange(len(query_ids)), np.arange(len(product_ids))


class _StubFeaturizer:
    neighbours = _StubNeighbours()

    def from_nodes(self, query_index, product_index, hide_query=None):
        hidden = np.zeros(len(query_index), bool) if hide_query is None else hide_query
        return {"query_tokens": torch.as_tensor(query_index)[:, None], "hidden": torch.as_tensor(hidden)}


def test_training_shuffle_is_the_same_on_every_rank():
    """Each DDP rank reads only its share of the batches (rank 1 never reads item 0); all
    ranks must cut the same epoch permutation, so together they see every row once."""
    from graphrel.models.korder_data import GraphBatches

    frame = pd.DataFrame({"query_id": list("abcdefghij"), "product_id": list("0123456789"),
                          "teacher_logit": 0.0, "label": np.nan}, index=np.arange(100, 110))
    for epoch in (0, 1):
        ranks = [GraphBatches(_StubFeaturizer(), frame, 3, True, 0, epoch_of=lambda epoch=epoch: epoch) for _ in (0, 1)]
        seen = [ranks[i % 2][i]["row_id"] for i in range(4)]  # DistributedSampler: rank i % 2 reads item i
        assert sorted(torch.cat(seen).tolist()) == list(range(100, 110))
    # the rows read as new queries are drawn per (seed, epoch, item): the same on every rank, a share of all
    hidden = []
    for epoch in (0, 1):
        ranks = [GraphBatches(_StubFeaturizer(), frame, 3, True, 0, epoch_of=lambda epoch=epoch: epoch,
                          new_query_share=0.5) for _ in (0, 1)]
        hidden.append([ranks[0][i]["hidden"].tolist() for i in range(4)])
        assert hidden[-1] == [ranks[1][i]["hidden"].tolist() for i in range(4)]
    assert hidden[0] != hidden[1] and 0 < sum(map(sum, hidden[0])) < 10
    single = GraphBatches(_StubFeaturizer(), frame, 3, True, 0)  # no trainer: epoch counted by item 0
    epoch0 = torch.cat([single[i]["row_id"] for i in range(4)])
    again = GraphBatches(_StubFeaturizer(), frame, 3, True, 0, epoch_of=lambda: 0)
    assert torch.equal(epoch0, torch.cat([again[i]["row_id"] for i in range(4)]))


def _bag_pairs(n: int = 10) -> pd.DataFrame:
    """Teacher-scored run pairs whose ``teacher_logit`` is the row number (to tell rows apart)."""
    words = ["drill", "bit", "hammer", "nail", "paint", "brush", "pipe", "valve", "door", "hinge"]
    return pd.DataFrame({"query_id": [f"q{i}" for i in range(n)], "query": [words[i % 10] for i in range(n)],
                         "product_text": [f"{words[(3 * i) % 10]} set" for i in range(n)],
                         "teacher_logit": np.arange(n, dtype=np.float32), "label": 1.0, "split": "train"})


def test_bert2dnn_training_shuffle_is_the_same_on_every_rank():
    """As for the graph students: BERT2DNN bag batches follow the trainer's epoch, not the
    reads of item 0, so the ranks' shares of an epoch together hold every row once."""
    from graphrel.models.bert2dnn_data import BagBatches
    from graphrel.data.ngrams import NgramFeaturizer

    frame = _bag_pairs()
    featurizer = NgramFeaturizer.fit(pd.concat([frame["query"], frame["product_text"]]).to_numpy(dtype=object),
                                     min_count=1, num_buckets=8)
    for epoch in (0, 1, 2):
        ranks = [BagBatches(featurizer, frame, 3, True, 0, epoch_of=lambda epoch=epoch: epoch) for _ in (0, 1)]
        seen = [ranks[i % 2][i]["teacher_logit"] for i in range(4)]  # rank i % 2 reads item i
        assert sorted(torch.cat(seen).long().tolist()) == list(range(10))
    epochs = [torch.cat([BagBatches(featurizer, frame, 3, True, 0, epoch_of=lambda e=e: e)[i]["teacher_logit"]
                         for i in range(4)]) for e in (0, 1)]
    assert not torch.equal(epochs[0], epochs[1])  # a new order each epoch


def test_bert2dnn_datamodule_follows_the_trainers_epoch():
    """Bert2DnnDataModule hands its training batches the trainer's current epoch: two ranks'
    datamodules at the same epoch cut the same permutation (rank 1 never reads item 0)."""
    from types import SimpleNamespace

    from graphrel.models.bert2dnn_data import Bert2DnnDataModule

    frame = _bag_pairs()
    for epoch in (0, 3):
        shares = []
        for rank in (0, 1):
            data = Bert2DnnDataModule(batch_size=3, min_count=1, num_buckets=8, transfer="none")
            data.set_pairs(frame)
            data.trainer = SimpleNamespace(current_epoch=epoch)
            dataset = data.train_dataloader().dataset
            shares += [dataset[i]["teacher_logit"] for i in range(rank, len(dataset), 2)]
        rows = torch.cat(shares).long()
        assert sorted(rows.tolist()) == list(range(10))
        expected = np.random.default_rng(0 + epoch).permutation(10)  # seed + the trainer's epoch
        assert torch.equal(torch.cat([shares[0], shares[2], shares[1], shares[3]]).long(),
                           torch.from_numpy(expected))


def test_unknown_predict_split_is_a_user_error():
    from graphrel.models.korder_data import StudentDataModule
    from graphrel.errors import GraphrelInputError

    with pytest.raises(GraphrelInputError, match="predict_split"):
        StudentDataModule(predict_split="everything")


# -- real data: DDP in subprocesses -----------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    from conftest import REPO_ROOT, real_data_path

    from graphrel.cli import main

    path = real_data_path()
    if path is None:
        pytest.skip("real Home Depot data not found (see data/README.md)")
    run = tmp_path_factory.mktemp("ddp") / "run"
    assert main(["pipeline", "--config", str(REPO_ROOT / "configs" / "tiny_test.yaml"), "--data.path", str(path),
                 "--run-dir", str(run), "--no-progress",  # smaller still: ~2/3 of the CPU time
                 "--data.max_queries", "150", "--teacher.max_train_pairs", "200", "--teacher.max_val_pairs", "100"]) == 0
    return run


def _tiny_ddp_config(run: Path, directory: Path) -> Path:
    """configs/korder_ddp.yaml with a tiny student, a few batches and paths in ``directory``."""
    from conftest import REPO_ROOT

    config = yaml.safe_load((REPO_ROOT / "configs" / "korder_ddp.yaml").read_text())
    assert config["trainer"]["strategy"] == "ddp" and config["trainer"]["devices"] == 2
    config["trainer"].update(max_epochs=1, limit_train_batches=3, limit_val_batches=2, num_sanity_val_steps=0,
                             logger=False, enable_progress_bar=False, enable_model_summary=False,
                             default_root_dir=str(directory))
    checkpoint, writer = config["trainer"]["callbacks"]
    assert writer["class_path"] == "graphrel.scoring.prediction_writer.ParquetPredictionWriter"
    checkpoint["init_args"].update(dirpath=str(directory / "checkpoints"), filename="student")
    # text_dim, text_hidden and num_kernels as the run's text student, the graph student's fallback
    config["model"]["init_args"].update(hidden=8, backbone_config={"vocab_size": 30522, "hidden_size": 32})
    config["data"]["init_args"].update(run_dir=str(run), batch_size=32, cap=4)
    path = directory / "tiny_ddp.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    for key in ("LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "PL_GLOBAL_SEED"):
        env.pop(key, None)
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    return done


@pytest.fixture(scope="module")
def ddp_fit(tiny_run, tmp_path_factory):
    directory = tmp_path_factory.mktemp("ddp_fit")
    config = _tiny_ddp_config(tiny_run, directory)
    # --verbose: the test reads Lightning's INFO lines (ranks, backend), hidden by default
    done = _run([sys.executable, "-m", "graphrel.cli", "fit", "--verbose", "--config", str(config)], directory)
    return config, directory, done


@pytest.mark.real_data
def test_student_fit_on_two_ddp_processes(ddp_fit):
    _, directory, done = ddp_fit
    log = done.stdout + done.stderr
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in log and "distributed_backend=gloo" in log
    checkpoint = directory / "checkpoints" / "student.ckpt"
    assert checkpoint.is_file()
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    assert state["global_step"] == 3  # limit_train_batches steps, in lock-step on both ranks


@pytest.mark.real_data
def test_ddp_predict_matches_single_process(ddp_fit, tiny_run):
    from graphrel.cli import main

    config, directory, _ = ddp_fit
    checkpoint = str(directory / "checkpoints" / "student.ckpt")
    single, multi = directory / "pred_single", directory / "pred_ddp"
    # one process, in this process (no DDP launch)
    assert main(["predict", "--config", str(config), "--ckpt_path", checkpoint, "--trainer.devices", "1",
                 "--trainer.strategy", "auto", "--trainer.callbacks.init_args.output_dir", str(single)]) == 0
    # two processes, through the console script (Lightning re-runs its command line for rank 1)
    script = Path(sys.executable).with_name("graphrel")
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "graphrel.cli"]
    _run(command + ["predict", "--config", str(config), "--ckpt_path", checkpoint,
                    "--trainer.callbacks.init_args.output_dir", str(multi)], directory)

    pairs = pd.read_parquet(tiny_run / "pairs.parquet")
    test_rows = np.flatnonzero((pairs["split"] == "test").to_numpy())
    expected = pd.read_parquet(single / "predictions.parquet")
    merged = pd.read_parquet(multi / "predictions.parquet")
    shards = [pd.read_parquet(p) for p in list_shards(multi)]
    assert len(shards) == 2 and all(len(s) > 0 for s in shards)  # both ranks scored a share
    assert sorted(np.concatenate([s["row_id"] for s in shards]).tolist()) == test_rows.tolist()
    for frame in (expected, merged):  # every test pair exactly once, in input order
        assert frame["row_id"].tolist() == test_rows.tolist()
        assert frame["query_id"].tolist() == pairs["query_id"].to_numpy()[test_rows].tolist()
        assert frame["score"].between(0, 1).all()
    np.testing.assert_allclose(merged["score"], expected["score"], atol=1e-5, rtol=0)
