"""Streaming, crash-safe, resumable batch scoring (graphrel.scoring.streaming.score_file).

Fast tests use a stand-in scorer (no model); the kill test SIGKILLs a real ``graphrel score``
process part-way through, on a tiny student trained once per module from the real data.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pandas as pd
import pytest

import graphrel.scoring.score_parts as score_parts
import graphrel.scoring.streaming as streaming
from graphrel.data.datasets import load_dataset
from graphrel.errors import GraphrelInputError
from graphrel.scoring.score_parts import MANIFEST, parts_dir
from graphrel.scoring.streaming import CHUNK_DELAY_ENV, score_file
from fake_cli import FakeScorer
from helpers import (Crash, assert_one_line_error, crash_at, fake_model, pairs_csv, run_cli,  # noqa: F401
                     score_until_crash, tiny_run_dir)


# ----------------------------------------------------------------------------- streaming (stand-in scorer)


def test_every_row_scored_in_order_with_flat_shards(fake_model, tmp_path, caplog):
    source = pairs_csv(tmp_path / "pairs.csv", n=1000, repeat_every=50, labels=True)
    out = tmp_path / "scores.parquet"
    with caplog.at_level(logging.WARNING, logger="graphrel"):
        summary = score_file(fake_model, source, out, chunk_size=64, label_column="label", label_min=1,
                             label_max=3)
    scored = pd.read_parquet(out)
    expected = load_dataset("generic", source, keep_duplicates=True, label_column="label", label_min=1,
                            label_max=3).frame
    assert list(scored.columns) == ["row_id", "query_id", "product_id", "score", "label"]
    assert scored["row_id"].tolist() == list(range(1, 1001))
    assert scored["query_id"].tolist() == expected["query_id"].tolist()
    assert scored["product_id"].tolist() == expected["product_id"].tolist()
    assert scored["label"].tolist() == expected["label"].tolist()
    assert scored["score"].dtype == np.float32 and scored["score"].between(0, 1).all()
    reference = FakeScorer().score(None, expected["query"], None, expected["product_text"])
    assert np.array_equal(scored["score"].to_numpy(), reference)
    n_repeats = int(expected.duplicated(["query_id", "product_id"]).sum())
    assert n_repeats == 19
    assert (summary.rows, summary.chunks, summary.repeated_pairs) == (1000, 16, 19)
    assert any("19 repeated" in r.getMessage() for r in caplog.records)
    assert not parts_dir(out).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "pairs.csv", "scores.parquet",
                                                          "scores.parquet.summary.json"]


def test_no_label_column_without_labels(fake_model, tmp_path):
    source = pairs_csv(tmp_path / "pairs.csv", n=10)
    score_file(fake_model, source, tmp_path / "out.parquet", chunk_size=3)
    assert list(pd.read_parquet(tmp_path / "out.parquet").columns) == ["row_id", "query_id", "product_id", "score"]


@pytest.mark.parametrize("fmt", ["parquet", "jsonl", "csv.gz", "esci", "home_depot"])
def test_formats_stream_like_the_loaders(fake_model, tmp_path, fmt):
    frame = pd.read_csv(pairs_csv(tmp_path / "base.csv", n=300, repeat_every=7))
    options, kind = {}, "generic"
    if fmt == "parquet":
        source = tmp_path / "pairs.parquet"
        frame.to_parquet(source, row_group_size=41)  # row groups not aligned with chunks
    elif fmt == "jsonl":
        source = tmp_path / "pairs.jsonl"
        lines = [json.dumps(r) for r in frame.to_dict("records")]
        lines.insert(5, "")  # a blank line: row ids are line numbers
        source.write_text("\n".join(lines) + "\n")
    elif fmt == "csv.gz":
        source = tmp_path / "pairs.csv.gz"
        frame.to_csv(source, index=False, compression="gzip")
    elif fmt == "esci":
        kind, source = "esci", tmp_path / "esci.csv"
        frame.assign(product_title=frame["product_text"], esci_label=np.array(list("ESCI"))[np.arange(300) % 4],
                     product_locale=np.where(np.arange(300) % 3, "us", "es")).to_csv(source, index=False)
        options = {"locale": "es"}
    else:
        kind, source = "home_depot", tmp_path / "train.csv.zip"
        hd = pd.DataFrame({"id": range(300), "product_uid": frame["product_id"].str[1:],
                           "product_title": frame["product_text"], "search_term": frame["query"],
                           "relevance": 1 + (np.arange(300) % 5) / 2})
        with zipfile.ZipFile(source, "w") as zf:
            zf.writestr("train.csv", hd.to_csv(index=False).encode("latin-1"))
    score_file(fake_model, source, tmp_path / "out.parquet", kind=kind, chunk_size=50, **options)
    scored = pd.read_parquet(tmp_path / "out.parquet")
    expected = load_dataset(kind, source, keep_duplicates=True, **options).frame
    assert scored["row_id"].tolist() == expected["row_id"].tolist()
    assert scored["product_id"].tolist() == expected["product_id"].tolist()
    if kind != "generic":
        assert scored["label"].tolist() == expected["label"].tolist()


def test_crash_then_resume_equals_uninterrupted(fake_model, tmp_path, monkeypatch):
    source = pairs_csv(tmp_path / "pairs.csv", n=700, repeat_every=9)
    reference = tmp_path / "reference.parquet"
    score_file(fake_model, source, reference, chunk_size=100)

    out = tmp_path / "scores.parquet"
    with monkeypatch.context() as patch:
        crash_at(patch, 4)
        with pytest.raises(Crash):
            score_file(fake_model, source, out, chunk_size=100)
    parts = parts_dir(out)
    manifest = json.loads((parts / MANIFEST).read_text())
    assert [e["chunk"] for e in manifest["shards"]] == [0, 1, 2, 3]
    assert [(e["first_row"], e["last_row"]) for e in manifest["shards"]] == [(1, 100), (101, 200), (201, 300),
                                                                             (301, 400)]
    assert manifest["chunk_size"] == 100 and manifest["input"]["size"] == source.stat().st_size
    assert not out.exists()
    # leftovers of a kill in the middle of writing: a temp shard, an unlisted shard, a temp output
    (parts / ".part-00004.parquet.abcd.tmp").write_bytes(b"half")
    (parts / "part-00005.parquet").write_bytes(b"not listed in the manifest")
    (tmp_path / ".scores.parquet.wxyz.tmp").write_bytes(b"half")
    (fake_model / "README.md").write_text("the model card, rewritten by an evaluation meanwhile")  # not read to score

    summary = score_file(fake_model, source, out, chunk_size=100, resume=True)
    assert (summary.reused_chunks, summary.chunks, summary.rows) == (4, 7, 700)
    resumed = pd.read_parquet(out)
    pd.testing.assert_frame_equal(resumed, pd.read_parquet(reference), check_exact=True)
    assert resumed["row_id"].is_unique and resumed["row_id"].tolist() == list(range(1, 701))
    assert not parts.exists() and not (tmp_path / ".scores.parquet.wxyz.tmp").exists()


def test_crash_while_resuming_keeps_later_finished_shards(fake_model, tmp_path, monkeypatch):
    source = pairs_csv(tmp_path / "pairs.csv", n=500)
    out = tmp_path / "scores.parquet"
    manifest_path = score_until_crash(monkeypatch, fake_model, source, out, 3)
    manifest = json.loads(manifest_path.read_text())
    # shard 1 lost (as if never finished): the resumed run re-scores it, then crashes at chunk 3
    manifest["shards"] = [e for e in manifest["shards"] if e["chunk"] != 1]
    manifest_path.write_text(json.dumps(manifest))
    with monkeypatch.context() as patch:
        crash_at(patch, 3)
        with pytest.raises(Crash):
            score_file(fake_model, source, out, chunk_size=100, resume=True)
    assert [e["chunk"] for e in json.loads(manifest_path.read_text())["shards"]] == [0, 1, 2]
    summary = score_file(fake_model, source, out, chunk_size=100, resume=True)
    assert summary.reused_chunks == 3 and pd.read_parquet(out)["row_id"].tolist() == list(range(1, 501))


def test_resume_without_parts_starts_over(fake_model, tmp_path):
    source = pairs_csv(tmp_path / "pairs.csv", n=20)
    summary = score_file(fake_model, source, tmp_path / "out.parquet", chunk_size=8, resume=True)
    assert summary.reused_chunks == 0 and summary.rows == 20


def test_existing_parts_folder_without_resume_is_refused(fake_model, tmp_path, monkeypatch, capsys):
    source = pairs_csv(tmp_path / "pairs.csv", n=300)
    out = tmp_path / "scores.parquet"
    with monkeypatch.context() as patch:
        crash_at(patch, 1)
        with pytest.raises(Crash):
            score_file(fake_model, source, out, chunk_size=100)
    code, _, err = run_cli(capsys, "score", "--model", str(fake_model), "--input", str(source), "--output", str(out),
                           "--chunk-size", "100")
    assert_one_line_error(code, err, "scores.parquet.parts", "--resume", "delete")
    assert not out.exists() and (parts_dir(out) / "part-00000.parquet").exists()  # nothing lost


@pytest.mark.parametrize("change,needle", [
    ("chunk_size", "--chunk-size"),
    ("input_content", "input file version"),
    ("input_path", "input file"),
    ("model", "model"),
    ("options", "column / format options"),
    ("checkpoint", "model.ckpt (size or modification time changed)"),
    ("graph", "graph.pt (size or modification time changed)"),
    ("new_file", "vocabulary.json is new"),
])
def test_resume_refuses_a_manifest_of_another_run(fake_model, tmp_path, monkeypatch, capsys, change, needle):
    source = pairs_csv(tmp_path / "pairs.csv", n=300)
    out = tmp_path / "scores.parquet"
    (fake_model / "model.ckpt").write_bytes(b"weights")
    (fake_model / "student.json").write_text(json.dumps({"model": "KOrderStudent", "graph": "../graph.pt"}))
    (tmp_path / "graph.pt").write_bytes(b"graph")
    argv = ["score", "--model", str(fake_model), "--input", str(source), "--output", str(out), "--chunk-size", "100"]
    with monkeypatch.context() as patch:
        crash_at(patch, 2)
        with pytest.raises(Crash):
            run_cli(capsys, *argv)
    before = sorted(p.name for p in parts_dir(out).iterdir())
    argv.append("--resume")
    if change == "chunk_size":
        argv[argv.index("100")] = "50"
    elif change == "input_content":
        pairs_csv(source, n=301)
    elif change == "input_path":
        other = pairs_csv(tmp_path / "other.csv", n=300)
        argv[argv.index(str(source))] = str(other)
    elif change == "model":
        (tmp_path / "model2").mkdir()
        argv[argv.index(str(fake_model))] = str(tmp_path / "model2")
    elif change == "checkpoint":
        (fake_model / "model.ckpt").write_bytes(b"other weights")
    elif change == "graph":  # the graph the student reads, outside its directory
        (tmp_path / "graph.pt").write_bytes(b"another graph")
    elif change == "new_file":
        (fake_model / "vocabulary.json").write_text("{}")
    else:
        argv += ["--query-id-column", "query"]
    (fake_model / "README.md").write_text("model card rewritten by the evaluation")  # not a scoring input
    code, _, err = run_cli(capsys, *argv)
    assert_one_line_error(code, err, str(parts_dir(out) / MANIFEST), needle, "delete")
    assert sorted(p.name for p in parts_dir(out).iterdir()) == before and not out.exists()


def test_bad_row_in_a_later_chunk_leaves_nothing(fake_model, tmp_path, capsys):
    source = pairs_csv(tmp_path / "pairs.csv", n=500)
    lines = source.read_text().splitlines()
    lines[450] = "query 1,p449,"  # data row 450: empty product text
    source.write_text("\n".join(lines) + "\n")
    out = tmp_path / "scores.parquet"
    code, _, err = run_cli(capsys, "score", "--model", str(fake_model), "--input", str(source), "--output", str(out),
                           "--chunk-size", "100")
    assert_one_line_error(code, err, "pairs.csv, row 450", "empty product text", "fix")
    assert not out.exists() and not parts_dir(out).exists()


def test_non_utf8_in_a_later_chunk_names_the_row(fake_model, tmp_path, capsys):
    source = pairs_csv(tmp_path / "pairs.csv", n=500)
    raw = source.read_bytes().splitlines(keepends=True)
    raw[321] = b"caf\xe9,p999,table\n"  # line 322 = data row 321
    source.write_bytes(b"".join(raw))
    out = tmp_path / "scores.parquet"
    code, _, err = run_cli(capsys, "score", "--model", str(fake_model), "--input", str(source), "--output", str(out),
                           "--chunk-size", "100")
    assert_one_line_error(code, err, "row 321", "line 322", "0xE9", "--encoding latin-1")
    assert not out.exists() and not parts_dir(out).exists()


def test_count_of_repeated_pairs_by_buckets(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    values = rng.integers(0, 2**63, size=5000, dtype=np.uint64) * np.uint64(2) + rng.integers(0, 2, 5000).astype(
        np.uint64)
    values[::7] = values[0]  # many repeats of one value, plus random collisions
    files = []
    for i, part in enumerate(np.array_split(values, 9)):
        files.append(tmp_path / f"h{i}.npy")
        np.save(files[-1], np.sort(part))
    expected = len(values) - len(np.unique(values))
    monkeypatch.setattr(score_parts, "HASH_BUCKET", 300)  # 16 buckets
    assert score_parts.count_repeated_pairs(files, len(values)) == expected
    monkeypatch.setattr(score_parts, "HASH_BUCKET", 10**9)  # one bucket
    assert score_parts.count_repeated_pairs(files, len(values)) == expected


def test_chunk_size_must_be_positive(fake_model, tmp_path):
    source = pairs_csv(tmp_path / "pairs.csv", n=5)
    with pytest.raises(GraphrelInputError, match="--chunk-size"):
        score_file(fake_model, source, tmp_path / "out.parquet", chunk_size=0)
    assert not (tmp_path / "out.parquet").exists() and not parts_dir(tmp_path / "out.parquet").exists()


# ----------------------------------------------------------------------------- a real kill


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return tiny_run_dir(tmp_path_factory)


@pytest.mark.real_data
@pytest.mark.parametrize("signal_number", [signal.SIGKILL, signal.SIGTERM])
def test_killed_score_resumes_to_the_uninterrupted_output(tiny_run, tmp_path, capsys, monkeypatch, signal_number):
    pairs = pd.read_parquet(tiny_run / "pairs.parquet")
    rows = np.random.default_rng(0).integers(0, len(pairs), size=3000)
    source = tmp_path / "pairs.csv"
    pairs.iloc[rows][["query", "product_id", "product_text"]].to_csv(source, index=False)
    model = tiny_run / "student_korder"
    out = tmp_path / "scores.parquet"
    parts = parts_dir(out)
    argv = ["score", "--model", str(model), "--input", str(source), "--output", str(out), "--chunk-size", "500",
            "--batch-size", "64"]

    # 6 chunks; the hook sleeps 60 s after each shard: kill it once the first is listed
    stderr = tmp_path / "stderr.txt"
    with open(stderr, "w") as err_file:
        process = subprocess.Popen([sys.executable, "-m", "graphrel.cli", *argv], stdout=subprocess.DEVNULL,
                                   stderr=err_file, env={**os.environ, CHUNK_DELAY_ENV: "60"})
        try:
            deadline = time.monotonic() + 600
            while True:
                assert process.poll() is None, stderr.read_text()
                assert time.monotonic() < deadline, "no shard within 10 minutes"
                try:
                    shards = json.loads((parts / MANIFEST).read_text())["shards"]
                except (OSError, ValueError, KeyError):
                    shards = []
                if shards:
                    break
                time.sleep(0.1)
            os.kill(process.pid, signal_number)
            process.wait(timeout=600)
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()
    lock = out.with_name(out.name + ".lock")
    if signal_number == signal.SIGKILL:  # no chance to clean up: the lock file stays, naming a dead process
        assert process.returncode == -signal.SIGKILL
        assert json.loads(lock.read_text())["pid"] == process.pid
    else:  # SIGTERM: one line with where the shards are and the exact command that continues
        assert process.returncode == 143
        message = stderr.read_text().strip()
        assert len(message.splitlines()) == 1 and message.startswith("graphrel: stopped by SIGTERM"), message
        assert str(parts.resolve()) in message and message.endswith(shlex.join(["graphrel", *argv, "--resume"]))
        assert not lock.exists()
    assert not out.exists()
    finished = json.loads((parts / MANIFEST).read_text())["shards"]
    assert 1 <= len(finished) < 6

    scorers, load = {}, streaming._load_scorer

    def load_once(model_dir):  # the resumed and the reference run share one loaded student
        if str(model_dir) not in scorers:
            scorers[str(model_dir)] = load(model_dir)
        return scorers[str(model_dir)]

    monkeypatch.setattr(streaming, "_load_scorer", load_once)
    code, stdout, err = run_cli(capsys, *argv, "--resume")
    assert code == 0, err
    assert f"({len(finished)} of 6 chunks resumed)" in stdout
    assert (f"taking over the lock left by process {process.pid}" in err) == (signal_number == signal.SIGKILL)
    assert not parts.exists() and not lock.exists()

    reference = tmp_path / "reference.parquet"
    score_file(model, source, reference, chunk_size=500, batch_size=64)
    resumed, uninterrupted = pd.read_parquet(out), pd.read_parquet(reference)
    # every row, id and order exactly; scores to float32 rounding: the killed process's shards
    # come from another process, whose matrix kernels may round the last bits differently (about
    # one run in four here, 1.2% of scores off by 1e-6, with or without any change to scoring)
    pd.testing.assert_frame_equal(resumed.drop(columns="score"), uninterrupted.drop(columns="score"),
                                  check_exact=True)
    np.testing.assert_allclose(resumed["score"], uninterrupted["score"], rtol=0, atol=1e-5)
    assert resumed["row_id"].tolist() == list(range(1, 3001))
    assert resumed["score"].between(0, 1).all()
