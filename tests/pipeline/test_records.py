"""Stage records: outputs are reused only when built from the same config values and inputs."""

import logging

from graphrel.pipeline.records import StageRecords, key_changes


def test_same_key_reuses_changed_key_removes_outputs_and_says_why(tmp_path, caplog):
    out, parts = tmp_path / "student_korder", tmp_path / "parts"
    key = {"inputs": {"graph": "abc"}, "student": {"cap": 4, "hidden": (1024, 512)}}
    records = StageRecords(tmp_path)
    assert not records.up_to_date("student_korder", key, [out])
    out.mkdir()
    (out / "model.ckpt").write_text("weights")
    records.finished("student_korder", key)
    # a new process reads the record back: tuples and lists compare equal
    assert StageRecords(tmp_path).up_to_date("student_korder", key, [out])
    parts.mkdir()
    with caplog.at_level(logging.INFO, logger="graphrel"):
        changed = {"inputs": {"graph": "def"}, "student": {"cap": 8, "hidden": (1024, 512)}}
        assert not StageRecords(tmp_path).up_to_date("student_korder", changed, [out], [parts])
    assert not out.exists() and not parts.exists()
    assert "student.cap 4 -> 8" in caplog.text and "input graph changed" in caplog.text


def test_interrupted_stage_with_the_same_key_keeps_its_work(tmp_path):
    parts = tmp_path / "teacher_scores.parts"
    records = StageRecords(tmp_path)
    key = {"temperature": 1.0}
    assert not records.up_to_date("teacher_scoring", key, [tmp_path / "scores.parquet"], [parts])
    parts.mkdir()  # the stage dies here, before finishing
    assert not StageRecords(tmp_path).up_to_date("teacher_scoring", key, [tmp_path / "scores.parquet"], [parts])
    assert parts.exists()  # resumed, not thrown away
    assert not StageRecords(tmp_path).up_to_date("teacher_scoring", {"temperature": 2.0},
                                                 [tmp_path / "scores.parquet"], [parts])
    assert not parts.exists()  # chunks of another key are


def test_outputs_without_a_record_are_rebuilt(tmp_path):
    stale = tmp_path / "graph.pt"
    stale.write_text("from a run before stage records")
    assert not StageRecords(tmp_path).up_to_date("graph", {"inputs": {}}, [stale])
    assert not stale.exists()


def test_a_stage_the_run_no_longer_has_is_removed(tmp_path):
    stack = tmp_path / "stacked_scores.parquet"
    stack.write_text("x")
    records = StageRecords(tmp_path)
    records.finished("teacher_stacking", {"enabled": True})
    records.remove("teacher_stacking", [stack], "stacking is off")
    assert not stack.exists() and StageRecords(tmp_path).fingerprint("teacher_stacking") is None


def test_key_changes_are_readable():
    assert key_changes({"a": 1, "b": {"c": 2}}, {"a": 1, "b": {"c": 3}, "d": True}) == ["b.c 2 -> 3",
                                                                                       "d (unset) -> true"]
