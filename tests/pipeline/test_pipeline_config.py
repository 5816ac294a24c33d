"""Pipeline options are validated before any work, and the report takes its scale from the data."""

import json

import pytest

from graphrel.cli import main
from graphrel.errors import GraphrelInputError
from graphrel.pipeline.evaluation import relevance_threshold


@pytest.mark.parametrize("option,value,needle", [
    ("--evaluation.context_fraction", "1.0", "evaluation.context_fraction must be in [0, 1)"),
    ("--student.new_query_share", "-0.1", "student.new_query_share must be in [0, 1)"),
    ("--evaluation.timing_repeats", "0", "evaluation.timing_repeats must be a whole number >= 1"),
    ("--teacher.learning_rate", "0", "teacher.learning_rate must be > 0"),
    ("--student.temperature", "-1", "student.temperature must be > 0"),
    ("--teacher.max_train_pairs", "0", "teacher.max_train_pairs must be a whole number >= 1"),
    ("--student.batch_size", "-5", "student.batch_size must be a whole number >= 1"),
    ("--data.test_fraction", "0.95", "data.val_fraction + data.test_fraction must be < 1"),
])
def test_bad_numeric_option_is_one_line_and_nothing_is_written(capsys, tmp_path, option, value, needle):
    run = tmp_path / "run"
    code = main(["pipeline", "--run-dir", str(run), option, value])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and needle in err and "fix" in err, err
    assert not run.exists()


def threshold_with_scale(tmp_path, low, high, threshold=None):
    """The relevance threshold of a run whose label_scale.json holds (low, high)."""
    from graphrel.pipeline.evaluation import label_scale

    (tmp_path / "label_scale.json").write_text(json.dumps({"label_min": low, "label_max": high, "source": "x"}))
    return relevance_threshold(label_scale(tmp_path), threshold)


def test_relevance_threshold_follows_the_data_or_the_config(tmp_path):
    assert threshold_with_scale(tmp_path, 1, 3) == 2.5  # Home Depot
    assert threshold_with_scale(tmp_path, 1, 4) == 3.25
    assert threshold_with_scale(tmp_path, 1, 4, threshold=3) == 3
    with pytest.raises(GraphrelInputError, match="outside the label scale"):
        threshold_with_scale(tmp_path, 1, 4, threshold=5)


def test_report_names_the_datas_scale_and_threshold(tmp_path):
    import numpy as np
    import pandas as pd

    from graphrel.pipeline.report import write_report

    figures = {"rmse": 0.5, "auc": 0.7, "spearman": 0.4, "ndcg": 0.9, "pairs_per_second": 100.0}
    student = {**figures, "ratio_to_teacher": {"auc": 1, "spearman": 1, "ndcg": 1}, "speedup_vs_teacher": 9.0}
    metrics = {"protocols": {p: {"models": {"teacher": figures, "student_k0": student}}
                             for p in ("new_query", "new_pairs")},
               "label_scale": [1, 4], "relevance_threshold": 3.0, "timing": {"repeats": 3, "warmup_pairs": 256},
               "split": {"test": {"pairs": 10, "queries": 2}}}
    pd.DataFrame({"query_id": ["a"] * 10, "product_id": list("0123456789"), "label": np.linspace(0, 1, 10),
                  "teacher": np.linspace(0, 1, 10), "student_k0:new_query": np.linspace(0, 1, 10),
                  "student_k0:new_pairs": np.linspace(0, 1, 10)}).to_parquet(tmp_path / "test_predictions.parquet")
    write_report(tmp_path, metrics)
    report = (tmp_path / "report.md").read_text()
    assert "RMSE (1-4)" in report and "label >= 3" in report and "1-3" not in report
    assert report.index("### new_query") < report.index("### new_pairs")
