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
    # every student of the tiny config, BERT2DNN included, is trained and evaluated
    assert {"student_k0", "student_korder", "student_online", "student_bert2dnn"} <= set(first["models"])
    # `graphrel score` loads the BERT2DNN student directory like any other
    import pandas as pd

    test = pd.read_parquet(tmp_path / "a" / "pairs.parquet").query("split == 'test'").head(50)
    test[["query_id", "query", "product_id", "product_text"]].to_csv(tmp_path / "pairs.csv", index=False)
    assert main(["score", "--model", str(tmp_path / "a" / "student_bert2dnn"), "--input", str(tmp_path / "pairs.csv"),
                 "--output", str(tmp_path / "scores.parquet")]) == 0
    scores = pd.read_parquet(tmp_path / "scores.parquet")
    assert len(scores) == 50 and scores["score"].between(0, 1).all()
    for model in first["models"]:
        for key in ("rmse", "auc", "spearman", "ndcg@10"):
            assert first["models"][model][key] == second["models"][model][key], (model, key)
