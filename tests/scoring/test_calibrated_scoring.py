"""``graphrel score --calibrated``: scores through the model's calibrator, refused without one."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from fake_cli import FakeScorer
from graphrel.scoring.calibration import Calibrator
from helpers import assert_one_line_error, fake_model, pairs_csv, run_cli  # noqa: F401 (fixture)


def test_calibrated_scores_are_the_calibrators_map_of_the_model_scores(fake_model, tmp_path, capsys):
    rng = np.random.default_rng(0)
    raw = rng.random(400)
    calibrator = Calibrator("platt", label_scale=(1, 3)).fit(raw, np.clip(raw ** 2 + rng.normal(0, 0.05, 400), 0, 1))
    calibrator.save(fake_model / "calibrator.json")
    source = pairs_csv(tmp_path / "pairs.csv", n=120)
    code, out, err = run_cli(capsys, "score", "--model", str(fake_model), "--input", str(source),
                             "--output", str(tmp_path / "calibrated.parquet"), "--calibrated")
    assert code == 0, err
    assert "expected label on the label scale" in out
    code, _, err = run_cli(capsys, "score", "--model", str(fake_model), "--input", str(source),
                           "--output", str(tmp_path / "raw.parquet"))
    assert code == 0, err
    calibrated, plain = pd.read_parquet(tmp_path / "calibrated.parquet"), pd.read_parquet(tmp_path / "raw.parquet")
    frame = pd.read_csv(source)
    assert np.array_equal(plain["score"], FakeScorer().score(None, frame["query"], None, frame["product_text"]))
    np.testing.assert_allclose(calibrated["score"], calibrator.to_label_scale(plain["score"]), rtol=1e-6)
    assert calibrated["score"].between(1, 3).all() and not np.allclose(calibrated["score"], plain["score"])
    summary = json.loads((tmp_path / "calibrated.parquet.summary.json").read_text())
    assert summary["calibrated"] == {"method": "platt", "label_scale": [1.0, 3.0]}
    assert json.loads((tmp_path / "raw.parquet.summary.json").read_text())["calibrated"] is None


def test_calibrated_without_a_calibrator_is_refused(fake_model, tmp_path, capsys):
    source = pairs_csv(tmp_path / "pairs.csv", n=10)
    out = tmp_path / "scores.parquet"
    code, _, err = run_cli(capsys, "score", "--model", str(fake_model), "--input", str(source), "--output", str(out),
                           "--calibrated")
    assert_one_line_error(code, err, "calibrator.json", "no calibrator", "graphrel pipeline")
    assert not out.exists()
