"""Teacher stacking inside the pipeline (tiny random teacher, real data slice)."""

import json

import pandas as pd
import pytest

from graphrel.cli import main

pytestmark = pytest.mark.real_data


def test_stacked_pipeline_reports_each_teacher_and_students_learn_the_stack(tmp_path):
    from conftest import REPO_ROOT, real_data_path

    path = real_data_path()
    if path is None:
        pytest.skip("real Home Depot data not found (see data/README.md)")
    overlay = tmp_path / "stacking.yaml"
    overlay.write_text("stacking:\n  enabled: true\n  lexical_max_iter: 30\n")
    run = tmp_path / "run"
    assert main(["pipeline", "--config", str(REPO_ROOT / "configs" / "tiny_test.yaml"), "--config", str(overlay),
                 "--data.path", str(path), "--run-dir", str(run), "--no-progress"]) == 0
    stack = json.loads((run / "stack" / "stack.json").read_text())
    assert stack["teachers"] == ["cross_encoder", "lexical"] and len(stack["weights"]) == 2
    assert set(stack["validation"]) == {"cross_encoder", "lexical", "stack (out-of-fold)"}
    scores = pd.read_parquet(run / "stacked_scores.parquet")
    expected = (scores.cross_encoder_logit * stack["weights"][0] + scores.lexical_logit * stack["weights"][1]
                + stack["bias"])
    assert (scores.teacher_logit - expected).abs().max() < 1e-4  # students and graph read the stack
    models = json.loads((run / "metrics.json").read_text())["models"]
    assert {"teacher", "teacher_lexical", "teacher_stack", "student_k0", "student_korder"} <= set(models)
