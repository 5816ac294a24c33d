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
``teacher.scoring_backend`` (and ``teacher.agreement_pairs``, which can change the backend
``auto`` picks) entered the teacher_scoring key when teacher scoring got backends other than
fp32 (bf16 and int8 give other scores): with the default ``auto`` that stage and every stage
reading its scores (stacking, graph, students) changed deliberately, so finished runs re-run
them once; with ``fp32`` the key is what it was (the presets with ``--teacher.scoring_backend
fp32`` below). teacher_fit's key leaves both out (they do not change the fit).
"""

import pytest

from graphrel.cli import main
from graphrel.pipeline.job import Pipeline
from graphrel.pipeline.records import StageRecords

from conftest import REPO_ROOT

#: Finished runs' teachers were fine-tuned without catalogue negatives; the default has them since
#: ``teacher.random_negatives`` (1) was chosen on validation, so a finished run re-runs teacher_fit
#: and every stage after it once. With ``--teacher.random_negatives 0`` every key is what it was.
NO_NEGATIVES = ("--teacher.random_negatives", "0")

EXPECTED = {
    ("tiny_test.yaml", *NO_NEGATIVES): {
        "split": "2e84293f5e6d95a35d7d3dba431d64dea24c877cdbcc18aaa040588089e311eb",
        "teacher_fit": "e23b17ca941e13fdce272e54b038dacb1cb7e8390e95e3d3a2842b23bc1858a7",
        "teacher_scoring": "abe86d24ef5f67e8da4281ba44deaf5701f82643d2daf1ff10c09b522b5ce89a",
        "graph": "22239eb57ee7a8ed908fa0343244aa54e18fcb8d2095aef7e23b714e42d8a5f9",
        "student_k0": "40fb6c3a0d2e4c41cfd4c44b39bf52e024612c316c44e21d63102a0749aff8a1",
        "student_korder": "12d06cd3227af5b041826548b83bbbc144439343ab13da87d828b41effea1ace",
        "student_online": "d2ca13bb73f48d3a3b1acfbacf7fbdf8325d934ddf683e3dfd9c534251791d93",
        "student_bert2dnn": "c7c8bce6eb6545e9800dfb8f71601099d25cfb3b784b6e4d2cd01d0cf5691eab",
    },
    ("tiny_test.yaml", "--stacking.enabled", "true", *NO_NEGATIVES): {
        "split": "2e84293f5e6d95a35d7d3dba431d64dea24c877cdbcc18aaa040588089e311eb",
        "teacher_fit": "e23b17ca941e13fdce272e54b038dacb1cb7e8390e95e3d3a2842b23bc1858a7",
        "teacher_scoring": "abe86d24ef5f67e8da4281ba44deaf5701f82643d2daf1ff10c09b522b5ce89a",
        "teacher_stacking": "3e2bfccbb9d9ea638691cac4308977a69d33524728df50d42f144813e9f8facf",
        "graph": "fb1fcffe9a0f17faa077266e80f68016dac01bec2277bcf849e8773f0c8e9163",
        "student_k0": "8ba13d86cdfefb49a187ab14c79395c53d2123ccc56220096c59da7b428e97c0",
        "student_korder": "dc9774349c99e6f3b76efb75cc538a30866ec45afe71107b3c4fd2f5729b4cff",
        "student_online": "340bd8cac00ada27c89d7ef152bec3ea26475429dea8a8e3ae305fad4a71b7a3",
        "student_bert2dnn": "7fedb33b05539448681826b0dce428c46d755886cc1482befd2831f189f10530",
    },
    ("home_depot.yaml", *NO_NEGATIVES): {
        "split": "126ef382cae889bb95a20f1aa6ee58b1a32b5f9f35adb78b85b7e5a7592d2727",
        "teacher_fit": "14bc4a94015cad1a00eb7b4265391b7e4b06bbb41bea2a53953651406dca0a73",
        "teacher_scoring": "bd62a31dab6b27c782177c92eb0d793798954c50f49647d1304bcfe7650e904d",
        "graph": "0f2de8821dffe09220a9809b5089388cb97f066b81f8a914ab8f39a98926f0a0",
        "student_k0": "3da00938f743070bad38e9be4d11a520fa5eb1553a22051ee833d2b8a623a510",
        "student_korder": "0ae80616b2bd74c8886d391177fcf9fb2678093e232b94c4e0575e9fac3c9a9f",
        "student_online": "70d8e655776dc5e4df5e659d7f85ba03b611e9b39ab28ef3304b92de929ea4a5",
    },
    ("home_depot_stacked.yaml", *NO_NEGATIVES): {
        "split": "126ef382cae889bb95a20f1aa6ee58b1a32b5f9f35adb78b85b7e5a7592d2727",
        "teacher_fit": "14bc4a94015cad1a00eb7b4265391b7e4b06bbb41bea2a53953651406dca0a73",
        "teacher_scoring": "bd62a31dab6b27c782177c92eb0d793798954c50f49647d1304bcfe7650e904d",
        "teacher_stacking": "17b0b1f4d27eae7f0a9808f5ed773fc02a58b9a85b17f88cb774b229edfd66d9",
        "graph": "c4db0320c3c9735bc3fbdb6fcdea8db7fe7dda0924c2fedc1e0ebaa6c90795e8",
        "student_k0": "b3c7c8b257a9aa13431502904a5a913ba52cc6aac29866cb48d8ef6e77f13e95",
        "student_korder": "1e25395875f4a724bd904f401956b8d55c1b7fd7ebe28abbf405c7dfefc6b3ed",
        "student_online": "a09305bff49a2e32f580b59824bf951d0eb2fe0dd8758f1fa3b2fa79553f2b17",
        "student_bert2dnn": "f4ff934c9181a08cc7c3a35900de2b25f18900949694f654fa667fb08c92505f",
    },
    # teacher.scoring_backend fp32 scores as before backends existed: every fingerprint is unchanged
    ("tiny_test.yaml", "--teacher.scoring_backend", "fp32", *NO_NEGATIVES): {
        "split": "2e84293f5e6d95a35d7d3dba431d64dea24c877cdbcc18aaa040588089e311eb",
        "teacher_fit": "e23b17ca941e13fdce272e54b038dacb1cb7e8390e95e3d3a2842b23bc1858a7",
        "teacher_scoring": "c47a9f84226ceac5bf8a0c0e6f3993b9d6c393aaa49ae57fd375c0b466b127ff",
        "graph": "eaedea4a97153a92469121cf42ba8b73dc1f9ee17b2c0666c336d272936076fc",
        "student_k0": "f0438c782b04a28515087470f327f069bbde381680018712230e5245d2f6ea81",
        "student_korder": "12a61033e7cf9ee047c94fa864f85da5982d51e67aa548fdca2a4bd88e5de750",
        "student_online": "9bb03446c5c01c3ea0fb6974d78772bb0ad06ec15d077ba9fa18eef674c1d126",
        "student_bert2dnn": "773816a896c1857f0d3d509eee2887760903be517bc8f13bce2959e7fea3385e",
    },
    ("home_depot.yaml", "--teacher.scoring_backend", "fp32", *NO_NEGATIVES): {
        "split": "126ef382cae889bb95a20f1aa6ee58b1a32b5f9f35adb78b85b7e5a7592d2727",
        "teacher_fit": "14bc4a94015cad1a00eb7b4265391b7e4b06bbb41bea2a53953651406dca0a73",
        "teacher_scoring": "83fbfc4f8993084a0d66eb3581abba286b729942f27c84f9dde65a8688d991ac",
        "graph": "df078584c1bb3bb3cb51186d4577c3bf6a8a4bd70cdb5d422f476052585c4601",
        "student_k0": "5b7245aa83845542a393c1d4bca6aeae726a1602283b1a31253cec23226ad0f4",
        "student_korder": "dce8b28132861e82dd0d52efb0551d24726915b4f0c97d38138ea163fc74fd30",
        "student_online": "15a1284724a99ed735f23f236588434040fb824905284796a1574930b1fe5e21",
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


def test_bf16_mixed_fine_tuning_is_another_teacher_fit(monkeypatch, tmp_path):
    """``teacher.precision`` enters teacher_fit's key only when it is not float32 (finished runs
    keep their teacher); a bf16-mixed teacher is another fit, and everything after it re-runs."""
    keys = {}
    for precision in ("32-true", "bf16-mixed"):
        pipeline = pipeline_of(monkeypatch, tmp_path / precision, "tiny_test.yaml", "--teacher.precision", precision,
                               *NO_NEGATIVES)
        records = StageRecords(tmp_path / precision)
        for name in ("split", "teacher_fit", "teacher_scoring"):
            records.finished(name, pipeline.stages[name].key(records.fingerprint))
        keys[precision] = {name: records.fingerprint(name) for name in ("split", "teacher_fit", "teacher_scoring")}
    expected = EXPECTED[("tiny_test.yaml", *NO_NEGATIVES)]
    assert keys["32-true"] == {name: expected[name] for name in keys["32-true"]}
    assert keys["bf16-mixed"]["split"] == expected["split"]
    assert keys["bf16-mixed"]["teacher_fit"] != expected["teacher_fit"]
    assert keys["bf16-mixed"]["teacher_scoring"] != expected["teacher_scoring"]


def test_an_unknown_teacher_precision_is_refused(tmp_path, capsys):
    assert main(["pipeline", "--config", str(REPO_ROOT / "configs/tiny_test.yaml"), "--run-dir", str(tmp_path / "r"),
                 "--teacher.precision", "16-mixed"]) == 2
    assert "teacher.precision must be 32-true or bf16-mixed" in capsys.readouterr().err


def test_catalogue_negatives_are_another_teacher_fit(monkeypatch, tmp_path):
    """``teacher.random_negatives`` / ``mined_negatives`` (and ``mined_depth`` with mined
    negatives) enter teacher_fit's key only when negatives are asked for: without them a
    finished run keeps its teacher; with them the teacher is another fit."""
    keys = {}
    for name, options in {"none": (*NO_NEGATIVES, "--teacher.mined_depth", "7"),
                          "default": (),
                          "random": ("--teacher.random_negatives", "1"),
                          "mined": (*NO_NEGATIVES, "--teacher.mined_negatives", "1"),
                          "mined_deeper": (*NO_NEGATIVES, "--teacher.mined_negatives", "1", "--teacher.mined_depth", "7")}.items():
        pipeline = pipeline_of(monkeypatch, tmp_path / name, "tiny_test.yaml", *options)
        records = StageRecords(tmp_path / name)
        for stage in ("split", "teacher_fit"):
            records.finished(stage, pipeline.stages[stage].key(records.fingerprint))
        keys[name] = records.fingerprint("teacher_fit")
    assert keys["none"] == EXPECTED[("tiny_test.yaml", *NO_NEGATIVES)]["teacher_fit"]
    assert keys["default"] == keys["random"]  # the default: one random negative per query
    assert len(set(keys.values())) == 4


@pytest.mark.parametrize("option, value", [("random_negatives", "-1"), ("mined_negatives", "-2"),
                                           ("mined_depth", "0")])
def test_a_negative_count_below_its_range_is_refused(tmp_path, capsys, option, value):
    assert main(["pipeline", "--config", str(REPO_ROOT / "configs/tiny_test.yaml"), "--run-dir", str(tmp_path / "r"),
                 f"--teacher.{option}", value]) == 2
    assert f"teacher.{option} must be a whole number >= {1 if option == 'mined_depth' else 0}" \
        in capsys.readouterr().err
