"""Calibration of scores to the label scale: isotonic and Platt fits, the choice between them
over query folds, ECE, saved calibrators and the reliability diagram (synthetic pairs only)."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, logit

from graphrel.errors import GraphrelInputError
from graphrel.scoring import calibration
from graphrel.scoring.calibration import (Calibrator, calibration_report, choose_calibrator,
                                          expected_calibration_error, reliability_curve, reliability_diagram)


def pairs(relation, *, queries=60, per_query=8, noise=0.05, seed=0):
    """(scores, labels, query_ids): uniform scores, labels = relation(score) + noise, clipped."""
    rng = np.random.default_rng(seed)
    query_ids = np.repeat([f"q{i}" for i in range(queries)], per_query)
    scores = rng.uniform(0.01, 0.99, len(query_ids))
    labels = np.clip(relation(scores) + rng.normal(0, noise, len(scores)), 0, 1)
    return scores, labels, query_ids


def sigmoid_relation(s):
    return expit(2 * logit(s) - 0.5)


def step_relation(s):
    return np.where(s < 0.5, 0.2, 0.9)


def test_isotonic_output_is_monotone_and_within_the_unit_interval():
    scores, labels, _ = pairs(lambda s: s ** 2, noise=0.3)
    calibrator = Calibrator("isotonic").fit(scores, labels)
    grid = np.linspace(0, 1, 501)
    predicted = calibrator.predict(grid)
    assert np.all(np.diff(predicted) >= 0)
    assert predicted.min() >= 0 and predicted.max() <= 1
    assert predicted[-1] - predicted[0] > 0.5  # it follows the relation, not a constant


def test_platt_recovers_a_known_sigmoid():
    scores, labels, _ = pairs(sigmoid_relation, queries=250, noise=0.02)
    calibrator = Calibrator("platt").fit(scores, labels)
    assert calibrator.a == pytest.approx(2.0, abs=0.1)
    assert calibrator.b == pytest.approx(-0.5, abs=0.1)


@pytest.mark.parametrize("method", ["isotonic", "platt"])
def test_calibrating_a_miscalibrated_score_lowers_ece_on_held_out_pairs(method):
    raw, labels, _ = pairs(lambda s: s, queries=100, noise=0.1)
    score = raw ** 3  # ranks right, but far below the expected label
    half = len(score) // 2
    calibrator = Calibrator(method).fit(score[:half], labels[:half])
    before = expected_calibration_error(score[half:], labels[half:])
    after = expected_calibration_error(calibrator.predict(score[half:]), labels[half:])
    assert before > 0.15
    assert after < before / 3


@pytest.mark.parametrize("method", ["isotonic", "platt"])
def test_to_label_scale_maps_zero_to_low_and_one_to_high(method):
    scores = np.linspace(0, 1, 101)
    calibrator = Calibrator(method, label_scale=(1, 3)).fit(scores, scores)  # calibrated already
    assert calibrator.to_label_scale([0.0, 0.5, 1.0]) == pytest.approx([1.0, 2.0, 3.0], abs=1e-3)
    assert calibrator.to_label_scale([0.5]) == pytest.approx(1 + 2 * calibrator.predict([0.5]))


@pytest.mark.parametrize("method", ["isotonic", "platt"])
def test_a_saved_calibrator_loads_with_identical_predictions(tmp_path, method):
    scores, labels, query_ids = pairs(lambda s: np.sqrt(s))
    calibrator = Calibrator(method, label_scale=(1, 4)).fit(scores, labels, query_ids=query_ids)
    path = tmp_path / "calibrator.json"
    calibrator.save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calibrator.json"]  # no temporary file left
    saved = json.loads(path.read_text())
    assert saved["version"] == calibration.CALIBRATOR_VERSION and saved["method"] == method
    assert saved["label_scale"] == [1.0, 4.0] and saved["fitted_on"] == {"pairs": len(scores), "queries": 60}
    loaded = Calibrator.load(path)
    grid = np.concatenate([np.linspace(0, 1, 1001), scores])
    assert np.array_equal(loaded.predict(grid), calibrator.predict(grid))
    assert np.array_equal(loaded.to_label_scale(grid), calibrator.to_label_scale(grid))


def _saved(tmp_path, edit):
    scores, labels, _ = pairs(lambda s: s)
    data = Calibrator("isotonic").fit(scores, labels).to_dict()
    edit(data)
    path = tmp_path / "calibrator.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("make, message", [
    (lambda tmp: tmp / "absent.json", "calibrator file not found"),
    (lambda tmp: (tmp / "c.json").write_text('{"version": 1, "meth') and tmp / "c.json", "not a JSON calibrator"),
    (lambda tmp: (tmp / "c.json").write_text("[1, 2]") and tmp / "c.json", "not a calibrator"),
    (lambda tmp: _saved(tmp, lambda d: d.update(version=99)), "calibrator version 99"),
    (lambda tmp: _saved(tmp, lambda d: d.pop("y_thresholds")), "no field 'y_thresholds'"),
    (lambda tmp: _saved(tmp, lambda d: d.update(method="spline")), "unknown calibration method"),
    (lambda tmp: _saved(tmp, lambda d: d.update(y_thresholds=d["y_thresholds"][::-1])), "not an isotonic map"),
])
def test_a_missing_or_corrupted_calibrator_file_is_a_user_error_with_a_fix(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(GraphrelInputError, match=message) as caught:
        Calibrator.load(path)
    assert caught.value.fix and caught.value.path == str(path)


def test_cross_validation_never_fits_and_checks_on_the_same_query(monkeypatch):
    scores, labels, query_ids = pairs(sigmoid_relation, queries=23, per_query=5)
    query_of = dict(zip(scores, query_ids))  # scores are distinct: each names its pair's query
    calls = []
    fit, predict = Calibrator.fit, Calibrator.predict

    def recording_fit(self, s, y, **kwargs):
        calls.append(("fit", self.method, {query_of[v] for v in s}))
        return fit(self, s, y, **kwargs)

    def recording_predict(self, s):
        calls.append(("check", self.method, [query_of[v] for v in s]))
        return predict(self, s)

    monkeypatch.setattr(Calibrator, "fit", recording_fit)
    monkeypatch.setattr(Calibrator, "predict", recording_predict)
    calibrator, info = choose_calibrator(scores, labels, query_ids, label_scale=(1, 3), folds=5, seed=3)
    # per fold and method: a fit then a check; then the chosen method refitted on every query
    *folds, final = calls
    assert len(folds) == 5 * 2 * 2 and final == ("fit", info["method"], set(query_ids))
    checked = {"isotonic": [], "platt": []}
    for (kind, method, fitted), (kind2, method2, held) in zip(folds[::2], folds[1::2]):
        assert (kind, kind2, method) == ("fit", "check", method2)
        assert fitted.isdisjoint(held) and fitted | set(held) == set(query_ids)
        checked[method] += held
    for method in checked:  # every pair checked exactly once
        assert sorted(checked[method]) == sorted(query_ids)
    assert info["queries"] == 23 and info["pairs"] == len(scores) and calibrator.fitted_on["queries"] == 23


def test_choice_is_isotonic_on_a_step_and_the_lower_out_of_fold_error_on_a_sigmoid():
    scores, labels, query_ids = pairs(step_relation, noise=0.03)
    calibrator, info = choose_calibrator(scores, labels, query_ids, label_scale=(1, 3))
    oof = info["out_of_fold"]
    assert info["method"] == calibrator.method == "isotonic"
    assert oof["isotonic"]["mse"] < oof["platt"]["mse"]
    scores, labels, query_ids = pairs(sigmoid_relation, noise=0.05, seed=1)
    calibrator, info = choose_calibrator(scores, labels, query_ids, label_scale=(1, 3), seed=1)
    oof = info["out_of_fold"]
    assert calibrator.method == info["method"]
    assert oof[info["method"]]["mse"] == min(oof["isotonic"]["mse"], oof["platt"]["mse"])
    assert oof["platt"]["mse"] < 0.0035  # the true form: close to the noise variance (0.0025)
    assert all(0 <= oof[m]["ece"] < 0.05 for m in oof)


@pytest.mark.parametrize("queries, per_query, message", [(4, 10, "4 queries"), (10, 1, "10 pairs")])
def test_too_few_queries_or_pairs_to_choose_is_a_user_error(queries, per_query, message):
    scores, labels, query_ids = pairs(lambda s: s, queries=queries, per_query=per_query)
    with pytest.raises(GraphrelInputError, match=f"{message} .*too few"):
        choose_calibrator(scores, labels, query_ids, label_scale=(1, 3), folds=5)


def test_ece_is_zero_for_calibrated_bins_and_the_gap_otherwise():
    levels = np.repeat([0.1, 0.3, 0.5, 0.7, 0.9], 40)
    labels = levels + np.tile([-0.05, 0.05], 100)  # each score level's labels average to it
    assert expected_calibration_error(levels, labels) == pytest.approx(0.0, abs=1e-12)
    assert expected_calibration_error(np.full(50, 0.5), np.full(50, 0.2)) == pytest.approx(0.3)


def test_reliability_curve_has_equal_mass_bins():
    scores, labels, _ = pairs(lambda s: s, queries=50, per_query=20)
    curve = reliability_curve(scores, labels, bins=10)
    assert list(curve.columns) == ["bin", "pairs", "mean_score", "mean_label"]
    assert curve["bin"].tolist() == list(range(10)) and curve["pairs"].tolist() == [100] * 10
    assert curve["mean_score"].is_monotonic_increasing


def test_scores_outside_the_unit_interval_are_a_user_error():
    with pytest.raises(GraphrelInputError, match="scores must be one finite value in"):
        expected_calibration_error([0.2, 3.5], [0.1, 0.2])
    with pytest.raises(GraphrelInputError, match="labels must be"):
        Calibrator().fit([0.2, 0.5], [1.0, 3.0])  # labels on the 1-3 scale, not normalised


def test_reliability_diagram_writes_a_png_and_leaves_no_temporary_file(tmp_path):
    raw, labels, _ = pairs(lambda s: s)
    score = raw ** 3
    after = Calibrator("isotonic").fit(score, labels).predict(score)
    curves = {name: (reliability_curve(score, labels), reliability_curve(after, labels)) for name in ("a", "b")}
    path = tmp_path / "plots" / "reliability.png"
    reliability_diagram(curves, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in path.parent.iterdir()] == ["reliability.png"]


def test_calibration_report_gives_plain_json_figures_and_the_calibrators():
    frames = []
    for seed in (0, 1):
        raw, labels, query_ids = pairs(lambda s: s, seed=seed)
        frames.append(pd.DataFrame({"query_id": query_ids, "label": labels, "cubed": raw ** 3, "fine": raw}))
    validation, test = frames
    test.loc[:9, "fine"] = np.nan  # unscored pairs are left out
    figures, calibrators = calibration_report(validation, test, ["cubed", "fine"], label_scale=(1, 3), seed=0)
    json.dumps(figures, allow_nan=False)
    assert set(figures) == set(calibrators) == {"cubed", "fine"}
    cubed = figures["cubed"]
    assert cubed["method"] == calibrators["cubed"].method
    assert cubed["test"]["ece_after"] < cubed["test"]["ece_before"] / 3
    assert cubed["test"]["mse_after"] < cubed["test"]["mse_before"]
    assert figures["fine"]["test"]["pairs"] == len(test) - 10
    assert set(cubed["validation"]["out_of_fold"]) == {"isotonic", "platt"}
    test["fine"] = np.nan
    figures, _ = calibration_report(validation, test, ["fine"], label_scale=(1, 3), seed=0)
    assert figures["fine"]["test"] == {"pairs": 0, "ece_before": None, "mse_before": None,
                                       "ece_after": None, "mse_after": None}
    with pytest.raises(GraphrelInputError, match="no column"):
        calibration_report(validation, test, ["missing"], label_scale=(1, 3), seed=0)
