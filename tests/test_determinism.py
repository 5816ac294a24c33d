"""Same seed and config => identical quality figures (timings aside), on CPU."""

import json

import pytest

from graphrel.cli import main

pytestmark = pytest.mark.real_data


def test_tiny_pipeline_twice_gives_identical_metrics(tmp_path):
    from conftest import REPO_ROOT, real_data_path

    path = real_data_path()
    if path is None:
        pytest.skip("real Home Depot data not found (see data/README.md)")
    metrics = []
    for name in ("a", "b"):
        assert main(["pipeline", "--config", str(REPO_ROOT / "configs" / "tiny_test.yaml"), "--data.path", str(path),
                     "--run-dir", str(tmp_path / name), "--no-progress"]) == 0
        metrics.append(json.loads((tmp_path / name / "metrics.json").read_text()))
    first, second = metrics
    assert first["split"] == second["split"]
    for model in first["models"]:
        for key in ("rmse", "auc", "spearman", "ndcg@10"):
            assert first["models"][model][key] == second["models"][model][key], (model, key)
