"""Bad input to ``graphrel score`` / ``graphrel pipeline`` and to the loaders.

Each case: one line ``graphrel: error: ...`` naming the file, the row (where there is
one) and the fix; exit code 2 from ``graphrel.cli.main``; no traceback; nothing written
at the output path (neither ``OUT.parquet`` nor ``OUT.parquet.parts``). Cases already in
tests/test_cli.py (missing file, missing column, blank query, label outside the declared
scale, non-UTF-8 CSV, unknown model directory, pipeline config value errors) and
the tests of graphrel.data (tests/data/) are not repeated here.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings

import numpy as np
import pandas as pd
import pytest

from graphrel.data.datasets import load_dataset
from graphrel.scoring.score_parts import parts_dir
from helpers import assert_one_line_error, fake_model, run_cli, tiny_run_dir  # noqa: F401 (fixture)

HEADER = "query,product_id,product_text\n"


def score(capsys, model, source, out, *extra):
    return run_cli(capsys, "score", "--model", str(model), "--input", str(source), "--output", str(out), *extra)


def assert_nothing_written(out):
    assert not out.exists(), out
    assert not parts_dir(out).exists(), parts_dir(out)


def write(path, content: bytes | str):
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


# ----------------------------------------------------------------------------- the input file


@pytest.mark.parametrize("name,content,needles", [
    ("pairs.csv", b"", ["pairs.csv", "file is empty"]),
    ("pairs.parquet", b"", ["pairs.parquet", "file is empty"]),
    ("pairs.jsonl", b"", ["pairs.jsonl", "file is empty"]),
    ("pairs.csv", b"\n \n", ["pairs.csv", "file is empty"]),
    ("pairs.csv", HEADER.encode(), ["pairs.csv", "header but no data rows"]),
])
def test_empty_and_header_only_files(capsys, tmp_path, fake_model, name, content, needles):
    out = tmp_path / "out.parquet"
    code, _, err = score(capsys, fake_model, write(tmp_path / name, content), out)
    assert_one_line_error(code, err, *needles, "fix")
    assert_nothing_written(out)


def test_header_only_parquet(capsys, tmp_path, fake_model):
    source = tmp_path / "pairs.parquet"
    pd.DataFrame({c: pd.Series([], dtype=str) for c in ("query", "product_id", "product_text")}).to_parquet(source)
    out = tmp_path / "out.parquet"
    code, _, err = score(capsys, fake_model, source, out)
    assert_one_line_error(code, err, "pairs.parquet", "no data rows", "fix")
    assert_nothing_written(out)


def test_missing_column_in_jsonl(capsys, tmp_path, fake_model):
    source = write(tmp_path / "pairs.jsonl", '{"query": "drill", "product_id": 1}\n')
    out = tmp_path / "out.parquet"
    code, _, err = score(capsys, fake_model, source, out)
    assert_one_line_error(code, err, "pairs.jsonl", "missing column 'product_text'", "query, product_id",
                          "--product-text-column")
    assert_nothing_written(out)


@pytest.mark.parametrize("header,kind,missing,closest", [
    ("query,product_id,product_title\n", "generic", "product_text", "product_title"),
    ("Query,product_id,product_text\n", "generic", "query", "Query"),
    ("id,product_uid,product_title,search_terms,relevance\n", "home_depot", "search_term", "search_terms"),
])
def test_renamed_column_suggests_the_closest(capsys, tmp_path, fake_model, header, kind, missing, closest):
    row = "drill,1,Drill\n" if kind == "generic" else "1,100,Drill,drill,3\n"
    source = write(tmp_path / "pairs.csv", header + row)
    out = tmp_path / "out.parquet"
    code, _, err = score(capsys, fake_model, source, out, "--kind", kind)
    assert_one_line_error(code, err, "pairs.csv", f"missing column {missing!r}", f"did you mean {closest!r}?", "fix")
    assert_nothing_written(out)


@pytest.mark.parametrize("fmt,what,row", [
    ("parquet-none", "empty product text", 2),
    ("parquet-nan", "empty query text", 3),
    ("jsonl-null", "empty query text", 3),
    ("csv-quoted-blank", "empty product text", 2),
])
def test_nan_or_empty_texts_name_the_row(capsys, tmp_path, fake_model, fmt, what, row):
    frame = pd.DataFrame({"query": ["drill", "saw", "hammer"], "product_id": ["1", "2", "3"],
                          "product_text": ["Drill", "Saw", "Hammer"]}).astype(object)
    if fmt == "parquet-none":
        frame.loc[1, "product_text"] = None
        source = tmp_path / "pairs.parquet"
        frame.to_parquet(source)
    elif fmt == "parquet-nan":
        frame.loc[2, "query"] = np.nan
        source = tmp_path / "pairs.parquet"
        frame.to_parquet(source)
    elif fmt == "jsonl-null":
        lines = [json.dumps(r) for r in frame.to_dict("records")]
        lines[2] = json.dumps({"query": None, "product_id": "3", "product_text": "Hammer"})
        source = write(tmp_path / "pairs.jsonl", "\n".join(lines) + "\n")
    else:
        source = write(tmp_path / "pairs.csv", HEADER + 'drill,1,Drill\nsaw,2,"   "\n')
    out = tmp_path / "out.parquet"
    code, _, err = score(capsys, fake_model, source, out)
    assert_one_line_error(code, err, source.name, f"row {row}", what, "fix")
    assert_nothing_written(out)


def test_non_utf8_bytes_in_jsonl_declared_utf8(capsys, tmp_path, fake_model):
    source = write(tmp_path / "pairs.jsonl", b'{"query": "saw", "product_id": 1, "product_text": "Saw"}\n'
                                             b'{"query": "caf\xe9", "product_id": 2, "product_text": "Table"}\n')
    out = tmp_path / "out.parquet"
    code, _, err = score(capsys, fake_model, source, out, "--encoding", "utf-8")
    assert_one_line_error(code, err, "pairs.jsonl", "row 2", "0xE9", "--encoding latin-1")
    assert_nothing_written(out)


def test_non_utf8_bytes_in_gzipped_csv(capsys, tmp_path, fake_model):
    import gzip

    source = write(tmp_path / "pairs.csv.gz", gzip.compress(HEADER.encode() + b"saw,1,Saw\nsaw,2,Caf\xe9 table\n"))
    out = tmp_path / "out.parquet"
    code, _, err = score(capsys, fake_model, source, out)
    assert_one_line_error(code, err, "pairs.csv.gz", "row 2", "line 3", "not valid utf-8")
    assert_nothing_written(out)


def test_labels_outside_unit_interval_without_a_scale(capsys, tmp_path, fake_model):
    source = write(tmp_path / "pairs.csv", "query,product_id,product_text,grade\ndrill,1,Drill,1\nsaw,2,Saw,3\n")
    out = tmp_path / "out.parquet"
    code, _, err = score(capsys, fake_model, source, out, "--label-column", "grade")
    assert_one_line_error(code, err, "pairs.csv", "outside [0, 1]", "--label-min and --label-max")
    assert_nothing_written(out)


def test_label_outside_declared_scale_in_a_later_chunk(capsys, tmp_path, fake_model):
    rows = "".join(f"q{i},{i},t{i},{1 + i % 3}\n" for i in range(250)).replace("q201,201,t201,1", "q201,201,t201,7")
    source = write(tmp_path / "pairs.csv", "query,product_id,product_text,grade\n" + rows)
    out = tmp_path / "out.parquet"
    code, _, err = score(capsys, fake_model, source, out, "--label-column", "grade", "--label-min", "1",
                         "--label-max", "3", "--chunk-size", "50")
    assert_one_line_error(code, err, "pairs.csv, row 202", "label 7", "outside [1, 3]", "--label-min")
    assert_nothing_written(out)


# ----------------------------------------------------------------------------- repeated pairs


def test_repeated_pairs_training_keeps_one_and_warns_with_the_count(tmp_path):
    source = write(tmp_path / "pairs.csv", HEADER + "drill,1,Drill\ndrill,1,Drill\nsaw,2,Saw\ndrill,1,Drill\n")
    with pytest.warns(UserWarning, match=r"2 duplicated \(query_id, product_id\) pair\(s\), first at row 2"):
        pairs = load_dataset("generic", source)  # what the pipeline loads
    assert pairs.frame["row_id"].tolist() == [1, 3]


def test_repeated_pairs_score_scores_every_row_and_warns_with_the_count(capsys, tmp_path, fake_model):
    source = write(tmp_path / "pairs.csv", HEADER + "drill,1,Drill\ndrill,1,Drill\nsaw,2,Saw\ndrill,1,Drill\n")
    out = tmp_path / "out.parquet"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scoring keeps repeats: no loader warning
        code, stdout, err = score(capsys, fake_model, source, out, "--chunk-size", "2")
    assert code == 0, err
    assert "2 repeated (query_id, product_id) pair(s)" in err and "every input row was scored" in err
    assert pd.read_parquet(out)["row_id"].tolist() == [1, 2, 3, 4]
    assert "scored 4 pairs" in stdout


@pytest.mark.parametrize("text", ["\x00\x01", "\u200b\u200b", "\t\x7f\ufeff "])
def test_text_of_control_or_invisible_characters_only_is_refused(capsys, tmp_path, fake_model, text):
    frame = pd.DataFrame({"query": ["drill", text, "hammer"], "product_id": ["1", "2", "3"],
                          "product_text": ["Drill", "Saw", "Hammer"]})
    source = tmp_path / "pairs.parquet"
    frame.to_parquet(source)
    out = tmp_path / "out.parquet"
    code, _, err = score(capsys, fake_model, source, out)
    assert_one_line_error(code, err, "pairs.parquet", "row 2", "query text", "fix")
    assert_nothing_written(out)


def test_queries_file_of_control_characters_only_is_refused(capsys, tmp_path):
    from graphrel.errors import GraphrelInputError
    from graphrel.retrieval.serving.command import read_queries

    source = tmp_path / "queries.parquet"
    pd.DataFrame({"query": ["drill", "\x00\u200b"]}).to_parquet(source)
    with pytest.raises(GraphrelInputError, match="row 2.*control or invisible characters only"):
        read_queries(source)


def test_named_pipe_and_standard_input_are_refused_saying_what_they_are(capsys, tmp_path, fake_model):
    pipe = tmp_path / "pairs.csv"
    os.mkfifo(pipe)
    out = tmp_path / "out.parquet"
    code, _, err = score(capsys, fake_model, pipe, out)  # nothing writes to it: must not block
    assert_one_line_error(code, err, "pairs.csv", "named pipe (FIFO)", "save the data to a file")
    code, _, err = score(capsys, fake_model, "-", out)
    assert_one_line_error(code, err, "standard input", "save the data to a file")
    assert_nothing_written(out)


@pytest.mark.parametrize("options, named", [
    (["--label-column", "nosuch"], "--label-column"),
    (["--query-id-column", "id"], "--query-id-column"),
    (["--file-format", "csv"], "--file-format"),
    (["--query-column", "search_term"], "--query-column"),
    (["--product-id-column", "product_uid"], "--product-id-column"),
    (["--product-text-column", "product_title"], "--product-text-column"),
    (["--label-min", "1"], "--label-min"),
    (["--label-max", "3"], "--label-max"),
])
def test_options_the_kind_does_not_read_are_refused(capsys, tmp_path, fake_model, options, named):
    source = write(tmp_path / "train.csv", "id,product_uid,product_title,search_term,relevance\n1,2,Drill,drill,3\n")
    out = tmp_path / "out.parquet"
    code, _, err = score(capsys, fake_model, source, out, "--kind", "home_depot", *options)
    assert_one_line_error(code, err, named, "does not apply to --kind home_depot", "--kind generic")
    assert_nothing_written(out)
    code, _, err = score(capsys, fake_model, source, out, "--kind", "home_depot", "--encoding", "latin-1")
    assert code == 0, err  # the option its loader reads is still taken


def test_esci_reads_its_file_format_option(capsys, tmp_path, fake_model):
    source = tmp_path / "esci.data"  # no suffix to guess the format from
    pd.DataFrame({"query": ["drill"], "product_id": ["B1"], "product_title": ["Drill"], "esci_label": ["E"],
                  "product_locale": ["us"]}).to_parquet(source)
    out = tmp_path / "out.parquet"
    code, _, err = score(capsys, fake_model, source, out, "--kind", "esci", "--file-format", "parquet")
    assert code == 0, err
    assert len(pd.read_parquet(out)) == 1


# ----------------------------------------------------------------------------- the model


def test_directory_without_student_json(capsys, tmp_path):
    source = write(tmp_path / "pairs.csv", HEADER + "drill,1,Drill\n")
    (tmp_path / "run").mkdir()
    out = tmp_path / "out.parquet"
    code, _, err = score(capsys, tmp_path / "run", source, out)
    assert_one_line_error(code, err, "run", "student.json", "RUN/student_korder", "RUN/teacher")
    assert_nothing_written(out)


def test_random_file_named_model_ckpt(capsys, tmp_path):
    source = write(tmp_path / "pairs.csv", HEADER + "drill,1,Drill\n")
    model = tmp_path / "student_korder"
    model.mkdir()
    (model / "student.json").write_text(json.dumps({"model": "KOrderStudent", "order": 2, "checkpoint": "model.ckpt",
                                                     "graph": "../graph.pt", "cap": 8}))
    (model / "model.ckpt").write_bytes(np.random.default_rng(0).bytes(4096))
    out = tmp_path / "out.parquet"
    code, _, err = score(capsys, model, source, out)
    assert_one_line_error(code, err, "model.ckpt", "cannot load the student", "fix")
    assert_nothing_written(out)


def test_student_json_of_another_model_type(capsys, tmp_path):
    source = write(tmp_path / "pairs.csv", HEADER + "drill,1,Drill\n")
    model = tmp_path / "teacher"
    model.mkdir()
    (model / "student.json").write_text(json.dumps({"model": "CrossEncoderTeacher"}))
    out = tmp_path / "out.parquet"
    code, _, err = score(capsys, model, source, out)
    assert_one_line_error(code, err, "student.json", "unsupported student type 'CrossEncoderTeacher'", "fix")
    assert_nothing_written(out)


# ----------------------------------------------------------------------------- the output path


def test_output_folder_missing(capsys, tmp_path, fake_model):
    source = write(tmp_path / "pairs.csv", HEADER + "drill,1,Drill\n")
    out = tmp_path / "no" / "such" / "out.parquet"
    code, _, err = score(capsys, fake_model, source, out)
    assert_one_line_error(code, err, str(out.parent), "does not exist", "fix")
    assert not (tmp_path / "no").exists()


def test_output_folder_is_a_file(capsys, tmp_path, fake_model):
    source = write(tmp_path / "pairs.csv", HEADER + "drill,1,Drill\n")
    out = tmp_path / "pairs.csv" / "out.parquet"
    code, _, err = score(capsys, fake_model, source, out)
    assert_one_line_error(code, err, "pairs.csv", "not a directory", "fix")
    assert source.read_text() == HEADER + "drill,1,Drill\n"


def test_output_path_is_a_directory_or_the_input(capsys, tmp_path, fake_model):
    source = write(tmp_path / "pairs.csv", HEADER + "drill,1,Drill\n")
    (tmp_path / "out.parquet").mkdir()
    code, _, err = score(capsys, fake_model, source, tmp_path / "out.parquet")
    assert_one_line_error(code, err, "out.parquet", "is a directory", "fix")
    code, _, err = score(capsys, fake_model, source, source)
    assert_one_line_error(code, err, "pairs.csv", "is the input file", "fix")
    assert source.read_text() == HEADER + "drill,1,Drill\n"


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root may write to read-only folders")
def test_output_folder_read_only(capsys, tmp_path, fake_model):
    source = write(tmp_path / "pairs.csv", HEADER + "drill,1,Drill\n")
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        code, _, err = score(capsys, fake_model, source, folder / "out.parquet")
        assert_one_line_error(code, err, "read-only", "not writable", "fix")
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o700)


# ----------------------------------------------------------------------------- pipeline config keys


def test_config_key_typo_names_the_key_and_the_closest(capsys, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("seed: 0\nstudnet:\n  order: 1\n")
    code, _, err = run_cli(capsys, "pipeline", "--config", str(config), "--run-dir", str(tmp_path / "run"))
    assert_one_line_error(code, err, "run.yaml", "unknown config key 'studnet'", "did you mean 'student'?", "fix")
    config.write_text("student:\n  ordre: 1\n")
    code, _, err = run_cli(capsys, "pipeline", "--config", str(config), "--run-dir", str(tmp_path / "run"))
    assert_one_line_error(code, err, "'student.ordre'", "did you mean 'student.order'?")
    code, _, err = run_cli(capsys, "pipeline", "--studnet.order", "1", "--run-dir", str(tmp_path / "run"))
    assert_one_line_error(code, err, "--studnet.order", "did you mean --student.order?")
    assert not (tmp_path / "run").exists()


def test_config_with_equals_sign_gets_the_same_key_check_and_nesting(capsys, tmp_path):
    """``--config=FILE`` is ``--config FILE``: keys checked, top-level keys nested under pipeline."""
    import yaml

    from graphrel.pipeline.config_file import nest_pipeline_keys

    config = tmp_path / "run.yaml"
    config.write_text("seed: 0\nstudnet:\n  order: 1\n")
    code, _, err = run_cli(capsys, "pipeline", f"--config={config}", "--run-dir", str(tmp_path / "run"))
    assert_one_line_error(code, err, "run.yaml", "unknown config key 'studnet'", "did you mean 'student'?", "fix")
    assert not (tmp_path / "run").exists()
    config.write_text("seed: 3\nstudent:\n  order: 1\n")
    argv, temporary = nest_pipeline_keys([f"--config={config}", "--run-dir", "x"])
    try:
        assert argv[0] == "--config" and argv[2:] == ["--run-dir", "x"]
        assert yaml.safe_load(open(argv[1])) == {"pipeline": {"seed": 3, "student": {"order": 1}}}
    finally:
        for path in temporary:
            os.remove(path)


def test_saved_run_config_is_accepted_back(capsys, tmp_path):
    """run_dir / no_progress / pipeline: the keys of a run's own config.yaml are known."""
    from graphrel.pipeline.config_file import nest_pipeline_keys

    config = tmp_path / "config.yaml"
    config.write_text("run_dir: runs/x\nno_progress: true\npipeline:\n  seed: 1\n  data:\n    options: {any: 1}\n")
    argv, temporary = nest_pipeline_keys(["--config", str(config), "--data.options.whatever", "2"])
    for path in temporary:
        os.remove(path)
    assert argv[2:] == ["--pipeline.data.options.whatever", "2"]


# ----------------------------------------------------------------------------- with a trained student


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return tiny_run_dir(tmp_path_factory)


@pytest.mark.real_data
def test_one_megabyte_text_and_repeats_are_scored(capsys, tiny_run, tmp_path):
    pairs = pd.read_parquet(tiny_run / "pairs.parquet").head(50)
    frame = pairs[["query", "product_id", "product_text"]].copy()
    frame.loc[len(frame)] = ["drill", "big", " ".join(["cordless drill 18v"] * 55_000)]  # ~1 MB, truncated
    frame.loc[len(frame)] = [pairs["query"].iloc[0], pairs["product_id"].iloc[0], pairs["product_text"].iloc[0]]
    source = tmp_path / "pairs.csv"
    frame.to_csv(source, index=False)
    assert source.stat().st_size > 1_000_000
    out = tmp_path / "out.parquet"
    code, stdout, err = score(capsys, tiny_run / "student_korder", source, out, "--chunk-size", "20")
    assert code == 0, err
    scored = pd.read_parquet(out)
    assert scored["row_id"].tolist() == list(range(1, 53)) and scored["score"].between(0, 1).all()
    assert "1 repeated (query_id, product_id) pair(s)" in err


@pytest.mark.real_data
def test_teacher_checkpoint_as_student(capsys, tiny_run, tmp_path):
    model = tmp_path / "student_korder"
    model.mkdir()
    manifest = json.loads((tiny_run / "student_korder" / "student.json").read_text())
    manifest["graph"] = str(tiny_run / "graph.pt")
    (model / "student.json").write_text(json.dumps(manifest))
    shutil.copy(tiny_run / "teacher" / "teacher.ckpt", model / "model.ckpt")
    source = write(tmp_path / "pairs.csv", HEADER + "drill,1,Drill\n")
    out = tmp_path / "out.parquet"
    code, _, err = score(capsys, model, source, out)
    assert_one_line_error(code, err, "model.ckpt", "student checkpoint", "fix")
    assert_nothing_written(out)
