"""Stage keys are part of every finished run: for the same config, every stage's fingerprint
must stay what it was, or existing run directories would re-run finished stages.

The expected fingerprints were computed with the code of commit 40a8f0e (before the layout
refactor of issue 12), except the graph students' (student_korder, student_online): they
changed deliberately with ``student.text_fallback`` (commit 7624a3a; the students now read
student_k0), so finished runs re-run those two stages once. A deliberate change of what a
stage is keyed on updates them, and says in its commit that finished runs re-run that stage.
"""

import pytest

from graphrel.cli import main
from graphrel.pipeline.job import Pipeline
from graphrel.pipeline.records import StageRecords

from conftest import REPO_ROOT

EXPECTED = {
    ("tiny_test.yaml",): {
        "split": "519b67b72bb758fd66a254f743afdc674de684b3323bbce03cad9d7c49f787a2",
        "teacher_fit": "75c7c9e5205196771a14b2c5308cf9ef30e59dbf392d8b87d9d1573a28edc4e0",
        "teacher_scoring": "b30e914decb62c1d29a80241027a7a8f1f7d7bb5c3979d34bf05572ba23fbd46",
        "graph": "ec89847d19b43d7b577b93c4ef357718c0ae5497123834e8776c46b26b86d5b6",
        "student_k0": "7c9fcf2aa9726666f5112ddbbf928dc0b0a0ea6183b7bc50e4cbbbf06328aad0",
        "student_korder": "8f7402ca52d096630e9ce2300da51b42ab6032fec324c7a951b468f1da890b24",
        "student_online": "07241c1d0b56dbd6cf1d2f81da48fdcb06ff9f44e745751d3cc2c392d04dab5a",
        "student_bert2dnn": "09703f260ef23725f0a6ba8f287a4130b6665cd0d253eea8eec64d1589a036df",
    },
    ("tiny_test.yaml", "--stacking.enabled", "true"): {
        "split": "519b67b72bb758fd66a254f743afdc674de684b3323bbce03cad9d7c49f787a2",
        "teacher_fit": "75c7c9e5205196771a14b2c5308cf9ef30e59dbf392d8b87d9d1573a28edc4e0",
        "teacher_scoring": "b30e914decb62c1d29a80241027a7a8f1f7d7bb5c3979d34bf05572ba23fbd46",
        "teacher_stacking": "016379d5a3bed40c2b62f5a4766900def3600678467d3b517fa7b867eeaa2b89",
        "graph": "a228f0628b9715ae9335bcf83cb82436fb0e7e547b0cc2041b6e376f763b3686",
        "student_k0": "5d2855edc6690b2721a94509eb64235ece70e86f7b294276f0f6dd95070360b1",
        "student_korder": "c919f1a9f94a5714582c6311e1b23e4c61df0f00cc65f1ca53614c2c79656d46",
        "student_online": "bb674f132376146addb33baa0cb05dab61bdefac838f5940ff14d688021a1c50",
        "student_bert2dnn": "398de4725a1a807c5efac4836c00b30cd0489567345d7e1b2478e3dae4b3ac02",
    },
    ("home_depot.yaml",): {
        "split": "ad4365d4a4d4df0f2a24e936d5a55ffcb4d8f1046972c531b54e484da909e75c",
        "teacher_fit": "05ebca351b37d1c68b6563b94d98ceeb842522b6bab369174e6dbaea4b45ca74",
        "teacher_scoring": "508c758d9dc05f27d8d63a066a6708fe7b2157507d5d2a050bea6f6c17c97ec6",
        "graph": "d13f7cca897577de6fa161108922e6819a27ef25c639ccb57c45f68cbd8cdc0d",
        "student_k0": "02672624c7db89278000983246e621bea4c9fc18d0d03ae0a3ea0ca8615f21b1",
        "student_korder": "902d8d833e61f7494dd0a56085b8e026a99be67bab905b012052e20dc8cedd98",
        "student_online": "92a3b1ab2e0421741fb3bc3025ab551231df95125324c8294b99996de49b2b22",
    },
    ("home_depot_stacked.yaml",): {
        "split": "ad4365d4a4d4df0f2a24e936d5a55ffcb4d8f1046972c531b54e484da909e75c",
        "teacher_fit": "05ebca351b37d1c68b6563b94d98ceeb842522b6bab369174e6dbaea4b45ca74",
        "teacher_scoring": "508c758d9dc05f27d8d63a066a6708fe7b2157507d5d2a050bea6f6c17c97ec6",
        "teacher_stacking": "6c524c69b5f263e26a75b8c8605b56134af67afb853e79c2411c2fc73b8a4265",
        "graph": "8d1f120bad330caac9a123c485fda1fb210cd4dd84a1e845a229152521588dba",
        "student_k0": "2d82dd033f0328e2d71bbbadec7167aa849dff41ef48cf1d2d253f28b5d29756",
        "student_korder": "0acf3cce7447ddb31c30d1660950d870008b9b1ad12d92f6e020cfcf209e14b1",
        "student_online": "4d8758bc589730b3dff5eed536c5c90d445533b7e38b4e71f1f117fd82bf7925",
        "student_bert2dnn": "f06f4d69634134461d428b687847df4a327a019ae24e1fadb4adff0466413697",
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
