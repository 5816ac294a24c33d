"""Calibration of model scores to the label scale: isotonic or Platt, chosen over queries.

A student's sigmoid score in [0, 1] is read as the expected normalised human label
(``(label - low) / (high - low)``); nothing in distillation makes that true. A
:class:`Calibrator` maps the score to the expected label, fitted on judged pairs:

- ``isotonic``: scikit-learn's ``IsotonicRegression`` (Zadrozny & Elkan, "Transforming
  Classifier Scores into Accurate Multiclass Probability Estimates", KDD 2002);
- ``platt``: ``sigmoid(a * logit(score) + b)`` (Platt, "Probabilistic Outputs for Support
  Vector Machines and Comparisons to Regularized Likelihood Methods", 1999), fitted by
  scikit-learn's ``LogisticRegression`` to the normalised labels as soft targets.

:func:`choose_calibrator` picks the method of lower out-of-fold squared error over query
folds (``GroupKFold``); :func:`expected_calibration_error` is the ECE of Guo et al., "On
Calibration of Modern Neural Networks" (ICML 2017), read for a graded target;
:func:`calibration_report` serves the evaluation stage, :func:`reliability_diagram` draws.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import expit, logit
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold

from graphrel.errors import GraphrelInputError
from graphrel.run import atomic_path, write_json

__all__ = ["Calibrator", "choose_calibrator", "expected_calibration_error", "reliability_curve",
           "reliability_diagram", "calibration_report", "METHODS", "CALIBRATOR_VERSION"]

METHODS = ("isotonic", "platt")  #: the methods, as named in a saved calibrator
CALIBRATOR_VERSION = 1  #: format of a saved calibrator; ``Calibrator.load`` reads this one only
MIN_PAIRS = 20  #: fewest pairs :func:`choose_calibrator` fits on
SCORE_CLIP = 1e-6  #: scores are clipped to [SCORE_CLIP, 1 - SCORE_CLIP] before Platt's logit
_REFIT = "fit the calibrator again with this graphrel (choose_calibrator, then Calibrator.save)"


def _unit(values, what: str, fix: str) -> np.ndarray:
    """(N,) float64 in [0, 1] (a rounding error of 1e-6 outside is clipped), else GraphrelInputError."""
    array = np.asarray(values, dtype=float)
    if array.ndim != 1 or not np.all(np.isfinite(array)) or ((array < -1e-6) | (array > 1 + 1e-6)).any():
        raise GraphrelInputError(f"{what} must be one finite value in [0, 1] per pair (1-D)", fix=fix)
    return np.clip(array, 0.0, 1.0)


def _checked(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    """(N,) float64 scores and labels, checked: 1-D, finite, in [0, 1], equal lengths."""
    s = _unit(scores, "scores", "pass sigmoid scores in [0, 1] (not logits), NaN rows dropped")
    y = _unit(labels, "labels", "pass labels normalised as (label - low) / (high - low)")
    if len(s) != len(y):
        raise GraphrelInputError(f"{len(s)} scores but {len(y)} labels", fix="pass one label per score")
    return s, y


def _isotonic() -> IsotonicRegression:
    return IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)


def _logit(scores: np.ndarray) -> np.ndarray:
    return logit(np.clip(scores, SCORE_CLIP, 1 - SCORE_CLIP))


class Calibrator:
    """Maps a model's score in [0, 1] to the expected human label.

    Args:
        method: ``"isotonic"`` or ``"platt"`` (see the module docstring).
        label_scale: (low, high) of the original labels ((1, 3) for Home Depot), the range
            of :meth:`to_label_scale`.

    Once fitted, ``fitted_on`` is ``{"pairs": N, "queries": Q or None}``; ``a``, ``b`` are
    Platt's slope and intercept on the score's logit (``platt`` only).

    Raises:
        ValueError: an unknown ``method``, or ``high <= low``.
    """

    def __init__(self, method: str = "isotonic", *, label_scale: tuple[float, float] = (0.0, 1.0)) -> None:
        if method not in METHODS:
            raise ValueError(f"unknown calibration method {method!r}; choose from {METHODS}")
        low, high = (float(v) for v in label_scale)
        if not high > low:
            raise ValueError(f"label_scale must be (low, high) with high > low, got {label_scale!r}")
        self.method, self.label_scale = method, (low, high)
        self.fitted_on: dict | None = None
        self.a = self.b = None
        self._isotonic: IsotonicRegression | None = None

    def fit(self, scores, labels_normalised, *, query_ids=None) -> Calibrator:
        """Fit on (N,) scores and (N,) normalised labels, both in [0, 1]; ``query_ids`` (N,),
        if given, only counts the queries in ``fitted_on``. Returns ``self``. Platt enters each
        pair twice, target 1 with sample weight y and target 0 with weight 1 - y (the logistic
        likelihood of a soft target y), unpenalised.

        Raises:
            GraphrelInputError: scores or labels not finite, outside [0, 1], or of unequal lengths.
        """
        s, y = _checked(scores, labels_normalised)
        if self.method == "isotonic":
            self._isotonic = _isotonic().fit(s, y)
        else:
            x = np.concatenate([_logit(s), _logit(s)])[:, None]
            target = np.concatenate([np.ones(len(y)), np.zeros(len(y))])
            weight = np.concatenate([y, 1 - y])
            model = LogisticRegression(C=np.inf, max_iter=1000).fit(x, target, sample_weight=weight)
            self.a, self.b = float(model.coef_[0, 0]), float(model.intercept_[0])
        queries = None if query_ids is None else int(pd.unique(np.asarray(query_ids, dtype=object)).size)
        self.fitted_on = {"pairs": int(len(s)), "queries": queries}
        return self

    def predict(self, scores) -> np.ndarray:
        """(N,) expected normalised label in [0, 1] of (N,) scores in [0, 1]."""
        if self.fitted_on is None:
            raise RuntimeError("the calibrator is not fitted: call fit() or Calibrator.load()")
        s = _unit(scores, "scores", "pass sigmoid scores in [0, 1] (not logits), NaN rows dropped")
        if not len(s):
            return s
        if self.method == "isotonic":
            return self._isotonic.predict(s)
        return expit(self.a * _logit(s) + self.b)

    def to_label_scale(self, scores) -> np.ndarray:
        """(N,) expected label on the original scale [low, high] of (N,) scores in [0, 1]."""
        low, high = self.label_scale
        return low + (high - low) * self.predict(scores)

    def to_dict(self) -> dict:
        """The calibrator as plain JSON values: ``version``, ``method``, ``label_scale``,
        ``fitted_on`` and ``x_thresholds`` / ``y_thresholds`` (isotonic) or ``a`` / ``b`` (platt)."""
        if self.fitted_on is None:
            raise RuntimeError("the calibrator is not fitted: nothing to save")
        params = ({"x_thresholds": self._isotonic.X_thresholds_.tolist(),
                   "y_thresholds": self._isotonic.y_thresholds_.tolist()}
                  if self.method == "isotonic" else {"a": self.a, "b": self.b})
        return {"version": CALIBRATOR_VERSION, "method": self.method, "label_scale": list(self.label_scale),
                "fitted_on": dict(self.fitted_on), **params}

    @classmethod
    def from_dict(cls, data, *, path: str | Path | None = None) -> Calibrator:
        """The calibrator :meth:`to_dict` gave, predicting identically (an isotonic fit of its
        own thresholds reproduces them; anything else is refused).

        Raises:
            GraphrelInputError: another ``version``, or a missing or malformed field (``path``,
                if given, is named in the message).
        """
        if not isinstance(data, dict):
            raise GraphrelInputError("not a calibrator (expected a JSON object)", path=path, fix=_REFIT)
        if data.get("version") != CALIBRATOR_VERSION:
            raise GraphrelInputError(f"calibrator version {data.get('version')!r}; this graphrel reads version "
                                     f"{CALIBRATOR_VERSION}", path=path, fix=_REFIT)
        try:
            calibrator = cls(data["method"], label_scale=data["label_scale"])
            counts = data["fitted_on"]
            fitted_on = {"pairs": int(counts["pairs"]),
                         "queries": None if counts["queries"] is None else int(counts["queries"])}
            if calibrator.method == "isotonic":
                x, y = np.asarray(data["x_thresholds"], float), np.asarray(data["y_thresholds"], float)
                calibrator._isotonic = _isotonic().fit(x, y)
                if not (np.array_equal(calibrator._isotonic.X_thresholds_, x)
                        and np.array_equal(calibrator._isotonic.y_thresholds_, y)):
                    raise ValueError("the thresholds are not an isotonic map (x increasing, y rising in [0, 1])")
            else:
                calibrator.a, calibrator.b = float(data["a"]), float(data["b"])
                if not (math.isfinite(calibrator.a) and math.isfinite(calibrator.b)):
                    raise ValueError("a and b must be finite")
        except KeyError as error:
            raise GraphrelInputError(f"malformed calibrator: no field {error}", path=path, fix=_REFIT) from None
        except (TypeError, ValueError) as error:
            raise GraphrelInputError(f"malformed calibrator: {error}", path=path, fix=_REFIT) from None
        calibrator.fitted_on = fitted_on
        return calibrator

    def save(self, path: str | Path) -> None:
        """Write :meth:`to_dict` as JSON, atomically."""
        write_json(self.to_dict(), path)

    @classmethod
    def load(cls, path: str | Path) -> Calibrator:
        """The calibrator :meth:`save` wrote to ``path``; GraphrelInputError if the file is
        missing, not JSON, of another version or malformed."""
        path = Path(path)
        if not path.is_file():
            raise GraphrelInputError("calibrator file not found", path=path,
                                     fix="pass the path of a calibrator written by Calibrator.save")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise GraphrelInputError(f"not a JSON calibrator ({error})", path=path, fix=_REFIT) from None
        return cls.from_dict(data, path=path)


def choose_calibrator(scores, labels_normalised, query_ids, *, label_scale: tuple[float, float],
                      folds: int = 5, seed: int = 0, bins: int = 10) -> tuple[Calibrator, dict]:
    """Choose isotonic or Platt by out-of-fold squared error, then refit it on every pair.

    ``GroupKFold`` (shuffled by ``seed``) splits the queries into ``folds`` groups; each
    method is fitted on the other folds' pairs and predicts the held-out fold's, so every
    pair gets one out-of-fold prediction from a fit that saw none of its query's pairs.
    The method of lower out-of-fold MSE is chosen (a tie goes to Platt, two parameters).

    Args:
        scores, labels_normalised: (N,) float in [0, 1], a model's scores of (validation)
            pairs and their normalised human labels; query_ids: (N,) the query of each pair.
        label_scale: (low, high) of the original labels.
        folds: number of query folds, >= 2; seed: shuffles the queries into folds; bins: of the ECE.

    Returns:
        ``(calibrator, info)``: the chosen method fitted on all N pairs, and ``{"method",
        "folds", "seed", "pairs", "queries", "out_of_fold": {method: {"mse", "ece"}}}``.

    Raises:
        GraphrelInputError: fewer than ``folds`` queries or MIN_PAIRS pairs, or bad values.
    """
    s, y = _checked(scores, labels_normalised)
    groups = np.asarray(query_ids, dtype=object)
    if len(groups) != len(s):
        raise GraphrelInputError(f"{len(s)} scores but {len(groups)} query ids", fix="pass one query id per pair")
    queries = int(pd.unique(groups).size)
    if len(s) < MIN_PAIRS or queries < folds:
        raise GraphrelInputError(
            f"{len(s)} pairs of {queries} queries are too few to choose a calibrator by {folds}-fold "
            f"cross-validation over queries (need at least {MIN_PAIRS} pairs and {folds} queries)",
            fix="calibrate on a larger validation split, or use fewer folds")
    out_of_fold = {method: np.empty(len(s)) for method in METHODS}
    for fit_rows, check_rows in GroupKFold(n_splits=folds, shuffle=True, random_state=seed).split(s, y, groups):
        for method in METHODS:
            fitted = Calibrator(method, label_scale=label_scale).fit(s[fit_rows], y[fit_rows])
            out_of_fold[method][check_rows] = fitted.predict(s[check_rows])
    figures = {method: {"mse": float(np.mean((predicted - y) ** 2)),
                        "ece": expected_calibration_error(predicted, y, bins=bins)}
               for method, predicted in out_of_fold.items()}
    chosen = min(("platt", "isotonic"), key=lambda method: figures[method]["mse"])
    calibrator = Calibrator(chosen, label_scale=label_scale).fit(s, y, query_ids=groups)
    info = {"method": chosen, "folds": folds, "seed": seed, "pairs": len(s), "queries": queries}
    return calibrator, {**info, "out_of_fold": figures}


def reliability_curve(scores, labels, bins: int = 10) -> pd.DataFrame:
    """Mean label against mean score in equal-mass score bins.

    Edges are the ``bins + 1`` quantiles of ``scores`` (``np.quantile``); ``np.digitize`` on
    the inner edges puts each pair in bin 0 .. bins - 1 (a score equal to an edge goes up, so
    tied scores share a bin and some bins may stay empty). ``scores``: (N,) float in [0, 1],
    raw ("before") or calibrated ("after"); ``labels``: (N,) normalised labels in [0, 1].

    Returns:
        One row per non-empty bin: ``bin`` (int), ``pairs`` (int), ``mean_score``, ``mean_label``.
    """
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins!r}")
    s, y = _checked(scores, labels)
    if not len(s):
        return pd.DataFrame({"bin": [], "pairs": [], "mean_score": [], "mean_label": []})
    edges = np.quantile(s, np.linspace(0.0, 1.0, bins + 1))
    frame = pd.DataFrame({"bin": np.digitize(s, edges[1:-1]), "score": s, "label": y})
    return (frame.groupby("bin").agg(pairs=("score", "size"), mean_score=("score", "mean"),
                                     mean_label=("label", "mean")).reset_index())


def _ece_of_curve(curve: pd.DataFrame) -> float:
    total = curve["pairs"].sum()
    gaps = (curve["mean_score"] - curve["mean_label"]).abs()
    return float((curve["pairs"] / total * gaps).sum()) if total else float("nan")


def expected_calibration_error(scores, labels_normalised, bins: int = 10) -> float:
    """ECE of a graded target: ``sum_b (n_b / N) * |mean score_b - mean label_b|``.

    Guo et al. (ICML 2017) define ECE for class probabilities (confidence against accuracy
    per bin); here the score is read as the expected normalised label, so each bin compares
    its mean score with its mean label. Bins are :func:`reliability_curve`'s (equal mass).

    Returns:
        ECE in [0, 1] of (N,) scores and labels in [0, 1], on the normalised scale (times
        ``high - low`` for label units); NaN for N = 0.
    """
    return _ece_of_curve(reliability_curve(scores, labels_normalised, bins=bins))


def reliability_diagram(curves: dict[str, tuple[pd.DataFrame, pd.DataFrame]], path: str | Path) -> None:
    """PNG at ``path``, one panel per model of ``curves`` (name -> (before, after)
    :func:`reliability_curve` frames of the raw and the calibrated score): mean label against
    mean score per bin, the diagonal, each curve's ECE in the legend. Written atomically
    (matplotlib's Agg canvas, no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not curves:
        raise ValueError("no reliability curves to draw")
    columns = min(3, len(curves))
    rows = -(-len(curves) // columns)
    figure = Figure(figsize=(4.8 * columns, 4.5 * rows))
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for axis, (name, pair) in zip(axes, curves.items()):
        axis.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="perfect calibration")
        for when, curve, marker in zip(("before", "after"), pair, "os"):
            axis.plot(curve["mean_score"], curve["mean_label"], marker=marker,
                      label=f"{when} (ECE {_ece_of_curve(curve):.3f})")
        axis.set(xlim=(0, 1), ylim=(0, 1), title=name, xlabel="mean score in bin (normalised)",
                 ylabel="mean human label in bin (normalised)")
        axis.title.set_fontsize(9)
        axis.legend(fontsize=8, loc="upper left")
    for axis in axes[len(curves):]:
        axis.set_axis_off()
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=110, format="png")


def _held_out(before: np.ndarray, after: np.ndarray, labels: np.ndarray, bins: int) -> dict:
    """ECE and MSE of raw and calibrated scores of held-out pairs (None, JSON null, for none)."""
    out = {"pairs": len(labels)}
    for when, scores in (("before", before), ("after", after)):
        out[f"ece_{when}"] = expected_calibration_error(scores, labels, bins=bins) if len(labels) else None
        out[f"mse_{when}"] = float(np.mean((scores - labels) ** 2)) if len(labels) else None
    return out


def calibration_report(validation: pd.DataFrame, test: pd.DataFrame, score_columns, *,
                       label_scale: tuple[float, float], seed: int = 0, folds: int = 5,
                       bins: int = 10) -> tuple[dict, dict[str, Calibrator]]:
    """Per model column: choose and fit a calibrator on ``validation``, measure it on ``test``.

    Pure (writes nothing). Rows whose score or label is NaN are left out, per column.

    Args:
        validation, test: frames of ``query_id``, ``label`` (normalised) and score columns.
        score_columns: the model columns to calibrate (e.g. ``"student_korder:new_query"``).
        label_scale, seed, folds, bins: as :func:`choose_calibrator`'s.

    Returns:
        ``(figures, calibrators)``: figures for ``metrics.json``, per column ``{"method",
        "validation": {"pairs", "queries", "out_of_fold": {method: {"mse", "ece"}}}, "test":
        {"pairs", "ece_before", "ece_after", "mse_before", "mse_after"}}`` (plain floats on the
        normalised scale, None where undefined), and the fitted calibrators by column.

    Raises:
        GraphrelInputError: a missing column, or too few validation pairs or queries.
    """
    figures, calibrators = {}, {}
    for column in score_columns:
        for name, frame in (("validation", validation), ("test", test)):
            missing = sorted({"query_id", "label", column} - set(frame.columns))
            if missing:
                raise GraphrelInputError(f"the {name} pairs have no column(s) {missing}",
                                         fix="score the pairs with every model first, or name existing columns")
        fit_on = validation[["query_id", "label", column]].dropna()
        calibrator, info = choose_calibrator(fit_on[column], fit_on["label"], fit_on["query_id"],
                                             label_scale=label_scale, folds=folds, seed=seed, bins=bins)
        held = test[["label", column]].dropna()
        before = held[column].to_numpy(float)
        figures[column] = {"method": info["method"],
                           "validation": {key: info[key] for key in ("pairs", "queries", "out_of_fold")},
                           "test": _held_out(before, calibrator.predict(before), held["label"].to_numpy(float), bins)}
        calibrators[column] = calibrator
    return figures, calibrators
