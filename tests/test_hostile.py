"""Batch scoring under hostile input and concurrent runs: no silent wrong output.

One section per finding of a hostile-input review, then the cases that passed before and must keep
passing. Each case checks the contract: a user error is one line ``graphrel: error: ...``
naming the file, the row (where there is one) and the fix, exit code 2, nothing of the run
left behind; a run that succeeds writes one correct output row per input row, in order.

Concurrency and signal tests start real processes (``tests/fake_cli.py``: the real
``graphrel score`` with a stand-in scorer) and order them with the test-only pause hook
(``GRAPHREL_TEST_PAUSE_FILE``: a run waits after each finished shard while that file
exists), never with sleeps or timing assertions.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fake_cli import FakeScorer
from graphrel.data.datasets import load_dataset
from graphrel.errors import GraphrelInputError
from graphrel.scoring.score_parts import MANIFEST, parts_dir
from graphrel.scoring.streaming import score_file
from helpers import assert_one_line_error, fake_model, pairs_csv, run_cli  # noqa: F401 (fixture)

TESTS = Path(__file__).resolve().parent
REPO_ROOT = TESTS.parent
PAUSE_FILE_ENV = "GRAPHREL_TEST_PAUSE_FILE"  # graphrel.scoring.streaming.PAUSE_FILE_ENV
HEADER = "query,product_id,product_text\n"


def lock_file(out: Path) -> Path:
    return out.with_name(out.name + ".lock")  # graphrel.lock.lock_path


def score(capsys, model, source, out, *extra):
    return run_cli(capsys, "score", "--model", str(model), "--input", str(source), "--output", str(out), *extra)


def assert_nothing_written(out: Path) -> None:
    assert not out.exists(), out
    assert not parts_dir(out).exists(), parts_dir(out)
    assert not lock_file(out).exists(), lock_file(out)
    assert not list(out.parent.glob(f".{out.name}.*.tmp"))


def write(path: Path, content: bytes | str) -> Path:
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def expected_scores(source: Path, **options) -> pd.DataFrame:
    """What a correct run writes for ``source``: its rows in order with FakeScorer's scores."""
    frame = load_dataset("generic", source, keep_duplicates=True, **options).frame
    return frame.assign(score=FakeScorer().score(None, frame["query"], None, frame["product_text"]))


def assert_scored(out: Path, source: Path, **options) -> None:
    scored, expected = pd.read_parquet(out), expected_scores(source, **options)
    assert scored["row_id"].tolist() == expected["row_id"].tolist()
    assert scored["query_id"].tolist() == expected["query_id"].tolist()
    assert scored["product_id"].tolist() == expected["product_id"].tolist()
    assert np.array_equal(scored["score"].to_numpy(), expected["score"].to_numpy())


# ----------------------------------------------------------------------------- real processes


def _default_sigint() -> None:  # a test runner started in the background ignores SIGINT; its children would too
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(argv: list[str], logs: Path, *, pause: Path | None = None) -> subprocess.Popen:
    """``graphrel ARGV`` (stand-in scorer) in a new process; stdout/stderr go to LOGS.out/.err."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    env.pop(PAUSE_FILE_ENV, None)
    if pause is not None:
        env[PAUSE_FILE_ENV] = str(pause)
    with open(logs.with_suffix(".out"), "w") as out, open(logs.with_suffix(".err"), "w") as err:
        return subprocess.Popen([sys.executable, str(TESTS / "fake_cli.py"), *argv], stdout=out, stderr=err, env=env,
                                preexec_fn=_default_sigint)


def finish(process: subprocess.Popen, logs: Path) -> tuple[int, str, str]:
    """Wait for ``process``: (exit code, stdout, stderr)."""
    try:
        process.wait(timeout=600)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return (process.returncode, logs.with_suffix(".out").read_text().strip(),
            logs.with_suffix(".err").read_text().strip())


def wait_for_a_shard(process: subprocess.Popen, out: Path, logs: Path) -> None:
    """Until the run's manifest lists a finished shard (the run then waits on its pause file)."""
    deadline = time.monotonic() + 600  # a safety net, not a timing assertion
    while True:
        assert process.poll() is None, logs.with_suffix(".err").read_text()
        try:
            if json.loads((parts_dir(out) / MANIFEST).read_text())["shards"]:
                return
        except (OSError, ValueError, KeyError):
            pass
        assert time.monotonic() < deadline, "no shard within 10 minutes"
        time.sleep(0.05)


def snapshot(folder: Path) -> dict:
    """Every file under ``folder``: size, modification time and (small files) content."""
    return {str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns,
                                           path.read_bytes() if path.stat().st_size < 4096 else None)
            for path in sorted(folder.rglob("*")) if path.is_file()}


# ----------------------------------------------------------------------------- 1. numeric options


@pytest.mark.parametrize("extra,needles", [
    (["--batch-size", "-1"], ["--batch-size", "whole number >= 1", "'-1'"]),
    (["--batch-size", "0"], ["--batch-size", "whole number >= 1", "'0'"]),
    (["--batch-size", "lots"], ["--batch-size", "'lots'"]),
    (["--batch-size", "2.5"], ["--batch-size", "'2.5'"]),
    (["--chunk-size", "0"], ["--chunk-size", "whole number >= 1"]),
    (["--chunk-size", "-5"], ["--chunk-size", "whole number >= 1"]),
    (["--chunk-size", "1e3"], ["--chunk-size", "'1e3'"]),
    (["--label-min", "nan", "--label-max", "3"], ["--label-min", "finite"]),
    (["--label-min", "1", "--label-max", "inf"], ["--label-max", "finite"]),
    (["--label-min", "one", "--label-max", "3"], ["--label-min", "'one'"]),
    (["--no-such-option", "1"], ["unrecognized arguments: --no-such-option"]),
])
def test_bad_numeric_score_options_are_one_line_errors_before_anything_is_written(capsys, tmp_path, fake_model,
                                                                                  extra, needles):
    source = pairs_csv(tmp_path / "pairs.csv", n=200, labels=True)
    out = tmp_path / "out.parquet"
    code, _, err = score(capsys, fake_model, source, out, "--label-column", "label", *extra)
    assert_one_line_error(code, err, *needles, "fix")
    assert_nothing_written(out)


@pytest.mark.parametrize("option", ["batch_size", "chunk_size"])
@pytest.mark.parametrize("value", [-1, 0, 2.5, True])
def test_score_file_checks_sizes_before_anything_is_written(tmp_path, fake_model, option, value):
    source = pairs_csv(tmp_path / "pairs.csv", n=20)
    out = tmp_path / "out.parquet"
    with pytest.raises(GraphrelInputError, match=f"--{option.replace('_', '-')}"):
        score_file(fake_model, source, out, **{option: value})
    assert_nothing_written(out)


def test_batch_and_chunk_size_one_score_every_row(capsys, tmp_path, fake_model):
    source = pairs_csv(tmp_path / "pairs.csv", n=7)
    out = tmp_path / "out.parquet"
    code, stdout, err = score(capsys, fake_model, source, out, "--batch-size", "1", "--chunk-size", "1")
    assert code == 0, err
    assert "scored 7 pairs" in stdout
    assert_scored(out, source)


@pytest.mark.parametrize("batch_size", [0, -1, 2.5])
def test_student_scorer_refuses_batch_sizes_below_one(batch_size):
    from graphrel.scoring.korder_scorer import StudentScorer

    with pytest.raises(ValueError, match="batch_size must be a whole number >= 1"):
        StudentScorer(model=None, featurizer=None).score(["q"], ["drill"], ["p"], ["Drill"], batch_size=batch_size)


@pytest.mark.parametrize("extra,needle", [
    (["--hops", "9"], "--hops"), (["--hops", "-1"], "--hops"), (["--hops", "two"], "--hops"),
    (["--max-per-hop", "0"], "--max-per-hop"), (["--max-per-hop", "many"], "--max-per-hop"),
])
def test_bad_numeric_inspect_options_are_one_line_errors(capsys, tmp_path, extra, needle):
    code, _, err = run_cli(capsys, "inspect", "--run-dir", str(tmp_path / "run"), "--query", "drill", *extra)
    assert_one_line_error(code, err, needle, "fix")


# ----------------------------------------------------------------------------- 2. one writer per output


@pytest.mark.parametrize("second_input", ["same", "different"])
def test_two_runs_on_one_output_exactly_one_writes_it(tmp_path, second_input):
    model, data, logs = tmp_path / "model", tmp_path / "data", tmp_path / "logs"
    for folder in (model, data, logs):
        folder.mkdir()
    first_input = pairs_csv(data / "first.csv", n=600)
    other = pairs_csv(data / "second.csv", n=450)
    other.write_text(other.read_text().replace("query ", "other query "))
    second_input_path = first_input if second_input == "same" else other
    out = data / "scores.parquet"
    pause = tmp_path / "pause"
    pause.touch()

    def argv(source):
        return ["score", "--model", str(model), "--input", str(source), "--output", str(out), "--chunk-size", "100"]

    first = start(argv(first_input), logs / "first", pause=pause)
    try:
        wait_for_a_shard(first, out, logs / "first")  # the first run holds the output, part-way through
        before = snapshot(data)
        code, stdout, err = finish(start(argv(second_input_path), logs / "second"), logs / "second")
        assert code == 2, (stdout, err)
        assert_one_line_error(code, err, str(out), f"process {first.pid}", "another graphrel score",
                              "choose another --output")
        assert snapshot(data) == before  # the second run left nothing and touched nothing of the first's
    finally:
        pause.unlink()
    code, stdout, err = finish(first, logs / "first")
    assert code == 0, err
    assert stdout == f"scored 600 pairs -> {out}"
    assert_scored(out, first_input)
    assert sorted(p.name for p in data.iterdir()) == ["first.csv", "scores.parquet", "scores.parquet.summary.json", "second.csv"]


def test_a_run_holding_the_output_is_named_in_process(capsys, tmp_path, fake_model):
    from graphrel.lock import output_lock

    source = pairs_csv(tmp_path / "pairs.csv", n=20)
    out = tmp_path / "out.parquet"
    with output_lock(out):
        held = lock_file(out).read_text()
        code, _, err = score(capsys, fake_model, source, out)
        assert_one_line_error(code, err, f"process {os.getpid()}", str(lock_file(out)), "fix")
        code, _, err = score(capsys, fake_model, source, out, "--resume")  # --resume takes the same lock
        assert_one_line_error(code, err, f"process {os.getpid()}")
        assert lock_file(out).read_text() == held and not out.exists() and not parts_dir(out).exists()
    assert not lock_file(out).exists()


def test_lock_file_is_removed_after_success_and_after_errors(capsys, tmp_path, fake_model):
    source = pairs_csv(tmp_path / "pairs.csv", n=300)
    out = tmp_path / "out.parquet"
    code, _, err = score(capsys, fake_model, source, out, "--chunk-size", "100")
    assert code == 0, err
    assert out.exists() and not lock_file(out).exists()
    lines = source.read_text().splitlines()
    lines[250] = "query 1,p249,"  # data row 250: empty product text
    bad = write(tmp_path / "bad.csv", "\n".join(lines) + "\n")
    code, _, err = score(capsys, fake_model, bad, tmp_path / "bad.parquet", "--chunk-size", "100")
    assert_one_line_error(code, err, "row 250")
    assert_nothing_written(tmp_path / "bad.parquet")


def _lock_record(out: Path, pid: int, host: str | None = None) -> str:
    record = json.dumps({"pid": pid, "host": host or socket.gethostname(), "started": "2026-01-01 00:00:00",
                         "command": "graphrel score"}) + "\n"
    lock_file(out).write_text(record)
    return record


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_stale_lock_of_a_dead_process_is_reported_not_taken(capsys, caplog, tmp_path, fake_model):
    source = pairs_csv(tmp_path / "pairs.csv", n=30)
    out = tmp_path / "out.parquet"
    pid = _dead_pid()
    record = _lock_record(out, pid)
    code, _, err = score(capsys, fake_model, source, out)
    assert_one_line_error(code, err, f"process {pid}", "no longer running", str(lock_file(out)), "--resume",
                          "delete")
    assert lock_file(out).read_text() == record and not out.exists() and not parts_dir(out).exists()
    # --resume continues that run: the lock of a process known to be gone is taken over, with a warning
    code, stdout, err = score(capsys, fake_model, source, out, "--resume")
    assert code == 0, err
    assert f"taking over the lock left by process {pid}" in err
    assert_scored(out, source)
    assert not lock_file(out).exists()


def test_lock_naming_a_running_process_or_another_host_is_refused(capsys, tmp_path, fake_model):
    source = pairs_csv(tmp_path / "pairs.csv", n=30)
    out = tmp_path / "out.parquet"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        record = _lock_record(out, sleeper.pid)
        for extra in ([], ["--resume"]):
            code, _, err = score(capsys, fake_model, source, out, *extra)
            assert_one_line_error(code, err, f"process {sleeper.pid}", "still running", "delete")
            assert lock_file(out).read_text() == record and not out.exists() and not parts_dir(out).exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    record = _lock_record(out, 12345, host="some-other-host")
    for extra in ([], ["--resume"]):
        code, _, err = score(capsys, fake_model, source, out, *extra)
        assert_one_line_error(code, err, "process 12345 on host some-other-host", "cannot tell", "delete")
        assert lock_file(out).read_text() == record and not out.exists() and not parts_dir(out).exists()


# ----------------------------------------------------------------------------- 3. columns, every format


def _frame(n=4) -> pd.DataFrame:
    return pd.DataFrame({"query": [f"query {i % 2}" for i in range(n)], "product_id": [f"p{i}" for i in range(n)],
                         "product_text": [f"product {'x' * i}" for i in range(n)]})


def _duplicate_file(tmp_path: Path, fmt: str) -> Path:
    if fmt == "csv":
        return write(tmp_path / "pairs.csv", "query,product_text,product_id,product_text\n"
                                             "drill,Cordless drill,1,Hammer\nsaw,Saw,2,Nails\n")
    if fmt == "csv-spaces":
        return write(tmp_path / "pairs.csv", "query,product_text,product_id, product_text \n"
                                             "drill,Cordless drill,1,Hammer\nsaw,Saw,2,Nails\n")
    if fmt == "jsonl":
        return write(tmp_path / "pairs.jsonl",
                     '{"query": "drill", "product_text": "Cordless drill", "product_id": 1}\n'
                     '{"query": "saw", "product_text": "Saw", "product_id": 2, "product_text": "Nails"}\n')
    table = pa.Table.from_arrays([pa.array(["drill", "saw"]), pa.array(["Cordless drill", "Saw"]),
                                  pa.array(["1", "2"]), pa.array(["Hammer", "Nails"])],
                                 names=["query", "product_text", "product_id", "product_text"])
    pq.write_table(table, tmp_path / "pairs.parquet")
    return tmp_path / "pairs.parquet"


def _assert_refused(capsys, tmp_path, fake_model, source, needles, entry, *extra):
    """``source`` is refused with every needle, its name and a fix: by the pipeline loader
    (GraphrelInputError), or by `graphrel score` (one line, exit 2, nothing written)."""
    if entry == "pipeline loader":
        with pytest.raises(GraphrelInputError) as error:
            load_dataset("generic", source)
        assert all(needle in str(error.value) for needle in needles + [source.name, "fix"]), str(error.value)
        return
    out = tmp_path / "out.parquet"
    code, _, err = score(capsys, fake_model, source, out, *extra)
    assert_one_line_error(code, err, source.name, *needles, "fix")
    assert_nothing_written(out)


@pytest.mark.parametrize("fmt,needles", [
    ("csv", ["'product_text' at columns 2, 4"]),
    ("csv-spaces", ["'product_text' at columns 2, 4"]),
    ("jsonl", ["row 2", "'product_text' more than once"]),
    ("parquet", ["'product_text' at columns 2, 4"]),
])
@pytest.mark.parametrize("entry", ["score", "pipeline loader"])
def test_repeated_column_names_are_an_error_in_every_format(capsys, tmp_path, fake_model, fmt, needles, entry):
    source = _duplicate_file(tmp_path, fmt)
    _assert_refused(capsys, tmp_path, fake_model, source, needles, entry, "--chunk-size", "1")


def _nested_parquet(path: Path, n=300) -> Path:
    frame = _frame(n)
    table = pa.table({"tags": pa.array([[f"t{i}", "x"] for i in range(n)]),
                      **{c: pa.array(frame[c]) for c in frame.columns},
                      "attributes": pa.array([{"colour": "red", "sizes": [i, i + 1]} for i in range(n)]),
                      "specs": pa.array([[("watts", i)] for i in range(n)], type=pa.map_(pa.string(), pa.int64()))})
    pq.write_table(table, path, row_group_size=70)
    return path


def test_nested_columns_not_selected_are_skipped(capsys, tmp_path, fake_model):
    source = _nested_parquet(tmp_path / "pairs.parquet")
    jsonl = write(tmp_path / "pairs.jsonl", "".join(
        json.dumps({"tags": ["a", i], **row, "attributes": {"sizes": [i]}}) + "\n"
        for i, row in enumerate(_frame(50).to_dict("records"))))
    for path in (source, jsonl):
        out = tmp_path / f"{path.suffix[1:]}.parquet"
        code, _, err = score(capsys, fake_model, path, out, "--chunk-size", "64")
        assert code == 0, err
        assert_scored(out, path)
        assert len(load_dataset("generic", path)) == len(pd.read_parquet(out))


def _corrupt_column(path: Path, name: str) -> None:
    """Overwrite every page of column ``name`` (uncompressed file) with garbage."""
    metadata = pq.read_metadata(path)
    data = bytearray(path.read_bytes())
    for group in range(metadata.num_row_groups):
        for index in range(metadata.num_columns):
            column = metadata.row_group(group).column(index)
            if column.path_in_schema.split(".")[0] == name:
                start = column.dictionary_page_offset or column.data_page_offset
                data[start:start + column.total_compressed_size] = b"\xff" * column.total_compressed_size
    path.write_bytes(bytes(data))


def test_parquet_reader_reads_only_the_selected_columns(capsys, tmp_path, fake_model):
    source = tmp_path / "pairs.parquet"
    frame = _frame(200).assign(notes=[f"note {i}" for i in range(200)])
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), source, compression="none",
                   row_group_size=64)
    _corrupt_column(source, "notes")  # unreadable: a reader that converts every column fails
    with pytest.raises(OSError):
        pq.read_table(source)
    out = tmp_path / "out.parquet"
    code, _, err = score(capsys, fake_model, source, out, "--chunk-size", "50")
    assert code == 0, err
    assert_scored(out, source)  # (load_dataset, the pipeline's loader, reads the same file)


@pytest.mark.parametrize("case,needles", [
    ("parquet-int64-text", ["column 'product_text' holds int64 values, not text", "--product-text-column"]),
    ("parquet-bool-query", ["column 'query' holds bool values, not text", "--query-column"]),
    ("parquet-list-text", ["row 1", "a list in column 'product_text'"]),
    ("parquet-list-id", ["row 1", "a list in column 'product_id'", "one value per row"]),
    ("jsonl-number-text", ["row 3", "a number (3) in column 'product_text', where text belongs"]),
    ("jsonl-object-id", ["row 2", "an object in column 'product_id'"]),
    ("csv-extra-field", ["row 1", "more fields than the header's 3", "quote values"]),
])
@pytest.mark.parametrize("entry", ["score", "pipeline loader"])
def test_selected_columns_of_the_wrong_type_are_an_error(capsys, tmp_path, fake_model, case, needles, entry):
    frame = _frame()
    if case.startswith("parquet"):
        source = tmp_path / "pairs.parquet"
        if case == "parquet-int64-text":
            frame["product_text"] = np.arange(4)
        elif case == "parquet-bool-query":
            frame["query"] = [True, False, True, True]
        elif case == "parquet-list-text":
            frame["product_text"] = [["a"], ["b"], ["c"], ["d"]]
        else:
            frame["product_id"] = [["a"], ["b"], ["c", "d"], ["e"]]
        frame.to_parquet(source)
    elif case == "jsonl-number-text":
        records = frame.to_dict("records")
        records[2]["product_text"] = 3
        source = write(tmp_path / "pairs.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    elif case == "jsonl-object-id":
        records = frame.to_dict("records")
        records[1]["product_id"] = {"sku": 2}
        source = write(tmp_path / "pairs.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    else:  # every row one field longer than the header: pandas took the first field as the index
        source = write(tmp_path / "pairs.csv", HEADER + "drill,1,Drill,extra\nsaw,2,Saw,extra\n")
    _assert_refused(capsys, tmp_path, fake_model, source, needles, entry)


def test_mixed_id_types_and_numeric_ids_stay_allowed(capsys, tmp_path, fake_model):
    source = write(tmp_path / "pairs.jsonl", '{"query": "drill", "product_id": 1, "product_text": "Drill"}\n'
                                             '{"query": "drill", "product_id": "p2", "product_text": "Saw"}\n'
                                             '{"query": "saw", "product_id": 3.0, "product_text": "Saw"}\n')
    out = tmp_path / "out.parquet"
    code, _, err = score(capsys, fake_model, source, out)
    assert code == 0, err
    assert pd.read_parquet(out)["product_id"].tolist() == ["1", "p2", "3"]
    parquet = tmp_path / "ids.parquet"
    _frame().assign(product_id=np.arange(4, dtype=np.int64)).to_parquet(parquet)
    code, _, err = score(capsys, fake_model, parquet, tmp_path / "ids-out.parquet")
    assert code == 0, err
    assert pd.read_parquet(tmp_path / "ids-out.parquet")["product_id"].tolist() == ["0", "1", "2", "3"]


# ----------------------------------------------------------------------------- 4. file mode


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_outputs_get_the_mode_the_umask_gives_a_new_file(tmp_path, fake_model, umask, mode):
    from graphrel.run import write_json, write_parquet

    source = pairs_csv(tmp_path / "pairs.csv", n=30)
    old = os.umask(umask)
    try:
        score_file(fake_model, source, tmp_path / "scores.parquet", chunk_size=10)
        write_parquet(pd.DataFrame({"a": [1]}), tmp_path / "pairs.parquet")  # pipeline outputs: same helper
        write_json({"a": 1}, tmp_path / "metrics.json")
        (tmp_path / "plain.txt").write_text("created the ordinary way")
    finally:
        os.umask(old)
    for name in ("scores.parquet", "pairs.parquet", "metrics.json", "plain.txt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name


# ----------------------------------------------------------------------------- 5. SIGTERM and SIGINT


@pytest.mark.parametrize("signal_number,exit_code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_says_where_the_shards_are_and_how_to_resume(tmp_path, signal_number, exit_code):
    model, data, logs = tmp_path / "model", tmp_path / "data", tmp_path / "logs"
    for folder in (model, data, logs):
        folder.mkdir()
    source = pairs_csv(data / "pairs.csv", n=600)
    out = data / "scores.parquet"
    argv = ["score", "--model", str(model), "--input", str(source), "--output", str(out), "--chunk-size", "100"]
    pause = tmp_path / "pause"
    pause.touch()
    process = start(argv, logs / "run", pause=pause)
    try:
        wait_for_a_shard(process, out, logs / "run")
        os.kill(process.pid, signal_number)
        code, _, err = finish(process, logs / "run")
    finally:
        pause.unlink()
    assert code == exit_code, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    name = signal.Signals(signal_number).name
    assert err.startswith(f"graphrel: stopped by {name}") and f"kept in {parts_dir(out).resolve()}" in err, err
    assert "1 finished chunk(s)" in err
    command = shlex.split(err.split(f"run in {Path.cwd()}: ", 1)[1])
    assert command == ["graphrel", *argv, "--resume"]
    assert not out.exists() and not lock_file(out).exists()
    assert [e["chunk"] for e in json.loads((parts_dir(out) / MANIFEST).read_text())["shards"]] == [0]

    code, stdout, err = finish(start(command[1:], logs / "resume"), logs / "resume")
    assert code == 0, err
    assert stdout == f"scored 600 pairs -> {out} (1 of 6 chunks resumed)"
    reference = data / "reference.parquet"
    code, _, err = finish(start([*argv[:argv.index("--output") + 1], str(reference), "--chunk-size", "100"],
                                logs / "reference"), logs / "reference")
    assert code == 0, err
    pd.testing.assert_frame_equal(pd.read_parquet(out), pd.read_parquet(reference), check_exact=True)
    assert sorted(p.name for p in data.iterdir()) == ["pairs.csv", "reference.parquet", "reference.parquet.summary.json",
                                                     "scores.parquet", "scores.parquet.summary.json"]


# ----------------------------------------------------------------------------- 6. must keep passing


@pytest.mark.parametrize("case", ["bom", "crlf", "quoted-newlines", "emoji", "control-characters"])
def test_awkward_but_valid_csv_is_scored_row_for_row(capsys, tmp_path, fake_model, case):
    rows = [("drill", "1", "Cordless drill"), ("saw", "2", "Hand saw"), ("hammer", "3", "Claw hammer")]
    newline = "\n"
    prefix = ""
    if case == "bom":
        prefix = "\ufeff"
    elif case == "crlf":
        newline = "\r\n"
    elif case == "quoted-newlines":
        rows[1] = ("saw", "2", '"Hand saw\nwith a\r\nlong blade"')
    elif case == "emoji":
        rows[1] = ("saw 🪚", "2", "Hand saw 🪚 with 👍 grip")
    else:
        rows[1] = ("saw\x07", "2", "Hand\x01saw\x1f with a\ttab")
    source = write(tmp_path / "pairs.csv", prefix + newline.join([HEADER.strip()] + [",".join(r) for r in rows])
                   + newline)
    out = tmp_path / "out.parquet"
    code, _, err = score(capsys, fake_model, source, out, "--chunk-size", "2")
    assert code == 0, err
    assert_scored(out, source)
    frame = load_dataset("generic", source).frame
    assert frame["product_id"].tolist() == ["1", "2", "3"]
    assert frame["product_text"].iloc[1] == {"bom": "Hand saw", "crlf": "Hand saw",
                                             "quoted-newlines": "Hand saw\nwith a\r\nlong blade",
                                             "emoji": "Hand saw 🪚 with 👍 grip",
                                             "control-characters": "Hand\x01saw\x1f with a\ttab"}[case]


def test_truncated_last_jsonl_line_names_the_row(capsys, tmp_path, fake_model):
    lines = [json.dumps(r) for r in _frame(5).to_dict("records")]
    source = write(tmp_path / "pairs.jsonl", "\n".join(lines[:4] + [lines[4][:20]]))  # cut mid-record, no newline
    out = tmp_path / "out.parquet"
    code, _, err = score(capsys, fake_model, source, out, "--chunk-size", "2")
    assert_one_line_error(code, err, "pairs.jsonl, row 5", "not valid JSON", "fix")
    assert_nothing_written(out)


def test_input_directory_and_malformed_pipeline_yaml(capsys, tmp_path, fake_model):
    out = tmp_path / "out.parquet"
    code, _, err = score(capsys, fake_model, tmp_path, out)
    assert_one_line_error(code, err, "is a directory", "fix")
    assert_nothing_written(out)
    config = write(tmp_path / "bad.yaml", "student:\n  order: [1, 2\n  cap: 4\n")
    code, _, err = run_cli(capsys, "pipeline", "--config", str(config), "--run-dir", str(tmp_path / "run"))
    assert_one_line_error(code, err, "bad.yaml", "not valid YAML", "fix")
    assert not (tmp_path / "run").exists()
