"""Integration: `graphrel pipeline` on a slice of the real Home Depot data with the real
MiniLM-L6 backbone, then `graphrel score` on pairs absent from training."""

import json
import math
import re

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from graphrel.cli import main

pytestmark = pytest.mark.real_data

SLICE = {
    "seed": 0,
    "data": {"kind": "home_depot", "max_queries": 200},
    "transfer": {"tfidf_per_query": 1, "random_per_query": 1},
    "teacher": {"backbone": "minilm-l6", "max_train_pairs": 320, "max_val_pairs": 160, "epochs": 1},
    "student": {"order": 2, "cap": 8, "epochs": 2, "batch_size": 128},
}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from conftest import real_data_path

    path = real_data_path()
    if path is None:
        pytest.skip("real Home Depot data not found (see data/README.md)")
    root = tmp_path_factory.mktemp("pipeline")
    config = dict(SLICE, data=dict(SLICE["data"], path=str(path)))
    (root / "slice.yaml").write_text(yaml.safe_dump(config))
    assert main(["pipeline", "--config", str(root / "slice.yaml"), "--run-dir", str(root / "run"),
                 "--no-progress"]) == 0
    return root / "run"


def test_metrics_for_every_model_in_both_protocols(run_dir):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for protocol in ("new_query", "new_pairs"):
        models = metrics["protocols"][protocol]["models"]
        assert set(models) == {"teacher", "student_k0", "student_korder", "student_online"}
        for name, values in models.items():
            for key in ("rmse", "auc", "spearman", "ndcg"):
                assert math.isfinite(values[key]), (protocol, name, key)
                low, high = values["intervals"][key]
                assert low <= values[key] <= high, (protocol, name, key)
            assert 0 < values["rmse"] < 2 and 0 <= values["auc"] <= 1
            # a speed of its own, or the computation it is (a text fallback for every pair)
            assert ("pairs_per_second" in values) != ("same_computation_as" in values), (protocol, name)
            if name != "teacher":  # compared with the teacher, unless it is another model's computation
                assert ("same_computation_as" in values) != ("teacher" in values.get("differences", {}))
    # a new query's pairs take the graph path (no text fallback by default): through its nearest
    # logged queries where it has some, else from the product side or an empty neighbourhood
    new_query = metrics["protocols"]["new_query"]["models"]
    paths = new_query["student_korder"]["paths"]
    test_pairs = metrics["split"]["test"]["pairs"]
    assert paths["graph"] == paths["queries_not_in_graph"] == test_pairs and paths["text_fallback"] == 0
    assert paths["built_neighbourhood"] + paths["nothing_known"] <= test_pairs  # (a tiny slice may have no similar query)
    assert "same_computation_as" not in new_query["student_korder"]
    assert metrics["ndcg"]["random_order"] < 1 and metrics["ndcg"]["queries"] > 0
    assert set(metrics["deduplication"]["edges_removed"]) == {"new_query", "new_pairs"}
    split = metrics["split"]
    assert split["test"]["pairs"] > 0 and split["test_context"]["pairs"] > 0 and split["transfer"]["pairs"] > 0
    assert (run_dir / "student_vs_teacher.png").stat().st_size > 10_000
    assert re.search(r"^\| student_korder +\|", (run_dir / "report.md").read_text(), re.MULTILINE)


def test_split_is_query_disjoint_and_test_labels_stay_out_of_the_graph(run_dir):
    pairs = pd.read_parquet(run_dir / "pairs.parquet")
    labelled = pairs[pairs.split != "transfer"]
    # a test query's judged pairs are split into evaluated "test" pairs and graph "test_context"
    per_query = labelled["split"].replace({"test_context": "test"}).groupby(labelled["query_id"]).nunique()
    assert (per_query == 1).all()
    graph = torch.load(run_dir / "graph.pt", weights_only=False)
    store = graph["query", "shown", "product"]
    assert torch.isnan(store.label[store.split != 0]).all()
    assert not torch.isnan(store.label[store.split == 0]).any()
    assert not torch.isnan(store.teacher_score).any()


def test_score_unseen_pairs_in_order(run_dir, tmp_path):
    pairs = pd.read_parquet(run_dir / "pairs.parquet")
    new = pd.DataFrame({
        "query": ["cordless drill with battery", "angle bracket", "outdoor led flood light", "zz unknown words qq"],
        "product_id": ["new-1", "new-2", pairs.product_id.iloc[0], "new-4"],
        "product_text": ["20V MAX cordless drill kit", "galvanized steel angle", pairs.product_text.iloc[0], "misc"],
    })
    source = tmp_path / "new.csv"
    new.to_csv(source, index=False)
    out = tmp_path / "scores.parquet"
    assert main(["score", "--model", str(run_dir / "student_korder"), "--input", str(source),
                 "--output", str(out)]) == 0
    scores = pd.read_parquet(out)
    assert list(scores.row_id) == [1, 2, 3, 4]
    assert list(scores.product_id) == list(new.product_id)
    assert np.isfinite(scores.score).all() and scores.score.between(0, 1).all()


#: Files of a model directory that every run's evaluation rewrites (the figures, the calibrator).
REWRITTEN_BY_EVALUATION = ("README.md", "calibrator.json")


def _stamps(directory):
    """(modification time in ns, size) of every file below ``directory`` but the model card and
    the calibrator (rewritten by every evaluation), by relative path."""
    return {p.relative_to(directory).as_posix(): (p.stat().st_mtime_ns, p.stat().st_size)
            for p in sorted(directory.rglob("*")) if p.is_file() and p.name not in REWRITTEN_BY_EVALUATION}


def test_rerun_resumes_from_finished_stages_with_identical_quality(run_dir, capsys):
    before = json.loads((run_dir / "metrics.json").read_text())
    trained = ("teacher", "student_k0", "student_korder", "student_online")
    stamps = {name: _stamps(run_dir / name) for name in trained}
    assert all(stamps.values())
    capsys.readouterr()
    assert main(["pipeline", "--config", str(run_dir.parent / "slice.yaml"), "--run-dir", str(run_dir),
                 "--no-progress"]) == 0
    log = capsys.readouterr().err
    after = json.loads((run_dir / "metrics.json").read_text())
    for protocol, values in before["protocols"].items():
        for name, figures in values["models"].items():
            for key in ("rmse", "auc", "spearman", "ndcg"):
                assert figures[key] == pytest.approx(after["protocols"][protocol]["models"][name][key], abs=1e-6)
    for stage in ("split", "teacher_fit", "teacher_scoring", "graph", "student_k0", "student_korder"):
        assert f"stage {stage} is up to date" in log, stage  # reused, not refitted
    assert "re-running" not in log
    # reused, not refitted: the teacher and the students are the files of the first run, untouched
    assert {name: _stamps(run_dir / name) for name in trained} == stamps
    for name in trained:  # the evaluation's own files: a card with the figures, a calibrator
        assert "## Evaluation" in (run_dir / name / "README.md").read_text()
        assert (run_dir / name / "calibrator.json").is_file()
    assert {"calibration", "query_analysis"} <= set(after) and (run_dir / "reliability.png").is_file()
    frequency = after["query_analysis"]["slices"]["frequency"]  # head / torso / tail: a third of the pairs each
    total = sum(values["pairs"] for values in frequency.values())
    assert total == after["split"]["test"]["pairs"]
    assert all(abs(values["pairs"] / total - 1 / 3) < 0.1 for values in frequency.values()), frequency
