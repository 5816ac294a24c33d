"""Bad input through the command line: one line naming file/row/fix, exit code 2, no traceback."""

import io
import logging
import subprocess
import sys

import pytest

import graphrel.cli as cli
from graphrel.cli import main

HEADER = "query,product_id,product_text,label\n"


def run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.err.strip()


def score(capsys, tmp_path, content: bytes | str, *extra):
    source = tmp_path / "pairs.csv"
    source.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return run(capsys, "score", "--model", str(tmp_path / "no-model"), "--input", str(source),
               "--output", str(tmp_path / "out.parquet"), "--label-column", "label", "--label-min", "1",
               "--label-max", "3", *extra)


def assert_user_error(code, err, *needles):
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert err.startswith("graphrel: error:") and "Traceback" not in err
    for needle in needles:
        assert needle in err, (needle, err)


def test_missing_file(capsys, tmp_path):
    code, err = run(capsys, "score", "--model", str(tmp_path), "--input", str(tmp_path / "nope.csv"),
                    "--output", str(tmp_path / "o.parquet"))
    assert_user_error(code, err, "nope.csv")
    assert not (tmp_path / "o.parquet").exists()


def test_missing_column(capsys, tmp_path):
    code, err = score(capsys, tmp_path, "search,product_id,product_text,label\ndrill,1,drill bit,3\n")
    assert_user_error(code, err, "pairs.csv", "query", "fix")


def test_empty_query_text(capsys, tmp_path):
    code, err = score(capsys, tmp_path, HEADER + "drill,1,drill bit,3\n  ,2,hammer,1\n")
    assert_user_error(code, err, "pairs.csv", "row 2", "fix")


def test_label_outside_declared_scale(capsys, tmp_path):
    code, err = score(capsys, tmp_path, HEADER + "drill,1,drill bit,3\nhammer,2,claw hammer,5\n")
    assert_user_error(code, err, "pairs.csv", "row 2", "fix")


def test_non_utf8_bytes(capsys, tmp_path):
    code, err = score(capsys, tmp_path, (HEADER + "drill,1,drill bit,3\n").encode() + b"caf\xe9,2,table,2\n")
    assert_user_error(code, err, "pairs.csv", "row 2", "UTF-8", "latin-1")


def test_unknown_model_directory(capsys, tmp_path):
    code, err = score(capsys, tmp_path, HEADER + "drill,1,drill bit,3\n")
    assert_user_error(code, err, "no-model", "student")
    assert not (tmp_path / "out.parquet").exists()


def test_pipeline_config_errors(capsys, tmp_path):
    code, err = run(capsys, "pipeline", "--config", str(tmp_path / "missing.yaml"), "--run-dir", str(tmp_path))
    assert_user_error(code, err, "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("student:\n  order: 5\n")
    code, err = run(capsys, "pipeline", "--config", str(bad), "--run-dir", str(tmp_path / "run"))
    assert_user_error(code, err, "student.order")


def test_console_script_exit_code_and_help():
    done = subprocess.run([sys.executable, "-m", "graphrel.cli", "score", "--model", "x", "--input", "/nonexistent.csv",
                           "--output", "/tmp/o.parquet"], capture_output=True, text=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    helped = subprocess.run([sys.executable, "-m", "graphrel.cli", "pipeline", "--help"], capture_output=True, text=True)
    assert helped.returncode == 0 and "--run-dir" in helped.stdout and "student.order" in helped.stdout


def test_inspect_missing_run_dir_and_bad_hops(capsys, tmp_path):
    code, err = run(capsys, "inspect", "--run-dir", str(tmp_path / "no-run"), "--query", "drill")
    assert_user_error(code, err, "no-run", "fix")
    (tmp_path / "run").mkdir()
    code, err = run(capsys, "inspect", "--run-dir", str(tmp_path / "run"), "--query", "drill", "--hops", "-1")
    assert_user_error(code, err, "hops")


def test_score_help_lists_streaming_options(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["score", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--resume" in out and "--chunk-size" in out and "OUT.parquet.parts" in out


def test_main_logs_to_the_current_stderr_and_leaves_logging_as_it_was(capsys, monkeypatch, caplog):
    logger = logging.getLogger("graphrel")
    before = (list(logger.handlers), logger.level, logger.propagate)
    monkeypatch.setattr(cli, "_score", lambda argv: logger.info("scoring %s", argv[0]))
    assert main(["score", "first"]) == 0
    assert main(["score", "second"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and err[0].endswith("graphrel: scoring first") and err[1].endswith("graphrel: scoring second")
    assert (list(logger.handlers), logger.level, logger.propagate) == before
    # a stderr that was current at an earlier call and is closed now is never touched again
    captured_stderr, closed = sys.stderr, io.StringIO()
    monkeypatch.setattr(sys, "stderr", closed)
    assert main(["score", "third"]) == 0
    assert "graphrel: scoring third" in closed.getvalue()
    closed.close()
    monkeypatch.setattr(sys, "stderr", captured_stderr)
    assert main(["score", "fourth"]) == 0
    assert capsys.readouterr().err.strip().endswith("graphrel: scoring fourth")
    # outside main() graphrel's records propagate, so caplog sees them with no extra handler
    with caplog.at_level(logging.WARNING, logger="graphrel"):
        logger.warning("outside main")
    assert [r.getMessage() for r in caplog.records] == ["outside main"]


def test_verbose_keeps_the_third_party_lines_that_a_default_run_hides():
    import logging
    import os
    import warnings

    import lightning.pytorch  # noqa: F401  (it sets its logger's level when imported)
    from transformers.utils import logging as transformers_logging

    from graphrel.cli import _quiet_libraries

    lightning_logger = logging.getLogger("lightning.pytorch")
    before = (lightning_logger.level, transformers_logging.get_verbosity(), os.environ.get("TRANSFORMERS_VERBOSITY"))
    from huggingface_hub.utils import are_progress_bars_disabled

    bars_before = are_progress_bars_disabled()
    with _quiet_libraries(False, "pipeline"):
        assert lightning_logger.getEffectiveLevel() == logging.WARNING
        assert transformers_logging.get_verbosity() == transformers_logging.ERROR
        assert are_progress_bars_disabled() and not transformers_logging.is_progress_bar_enabled()
        with warnings.catch_warnings(record=True) as caught:
            warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated, use ...", FutureWarning)
        assert not caught
    assert (lightning_logger.level, transformers_logging.get_verbosity(),
            os.environ.get("TRANSFORMERS_VERBOSITY")) == before  # restored
    assert are_progress_bars_disabled() == bars_before
    with _quiet_libraries(True, "pipeline"):
        assert transformers_logging.get_verbosity() == before[1]
