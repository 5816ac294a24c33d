"""The cross-encoder teacher scores files like a student: ``graphrel score --model RUN/teacher``."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy.stats import spearmanr

from graphrel.errors import GraphrelInputError
from graphrel.scoring.load import load_scorer
from graphrel.scoring.teacher_scorer import TeacherScorer, is_teacher_directory
from helpers import assert_one_line_error, run_cli, tiny_run_dir  # noqa: F401 (fixture)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return tiny_run_dir(tmp_path_factory)


def _run_pairs(run, n):
    pairs = pd.read_parquet(run / "pairs.parquet").sample(n, random_state=0)
    scores = pd.read_parquet(run / "teacher_scores.parquet")
    return pairs.merge(scores, on=["query_id", "product_id"], how="left")


def test_score_command_gives_the_runs_own_teacher_scores(tiny_run, tmp_path, capsys):
    pairs = _run_pairs(tiny_run, 300)
    source = tmp_path / "pairs.csv"
    pairs[["query_id", "query", "product_id", "product_text"]].to_csv(source, index=False)
    out = tmp_path / "scores.parquet"
    code, stdout, err = run_cli(capsys, "score", "--model", str(tiny_run / "teacher"), "--input", str(source),
                                "--query-id-column", "query_id", "--output", str(out))
    assert code == 0, err
    assert "cross encoder 300 rows" in stdout
    scored = pd.read_parquet(out)
    assert list(scored.columns) == ["row_id", "query_id", "product_id", "score"]
    # on the backend that labelled the run (the tiny run's random teacher agrees with fp32 only
    # in int8, whose dynamic activation scales depend on each batch's other pairs: close, not equal)
    backend = load_scorer(tiny_run / "teacher").backend
    assert backend == json.loads((tiny_run / "teacher_backend.json").read_text())["backend"]
    assert spearmanr(scored["score"], pairs["teacher_score"])[0] > (0.9999 if backend in ("fp32", "bf16") else 0.995)
    np.testing.assert_allclose(scored["score"], pairs["teacher_score"], atol=1e-5 if backend == "fp32" else 2e-2)


def test_the_runs_temperature_is_applied(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run / "teacher", run / "teacher")
    config = yaml.safe_load((tiny_run / "config.yaml").read_text())
    pairs = _run_pairs(tiny_run, 50)
    args = (pairs.query_id, pairs["query"], pairs.product_id, pairs.product_text)
    alone = load_scorer(run / "teacher")  # no config.yaml beside it: temperature 1
    assert alone.temperature == 1.0
    config["pipeline"]["teacher"]["temperature"] = 2.0
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    warm = load_scorer(run / "teacher")
    logits = pairs["teacher_logit"].to_numpy()
    np.testing.assert_allclose(alone.score(*args), 1 / (1 + np.exp(-logits)), atol=1e-5)
    np.testing.assert_allclose(warm.score(*args), 1 / (1 + np.exp(-logits / 2)), atol=1e-5)
    assert warm.paths(pairs.query_id, pairs.product_id) == {"cross_encoder": 50}


def test_teacher_directory_detection(tiny_run, tmp_path):
    assert is_teacher_directory(tiny_run / "teacher")
    assert not is_teacher_directory(tiny_run / "student_korder")  # a student has student.json
    (tmp_path / "config.json").write_text('{"architectures": ["BertModel"]}')  # an encoder, not a cross-encoder
    assert not is_teacher_directory(tmp_path)
    with pytest.raises(GraphrelInputError, match="not a teacher directory"):
        TeacherScorer.load(tmp_path)
    with pytest.raises(GraphrelInputError, match="not a model directory"):
        load_scorer(tmp_path)


def test_resume_fingerprints_the_runs_config(tiny_run, tmp_path):
    from graphrel.scoring.score_parts import model_files

    files = {path.name for path in model_files(tiny_run / "teacher")}
    assert {"config.json", "model.safetensors", "config.yaml"} <= files
    assert "graph.pt" in {path.name for path in model_files(tiny_run / "student_korder")}


def test_the_teacher_scores_on_the_backend_that_labelled_its_run(tiny_run, tmp_path):
    """teacher_backend.json beside the teacher names the backend of the run's labels: the scorer
    (and so graphrel score, --rerank and the two-stage re-ranker) scores on it; fp32 without it."""
    import json

    from graphrel.scoring.teacher_backends import unavailable_backends
    from graphrel.scoring.teacher_labelling import teacher_logits

    run = tmp_path / "run"
    shutil.copytree(tiny_run / "teacher", run / "teacher")
    assert load_scorer(run / "teacher").backend == "fp32"  # no record: eager fp32
    pairs = _run_pairs(tiny_run, 40)
    (run / "teacher_backend.json").write_text(json.dumps({"backend": "int8_all"}))
    scorer = load_scorer(run / "teacher")
    expected_backend = "fp32" if "int8_all" in unavailable_backends() else "int8_all"
    assert scorer.backend == expected_backend
    want = teacher_logits(scorer.teacher, list(pairs["query"]), list(pairs.product_text), progress=False,
                          backend=expected_backend)
    np.testing.assert_allclose(scorer.logits(pairs["query"], pairs.product_text), want, atol=1e-6)
    from graphrel.scoring.score_parts import model_files

    assert "teacher_backend.json" in {path.name for path in model_files(run / "teacher")}  # --resume sees it
    (run / "teacher_backend.json").write_text(json.dumps({"backend": "fp8"}))
    with pytest.raises(GraphrelInputError, match="unknown teacher backend 'fp8'"):
        load_scorer(run / "teacher")
