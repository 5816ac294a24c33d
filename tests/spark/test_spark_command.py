"""``graphrel score --engine spark``: one-line errors, all-or-nothing output, an interrupted
run re-run, and the output's lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from graphrel.lock import lock_path
from graphrel.scoring.streaming import CHUNK_DELAY_ENV
from graphrel.spark.output import INCOMPLETE_SUFFIX
from graphrel.spark.session import java_available, local_session
from graphrel.errors import GraphrelInputError
from helpers import assert_one_line_error, run_cli


@pytest.fixture(scope="module")
def tiny_run(synthetic_run):
    return synthetic_run


@pytest.fixture
def pairs_dir(tiny_run, tmp_path):
    """A Parquet directory of two files of the tiny run's pairs (250 + 250 rows), with pair_id."""
    pairs = pd.read_parquet(tiny_run / "pairs.parquet")[["query_id", "query", "product_id", "product_text"]].head(500)
    pairs.insert(0, "pair_id", np.arange(len(pairs)))
    folder = tmp_path / "pairs"
    folder.mkdir()
    pairs.iloc[:250].to_parquet(folder / "a.parquet", index=False)
    pairs.iloc[250:].to_parquet(folder / "b.parquet", index=False)
    return folder


def spark_score(capsys, model, source, output, *extra):
    return run_cli(capsys, "score", "--engine", "spark", "--model", str(model), "--input", str(source),
                   "--output", str(output), *extra)


@pytest.mark.parametrize("option, needle", [
    (["--kind", "home_depot"], "--kind is not available with --engine spark"),
    (["--label-column", "label"], "--label-column is not available with --engine spark"),
    (["--label-min", "1", "--label-max", "3"], "--label-min is not available with --engine spark"),
    (["--encoding", "latin-1"], "--encoding is not available with --engine spark"),
    (["--calibrated"], "--calibrated is not available with --engine spark"),
    (["--file-format", "csv"], "--file-format csv is not available with --engine spark"),
    (["--chunk-size", "0"], "--chunk-size: must be a whole number >= 1"),
])
def test_options_the_engine_lacks_are_refused_before_spark_starts(capsys, tmp_path, option, needle):
    (tmp_path / "pairs.parquet").write_bytes(b"")
    code, _, err = spark_score(capsys, tmp_path, tmp_path / "pairs.parquet", tmp_path / "out", *option)
    assert_one_line_error(code, err, needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pairs.parquet"]


def test_missing_input_model_and_existing_output(capsys, tiny_run, pairs_dir, tmp_path):
    model = tiny_run / "student_bert2dnn"
    code, _, err = spark_score(capsys, model, tmp_path / "nowhere", tmp_path / "out")
    assert_one_line_error(code, err, "nowhere: input not found")
    code, _, err = spark_score(capsys, tmp_path / "no_model", pairs_dir, tmp_path / "out")
    assert_one_line_error(code, err, "no_model: model directory not found")
    (tmp_path / "out").mkdir()
    code, _, err = spark_score(capsys, model, pairs_dir, tmp_path / "out")
    assert_one_line_error(code, err, "out: output already exists", "delete it to score again")
    code, _, err = spark_score(capsys, model, pairs_dir, tmp_path / "missing_folder" / "out")
    assert_one_line_error(code, err, "output folder does not exist")


def test_bad_row_names_its_file_and_row_and_writes_nothing(spark, capsys, tiny_run, pairs_dir, tmp_path):
    frame = pd.read_parquet(pairs_dir / "b.parquet")
    frame.loc[3, "product_id"] = "  "
    frame.loc[7, "query"] = None
    frame.to_parquet(pairs_dir / "b.parquet", index=False)
    code, _, err = spark_score(capsys, tiny_run / "student_bert2dnn", pairs_dir, tmp_path / "out",
                               "--query-id-column", "query_id")
    # the first bad row (by file and row) is named first
    assert_one_line_error(code, err, f"{pairs_dir / 'b.parquet'}, row 4: empty product id (column 'product_id')",
                          "fill in the product id or drop the row")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pairs"]  # no output, no lock, no .incomplete
    frame.loc[3, "product_id"] = "p3"
    frame.to_parquet(pairs_dir / "b.parquet", index=False)
    code, _, err = spark_score(capsys, tiny_run / "student_bert2dnn", pairs_dir, tmp_path / "out",
                               "--query-id-column", "query_id")
    assert_one_line_error(code, err, f"{pairs_dir / 'b.parquet'}, row 8: empty query text (column 'query')")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pairs"]


def test_wrong_column_and_not_parquet(spark, capsys, tiny_run, pairs_dir, tmp_path):
    model = tiny_run / "student_bert2dnn"
    code, _, err = spark_score(capsys, model, pairs_dir, tmp_path / "out", "--product-text-column", "title")
    assert_one_line_error(code, err, "missing column 'title'", "columns found: pair_id, query_id, query",
                          "pass --product-text-column naming the column that holds the product text")
    code, _, err = spark_score(capsys, model, pairs_dir, tmp_path / "out", "--query-column", "pair_id")
    assert_one_line_error(code, err, "column 'pair_id' holds long values, not text")
    (tmp_path / "pairs.csv").write_text("query,product_id,product_text\nhose,1,garden hose\n")
    code, _, err = spark_score(capsys, model, tmp_path / "pairs.csv", tmp_path / "out")
    assert_one_line_error(code, err, "pairs.csv: Spark cannot read the input as Parquet")
    assert not (tmp_path / "out").exists()


def test_a_blank_only_a_worker_sees_fails_the_job_in_one_line(spark, capsys, tiny_run, pairs_dir, tmp_path):
    """A product text of a no-break space passes the driver's check (Java's \\s) but not the
    loaders' (Python's str.strip): the job fails with the same message, nothing is written."""
    frame = pd.read_parquet(pairs_dir / "a.parquet")
    frame.loc[5, "product_text"] = "\u00a0"
    frame.to_parquet(pairs_dir / "a.parquet", index=False)
    code, _, err = spark_score(capsys, tiny_run / "student_bert2dnn", pairs_dir, tmp_path / "out")
    assert_one_line_error(code, err, "empty product text (column 'product_text') in the row",
                          f"'product_id': '{frame.loc[5, 'product_id']}'")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pairs"]


def test_output_has_the_layout_of_the_single_process_command(spark, capsys, tiny_run, pairs_dir, tmp_path):
    """The same input scored by both engines: the same columns, types, ids and scores."""
    source = pairs_dir / "a.parquet"
    for model, extra in ((tiny_run / "student_bert2dnn", ["--query-id-column", "query_id"]),
                         (tiny_run / "student_korder", []),  # no query id column: the text is the id
                         (tiny_run / "teacher", ["--query-id-column", "query_id"])):  # the teacher scores too
        local_out, spark_out = tmp_path / f"{model.name}_local.parquet", tmp_path / f"{model.name}_spark"
        code, _, err = run_cli(capsys, "score", "--model", str(model), "--input", str(source),
                               "--output", str(local_out), *extra)
        assert code == 0, err
        code, _, err = spark_score(capsys, model, source, spark_out, *extra)
        assert code == 0, err
        local = pd.read_parquet(local_out)
        on_spark = pd.read_parquet(spark_out).sort_values("row_id").reset_index(drop=True)
        assert list(on_spark.columns) == list(local.columns) == ["row_id", "query_id", "product_id", "score"]
        assert list(on_spark.dtypes) == list(local.dtypes)
        pd.testing.assert_frame_equal(on_spark[["row_id", "query_id", "product_id"]],
                                      local[["row_id", "query_id", "product_id"]])
        np.testing.assert_allclose(on_spark["score"], local["score"], atol=1e-6)
    # several input files: each row names its file, rows numbered within it
    code, _, err = spark_score(capsys, tiny_run / "student_bert2dnn", pairs_dir, tmp_path / "two_files")
    assert code == 0, err
    both = pd.read_parquet(tmp_path / "two_files")
    assert list(both.columns) == ["row_id", "query_id", "product_id", "score", "input_file"]
    assert both.groupby(both["input_file"].str.rsplit("/", n=1).str[-1])["row_id"].agg(["min", "max", "size"]) \
        .to_dict("index") == {"a.parquet": {"min": 1, "max": 250, "size": 250},
                              "b.parquet": {"min": 1, "max": 250, "size": 250}}


def test_interrupted_run_rerun_writes_the_same_output(spark, capsys, tiny_run, pairs_dir, tmp_path):
    """A run killed (SIGKILL) while its tasks write leaves no output; a second run on the
    same output is refused while the first runs; the same command run again writes every
    row, with the scores of single-process graphrel score."""
    model, output = tiny_run / "student_bert2dnn", tmp_path / "out"
    command = [sys.executable, "-m", "graphrel.cli", "score", "--engine", "spark", "--model", str(model),
               "--input", str(pairs_dir), "--output", str(output), "--chunk-size", "20"]
    slow = subprocess.Popen(command, env={**os.environ, CHUNK_DELAY_ENV: "0.4"}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    incomplete = tmp_path / ("out" + INCOMPLETE_SUFFIX)
    deadline = time.monotonic() + 180
    while not list(incomplete.glob("_temporary/*/_temporary/*/*.parquet")):  # tasks are writing
        assert slow.poll() is None and time.monotonic() < deadline, slow.communicate()
        time.sleep(0.2)
    code, _, err = spark_score(capsys, model, pairs_dir, output)
    assert_one_line_error(code, err, "is writing this output", f"process {slow.pid}")
    slow.send_signal(signal.SIGKILL)
    slow.communicate()
    time.sleep(2)  # its JVM and Python workers end when their parent's pipe closes
    assert not output.exists() and lock_path(output).exists()
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "lock" in done.stderr  # the dead run's lock, taken over with a warning
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "pairs"]
    scored = pd.read_parquet(output)
    code, _, err = run_cli(capsys, "score", "--model", str(model), "--input", str(pairs_dir / "a.parquet"),
                           "--output", str(tmp_path / "a.parquet"))
    assert code == 0, err
    local = pd.read_parquet(tmp_path / "a.parquet")
    assert len(scored) == 500 and not scored.duplicated(["input_file", "row_id"]).any()
    joined = scored[scored["input_file"].str.endswith("/a.parquet")].merge(local, on=["row_id", "query_id",
                                                                                         "product_id"])
    assert len(joined) == 250
    np.testing.assert_allclose(joined["score_x"], joined["score_y"], rtol=0, atol=1e-6)


def test_no_java_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no_jdk"))
    assert java_available() == (f"no Java runtime: JAVA_HOME={tmp_path / 'no_jdk'} has no bin/java; "
                                "Spark needs Java 17 or newer")
    with pytest.raises(GraphrelInputError, match="install a Java 17\\+ runtime, or use --engine local"):
        local_session("local[1]")
