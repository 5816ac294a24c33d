"""The test queries' labels reach nothing before the evaluation: a run on data whose
test-query labels are changed (everything else identical) writes byte-identical outputs up to
the evaluation (split, teacher, teacher scores, stack, graphs, students), and other test
metrics. Synthetic pairs, tiny random models: no real data needed."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from conftest import REPO_ROOT

WORDS = ("drill hose paint brush door hinge light bulb led garden cordless steel brass wood exterior interior "
         "roller cover knob nozzle reel cart kit set bit outdoor flood white black copper pipe valve faucet sink "
         "tile grout saw blade hammer nail screw bolt washer ladder shelf bracket lumber plank fence gate lock").split()

#: What the evaluation writes: the only outputs allowed to differ.
EVALUATION_OUTPUTS = {"test_labels.parquet", "metrics.json", "report.md", "test_predictions.parquet",
                      "student_vs_teacher.png", "reliability.png", "queries.md",
                      "README.md"}  # model cards: rewritten with the figures (calibrator.json is not: validation only)
#: Folders the evaluation writes (TREC runs and qrels of the evaluated pairs).
EVALUATION_FOLDERS = {"runs"}
#: Pickles of scikit-learn estimators whose bytes follow string interning in the interpreter
#: (a memo reference or the string again), not their content: compared by what they compute
#: (the lexical teacher's logit of every pair is in stacked_scores.parquet, byte-compared).
PICKLED_ESTIMATORS = {"stack/lexical_teacher.joblib"}


def synthetic_pairs(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    products = {f"p{i:04d}": " ".join(rng.choice(WORDS, rng.integers(3, 9))) for i in range(400)}
    rows = []
    for q in range(200):
        query = " ".join(rng.choice(WORDS, rng.integers(1, 4))) + f" {q}"
        for product in rng.choice(list(products), 6, replace=False):
            overlap = len(set(query.split()) & set(products[product].split()))
            rows.append({"query": query, "product_id": product, "product_text": products[product],
                         "relevance": float(min(3, 1 + overlap + rng.integers(0, 2)))})
    return pd.DataFrame(rows)


def run_pipeline(data, run_dir):
    """``graphrel pipeline`` in a fresh interpreter, as a user runs it (pickled graphs keep
    string identity, which one interpreter running twice would not reproduce)."""
    argv = ["pipeline", "--config", str(REPO_ROOT / "configs" / "tiny_test.yaml"), "--data.kind", "generic",
            "--data.path", str(data), "--data.options", '{"label_column": "relevance", "label_min": 1, "label_max": 3}',
            "--stacking.enabled", "true", "--run-dir", str(run_dir), "--no-progress"]
    # one string-hash seed for both runs: pickles of sets and dicts (the graph's, scikit-learn's
    # vocabularies) follow hash order, which varies between interpreters, not with the labels
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run([sys.executable, "-m", "graphrel.cli", *argv], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stderr


#: Outputs that hold wall-clock measurements: compared without them (the backend chosen, the
#: agreement and every other field must still be identical).
TIMED = {"teacher_backend.json": ("pairs_per_second", "speedup", "seconds", "summary", "reason")}


def _untimed(obj, keys):
    if isinstance(obj, dict):
        return {k: _untimed(v, keys) for k, v in obj.items() if k not in keys}
    return [_untimed(v, keys) for v in obj] if isinstance(obj, list) else obj


def _content(path) -> bytes:
    if path.name in TIMED:
        return json.dumps(_untimed(json.loads(path.read_text()), TIMED[path.name]), sort_keys=True).encode()
    return path.read_bytes()


def digests(run_dir) -> dict[str, str]:
    return {str(path.relative_to(run_dir)): hashlib.sha256(_content(path)).hexdigest()
            for path in sorted(run_dir.rglob("*")) if path.is_file() and path.name not in EVALUATION_OUTPUTS
            and path.relative_to(run_dir).parts[0] not in EVALUATION_FOLDERS}


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """The same run (one path, so checkpoints name the same folders) on the pairs and on the
    pairs with every test query's labels changed."""
    root = tmp_path_factory.mktemp("withheld")
    pairs = synthetic_pairs()
    pairs.to_csv(root / "pairs.csv", index=False)
    run = root / "run"
    log = run_pipeline(root / "pairs.csv", run)
    (root / "first_run.log").write_text(log)
    test_queries = set(pd.read_parquet(run / "test_labels.parquet").query_id)
    assert test_queries
    changed = pairs.copy()
    is_test = changed["query"].isin(test_queries)
    changed.loc[is_test, "relevance"] = 4.0 - changed.loc[is_test, "relevance"]  # 1 <-> 3, 2 stays
    assert (changed.relevance != pairs.relevance).any()
    shutil.move(run, root / "original")
    changed.to_csv(root / "pairs.csv", index=False)  # the same path: the run records it
    run_pipeline(root / "pairs.csv", run)
    return root / "original", run


def test_outputs_before_the_evaluation_do_not_depend_on_test_labels(two_runs):
    original, changed = two_runs
    before, after = digests(original), digests(changed)
    for expected in ("pairs.parquet", "teacher_scores.parquet", "stacked_scores.parquet", "graph.pt",
                     "graph_new_query.pt", "student_korder/model.ckpt", "student_bert2dnn/student.json",
                     "stack/lexical_teacher.joblib", "teacher/model.safetensors"):
        assert expected in before, expected
    differing = sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))
    assert [name for name in differing if name not in PICKLED_ESTIMATORS] == []


def test_the_test_metrics_do_change(two_runs):
    original, changed = (json.loads((run / "metrics.json").read_text()) for run in two_runs)
    teacher = [m["protocols"]["new_pairs"]["models"]["teacher"]["auc"] for m in (original, changed)]
    assert teacher[0] != pytest.approx(teacher[1])
    labels = [pd.read_parquet(run / "test_labels.parquet") for run in two_runs]
    assert not labels[0]["label"].equals(labels[1]["label"])


def test_pairs_file_withholds_the_test_labels(two_runs):
    pairs = pd.read_parquet(two_runs[0] / "pairs.parquet")
    withheld = pairs.split.isin(["test", "test_context"])
    assert withheld.any() and pairs.loc[withheld, ["relevance", "label"]].isna().all().all()
    assert pairs.loc[pairs.split.isin(["train", "val"]), "label"].notna().all()


def test_a_default_run_logs_graphrels_lines_without_third_party_noise(two_runs):
    log = (two_runs[0].parent / "first_run.log").read_text()
    assert "graphrel: stage split ..." in log and "graphrel: stage evaluate done" in log
    for noise in ("LeafSpec", "litlogger", "LOAD REPORT", "GPU available", "Loading weights", "Writing model shards"):
        assert noise not in log, noise
