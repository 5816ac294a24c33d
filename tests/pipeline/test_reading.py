"""The report's reading says only what the intervals support."""

from graphrel.pipeline.reading import difference_rows, reading, verdict


def test_a_difference_whose_interval_holds_zero_is_no_difference():
    assert verdict({"difference": 0.012, "interval": [-0.001, 0.02]}, "auc") == "no difference"
    assert verdict({"difference": 0.010, "interval": [0.002, 0.018]}, "auc") == "better"
    assert verdict({"difference": -0.010, "interval": [-0.018, -0.002]}, "spearman") == "worse"
    # RMSE: lower is better
    assert verdict({"difference": -0.02, "interval": [-0.03, -0.01]}, "rmse") == "better"
    assert verdict({"difference": float("nan"), "interval": [float("nan"), float("nan")]}, "auc") == "no difference"


def test_reading_names_only_differences_that_exclude_zero():
    models = {
        "teacher": {},
        "student_k0": {"differences": {"teacher": {
            "auc": {"difference": 0.003, "interval": [-0.004, 0.010]},
            "spearman": {"difference": -0.02, "interval": [-0.03, -0.01]}}}},
        "student_korder": {"same_computation_as": "student_k0", "paths": {"graph": 0, "text_fallback": 3987}},
    }
    lines = reading(models, "new_query")
    assert lines[0] == ("- `student_k0` against `teacher`: worse on Spearman -0.020 [-0.030, -0.010]; "
                        "no difference on AUC.")
    assert "`student_korder` is `student_k0`" in lines[1] and "3,987 of 3,987" in lines[1]
    assert "better" not in " ".join(lines)
    rows = difference_rows(models)
    assert rows == [{"model": "student_k0", "minus": "teacher", "AUC": "+0.003 [-0.004, +0.010]",
                     "Spearman": "-0.020 [-0.030, -0.010] ▼"}]


def test_a_bound_that_excludes_zero_never_prints_as_zero():
    from graphrel.pipeline.reading import format_difference

    assert format_difference({"difference": 0.005, "interval": [0.0003, 0.0101]}) == "+0.0050 [+0.0003, +0.0101]"
    assert format_difference({"difference": 0.005, "interval": [0.0, 0.01]}) == "+0.005 [+0.000, +0.010]"
