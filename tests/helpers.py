"""Helpers shared by the tests of ``graphrel score`` and of bad input: the command line in
this process, its one-line errors, a pairs file, a stand-in model, a tiny real run."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

import graphrel.scoring.streaming as streaming
from graphrel.cli import main
from fake_cli import FakeScorer

REPO_ROOT = Path(__file__).resolve().parent.parent


def tiny_run_dir(tmp_path_factory) -> Path:
    """A run of ``configs/tiny_test.yaml`` on the real data, built once per test session
    (later callers reuse it); skips when the real data is absent."""
    from conftest import real_data_path

    data = real_data_path()
    if data is None:
        pytest.skip("real Home Depot data not found (see data/README.md)")
    run = tmp_path_factory.getbasetemp() / "tiny_student_run"
    if not (run / "metrics.json").is_file():
        assert main(["pipeline", "--config", str(REPO_ROOT / "configs" / "tiny_test.yaml"), "--data.path", str(data),
                     "--run-dir", str(run), "--no-progress"]) == 0
    return run


@pytest.fixture
def fake_model(monkeypatch, tmp_path):
    """A model directory served by FakeScorer."""
    monkeypatch.setattr(streaming, "_load_scorer", lambda model_dir: FakeScorer())
    model = tmp_path / "model"
    model.mkdir()
    return model


def pairs_csv(path, n=1000, repeat_every=0, labels=False):
    rows = []
    for i in range(n):
        j = i - 1 if repeat_every and i % repeat_every == 0 and i else i  # a repeat of the previous pair
        row = {"query": f"query {j % 37}", "product_id": f"p{j}", "product_text": f"product {'x' * (j % 11)} {j}"}
        if labels:
            row["label"] = (j % 3) + 1
        rows.append(row)
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def run_cli(capsys, *argv):
    """``graphrel ARGV`` in this process: exit code, stdout and stderr (log lines included)."""
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out.strip(), captured.err.strip()


def assert_one_line_error(code, err, *needles):
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("graphrel: error:") and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, (needle, err)


class Crash(Exception):
    """A simulated crash while scoring."""


def crash_at(monkeypatch, chunk_index):
    """Make scoring crash when it reaches chunk ``chunk_index``."""
    write = streaming._write_shard

    def failing(parts, index, chunk, scorer, batch_size):
        if index == chunk_index:
            raise Crash(index)
        return write(parts, index, chunk, scorer, batch_size)

    monkeypatch.setattr(streaming, "_write_shard", failing)


def score_until_crash(monkeypatch, model, source, out, chunk_index: int, **options) -> Path:
    """``score_file`` crashed at chunk ``chunk_index``; the parts manifest's path (to edit or read)."""
    from graphrel.scoring.score_parts import MANIFEST, parts_dir

    with monkeypatch.context() as patch:
        crash_at(patch, chunk_index)
        with pytest.raises(Crash):
            streaming.score_file(model, source, out, chunk_size=100, **options)
    return parts_dir(out) / MANIFEST


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models: one thread is faster than two contended ones on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
