"""Calibration of every model's score to the label scale, fitted on the validation queries.

After the evaluation, each model (the cross-encoder teacher and every student) gets a
calibrator (:mod:`graphrel.scoring.calibration`: isotonic or Platt, chosen by out-of-fold
error over validation queries) mapping its score in [0, 1] to the expected human label.
It is saved as ``calibrator.json`` in the model's directory (``graphrel score --calibrated``
reads it) and judged on the test pairs under both protocols: expected calibration error
and squared error before and after, and ``reliability.png``.

Honest by construction: the calibrators see validation pairs only. Graph students score
them with ``graph_new_query.pt``, from which every validation query's edges are absent
(the validation queries are new to it, as the test queries are under ``new_query``); the
one calibrator per student is then applied to both protocols' test scores (under
``new_pairs`` the student reads more context than the calibrator saw, which the report
says). The test labels are read only from the evaluation's predictions file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from graphrel import run as R
from graphrel.pipeline.evaluation import label_scale
from graphrel.pipeline.protocols import PROTOCOL_GRAPHS, PROTOCOLS
from graphrel.scoring.calibration import calibration_report, reliability_curve, reliability_diagram
from graphrel.scoring.load import load_scorer

#: The picture of the reliability curves, in the run directory.
RELIABILITY_PLOT = "reliability.png"
#: A calibrator's file inside a model directory.
CALIBRATOR = "calibrator.json"


def validation_scores(run_dir: Path, scored: pd.DataFrame, students: dict[str, Path], *,
                      temperature: float = 1.0) -> pd.DataFrame:
    """The validation pairs (``query_id``, ``label`` normalised in [0, 1]) with every model's
    score: ``teacher`` (the run's cross-encoder scores, sigmoid(logit / ``temperature``) in a
    stacked run) and each student, graph students reading
    ``graph_new_query.pt`` (no validation query has an edge in it)."""
    val = scored[(scored["split"] == "val") & scored["label"].notna()].reset_index(drop=True)
    # a stacked run's teacher_score is the stack's; the "teacher" column is the cross-encoder's
    teacher = (1 / (1 + np.exp(-val["cross_encoder_logit"].to_numpy(float) / temperature))
               if "cross_encoder_logit" in val else val["teacher_score"].to_numpy(float))
    out = val[["query_id", "product_id", "label"]].assign(teacher=teacher)
    for name, directory in students.items():
        scorer = load_scorer(directory, graph=run_dir / PROTOCOL_GRAPHS["new_query"])
        out[name] = np.asarray(scorer.score(val["query_id"], val["query"], val["product_id"], val["product_text"]),
                               dtype=float)
    return out


def calibrate_models(config, run_dir: str | Path, scored: pd.DataFrame, students: dict[str, Path]) -> dict:
    """Fit, save and judge a calibrator per model. -> ``MODEL/calibrator.json``, ``reliability.png``.

    Args:
        config: the :class:`~graphrel.pipeline.config.PipelineConfig` (its ``seed``).
        run_dir: a run whose evaluation wrote ``test_predictions.parquet``.
        scored: every pair with its split and the run's teacher scores.
        students: student name -> its directory.

    Returns:
        ``metrics.json``'s ``calibration``: ``{"fitted_on", "label_scale", "models": {column:
        {"method", "validation": {...}, "test": {"pairs", "ece_before", "ece_after",
        "mse_before", "mse_after"}}}}`` (ECE and MSE on the normalised [0, 1] scale), one
        column per teacher and per student and protocol, as ``test_predictions.parquet``.
    """
    run_dir = Path(run_dir)
    test = pd.read_parquet(run_dir / "test_predictions.parquet")
    scale = label_scale(run_dir)
    validation = validation_scores(run_dir, scored, students, temperature=config.teacher.temperature)
    columns = ["teacher"] + [f"{name}:{protocol}" for name in students for protocol in PROTOCOLS]
    for name in students:  # one calibrator per student: its validation scores under both names
        for protocol in PROTOCOLS:
            validation[f"{name}:{protocol}"] = validation[name]
    figures, calibrators = calibration_report(validation, test, columns, label_scale=scale, seed=config.seed)
    calibrators["teacher"].save(run_dir / R.TEACHER_DIR / CALIBRATOR)
    for name, directory in students.items():  # the same fit under both protocols' names: save one
        calibrators[f"{name}:{PROTOCOLS[0]}"].save(Path(directory) / CALIBRATOR)
    curves = {}
    for column in columns:
        held = test[["label", column]].dropna()
        before = held[column].to_numpy(float)
        curves[column] = (reliability_curve(before, held["label"]),
                          reliability_curve(calibrators[column].predict(before), held["label"]))
    reliability_diagram(curves, run_dir / RELIABILITY_PLOT)
    return {"fitted_on": "validation pairs (graph students read graph_new_query.pt, which holds no validation "
                         "query); one calibrator per model, applied under both protocols",
            "label_scale": list(scale), "models": figures}
