"""Stage keys are part of every finished run: for the same config, every stage's fingerprint
must stay what it was, or existing run directories would re-run finished stages.

The expected fingerprints were computed with the code of commit 40a8f0e (before the package was
split into rooms), except the graph students' (student_korder, student_online): they
changed deliberately with ``student.text_fallback`` (commit 7624a3a; the students now read
student_k0), so finished runs re-run those two stages once. A deliberate change of what a
stage is keyed on updates them, and says in its commit that finished runs re-run that stage.
Every stage changed deliberately when the split started grouping queries by text key and
withholding the test labels (the split stage's key names both) and checkpoints started being
selected with ``evaluation.relevance_threshold`` (in the teacher's and students' keys): a run
split the earlier way re-runs every stage rather than reuse a teacher of another split.
The graph students' (student_korder, student_online) changed deliberately again when they
started reading nearest logged queries with no text fallback (``student.similar_queries``,
``student.min_similarity``, ``student.text_fallback`` off): finished runs re-run those two
stages once. ``student.ranking_loss`` enters the keys only when it is not ``none``.
"""

import pytest

from graphrel.cli import main
from graphrel.pipeline.job import Pipeline
from graphrel.pipeline.records import StageRecords

from conftest import REPO_ROOT

EXPECTED = {
    ("tiny_test.yaml",): {
        "split": "2e84293f5e6d95a35d7d3dba431d64dea24c877cdbcc18aaa040588089e311eb",
        "teacher_fit": "e23b17ca941e13fdce272e54b038dacb1cb7e8390e95e3d3a2842b23bc1858a7",
        "teacher_scoring": "c47a9f84226ceac5bf8a0c0e6f3993b9d6c393aaa49ae57fd375c0b466b127ff",
        "graph": "eaedea4a97153a92469121cf42ba8b73dc1f9ee17b2c0666c336d272936076fc",
        "student_k0": "f0438c782b04a28515087470f327f069bbde381680018712230e5245d2f6ea81",
        "student_korder": "12a61033e7cf9ee047c94fa864f85da5982d51e67aa548fdca2a4bd88e5de750",
        "student_online": "9bb03446c5c01c3ea0fb6974d78772bb0ad06ec15d077ba9fa18eef674c1d126",
        "student_bert2dnn": "773816a896c1857f0d3d509eee2887760903be517bc8f13bce2959e7fea3385e",
    },
    ("tiny_test.yaml", "--stacking.enabled", "true"): {
        "split": "2e84293f5e6d95a35d7d3dba431d64dea24c877cdbcc18aaa040588089e311eb",
        "teacher_fit": "e23b17ca941e13fdce272e54b038dacb1cb7e8390e95e3d3a2842b23bc1858a7",
        "teacher_scoring": "c47a9f84226ceac5bf8a0c0e6f3993b9d6c393aaa49ae57fd375c0b466b127ff",
        "teacher_stacking": "f5a9c9eea5ccfa7950c7f5afba628af35aa75f8f6c536f7354713b8bf32b0b2c",
        "graph": "460014f63bc2c38967b5e0267ce2fcf26ed4114c7b2c7856124ed73746c1569c",
        "student_k0": "44faf4af526daf36ec12f4f89b399b26d23360b093d4ec398e593b5a2147cdc6",
        "student_korder": "eb3ab026db25d7860aa16fadbb548b1cbcfc7db37f2da1b7211888c83bdad347",
        "student_online": "9d450c9db24e9aaf1eed37bce53b9a056d205c501b19eef9cb4380ab09a634eb",
        "student_bert2dnn": "f705eaafc1b8de192b97ce7f1f6bed5cd07e59fb0bea28f76987b8b094402108",
    },
    ("home_depot.yaml",): {
        "split": "126ef382cae889bb95a20f1aa6ee58b1a32b5f9f35adb78b85b7e5a7592d2727",
        "teacher_fit": "14bc4a94015cad1a00eb7b4265391b7e4b06bbb41bea2a53953651406dca0a73",
        "teacher_scoring": "83fbfc4f8993084a0d66eb3581abba286b729942f27c84f9dde65a8688d991ac",
        "graph": "df078584c1bb3bb3cb51186d4577c3bf6a8a4bd70cdb5d422f476052585c4601",
        "student_k0": "5b7245aa83845542a393c1d4bca6aeae726a1602283b1a31253cec23226ad0f4",
        "student_korder": "dce8b28132861e82dd0d52efb0551d24726915b4f0c97d38138ea163fc74fd30",
        "student_online": "15a1284724a99ed735f23f236588434040fb824905284796a1574930b1fe5e21",
    },
    ("home_depot_stacked.yaml",): {
        "split": "126ef382cae889bb95a20f1aa6ee58b1a32b5f9f35adb78b85b7e5a7592d2727",
        "teacher_fit": "14bc4a94015cad1a00eb7b4265391b7e4b06bbb41bea2a53953651406dca0a73",
        "teacher_scoring": "83fbfc4f8993084a0d66eb3581abba286b729942f27c84f9dde65a8688d991ac",
        "teacher_stacking": "266be21defdddc6ed503b221eace76ea2e2403278416ba6193e066916e0d17f4",
        "graph": "1452f23f09c588f7ae321558ca3d7b45f51ba0169f7030682b5daa1278f6e62a",
        "student_k0": "d65723bf7406708e1147af53c1b59ca3ce1435035d4be3ebca725fa57f8fc6dd",
        "student_korder": "aaac3488c1eb8f715234cd6a718afc814a098f1caa42091fa70444039c07a6f6",
        "student_online": "ec0f92fff75ab2d9a467ecfc9412d4e4e72d36fa1b5f3e89c9fcae13729d5776",
        "student_bert2dnn": "45f9bf7cbebadcafc0e80cef431fcf3d877d5d2076708853435266aca848fad9",
    },
}


def pipeline_of(monkeypatch, tmp_path, config: str, *options: str) -> Pipeline:
    """The Pipeline `graphrel pipeline --config configs/CONFIG OPTIONS` builds (not run)."""
    built = []
    monkeypatch.setattr(Pipeline, "run", lambda self: built.append(self) or {"protocols": {}})
    monkeypatch.chdir(REPO_ROOT)  # the presets' data paths are relative to the repository
    assert main(["pipeline", "--config", f"configs/{config}", "--run-dir", str(tmp_path / "run"), *options]) == 0
    return built[0]


@pytest.mark.parametrize("argv", list(EXPECTED), ids=" ".join)
def test_stage_fingerprints_are_those_of_finished_runs(monkeypatch, tmp_path, argv):
    pipeline = pipeline_of(monkeypatch, tmp_path, *argv)
    records = StageRecords(tmp_path)
    for name in EXPECTED[argv]:  # in the order the job runs them: each reads the ones before
        records.finished(name, pipeline.stages[name].key(records.fingerprint))
    assert {name: records.fingerprint(name) for name in EXPECTED[argv]} == EXPECTED[argv]
