"""Teacher stacking inside the pipeline (tiny random teacher, real data slice)."""

import json

import pandas as pd
import pytest

from graphrel.cli import main

pytestmark = pytest.mark.real_data


def test_stacked_pipeline_reports_each_teacher_and_students_learn_the_stack(tmp_path):
    from conftest import REPO_ROOT, real_data_path

    path = real_data_path()
    if path is None:
        pytest.skip("real Home Depot data not found (see data/README.md)")
    overlay = tmp_path / "stacking.yaml"
    overlay.write_text("stacking:\n  enabled: true\n  lexical_max_iter: 30\n")
    run = tmp_path / "run"
    assert main(["pipeline", "--config", str(REPO_ROOT / "configs" / "tiny_test.yaml"), "--config", str(overlay),
                 "--data.path", str(path), "--run-dir", str(run), "--no-progress"]) == 0
    stack = json.loads((run / "stack" / "stack.json").read_text())
    assert stack["teachers"] == ["cross_encoder", "lexical"] and len(stack["weights"]) == 2
    assert set(stack["validation"]) == {"cross_encoder", "lexical", "stack (out-of-fold)"}
    scores = pd.read_parquet(run / "stacked_scores.parquet")
    expected = (scores.cross_encoder_logit * stack["weights"][0] + scores.lexical_logit * stack["weights"][1]
                + stack["bias"])
    assert (scores.teacher_logit - expected).abs().max() < 1e-4  # students and graph read the stack
    models = json.loads((run / "metrics.json").read_text())["protocols"]["new_query"]["models"]
    assert {"teacher", "teacher_lexical", "teacher_stack", "student_k0", "student_korder"} <= set(models)
    # One teacher score per run: graph edges, student targets, `graphrel fit --data.run_dir` and
    # `graphrel inspect` all read the stack's.
    from graphrel.models.korder_data import StudentDataModule
    from graphrel.run import load_run_graph, load_run_pairs

    run_pairs = load_run_pairs(run)
    stacked = scores.set_index(["query_id", "product_id"]).teacher_score
    assert (run_pairs.set_index(["query_id", "product_id"]).teacher_score == stacked.reindex(
        run_pairs.set_index(["query_id", "product_id"]).index)).all()
    graph = load_run_graph(run)
    q, p = graph["query", "shown", "product"].edge_index.numpy()
    edge_keys = pd.MultiIndex.from_arrays([[graph["query"].node_id[i] for i in q],
                                           [graph["product"].node_id[i] for i in p]])
    assert (graph["query", "shown", "product"].teacher_score.numpy() == stacked.reindex(edge_keys).to_numpy(
        dtype="float32")).all()
    data = StudentDataModule(run_dir=str(run), cap=2, backbone=str(run / "teacher"))
    data.setup("fit")
    train = data.frames["train"].set_index(["query_id", "product_id"])
    logits = scores.set_index(["query_id", "product_id"]).teacher_logit
    assert (train.teacher_logit == logits.reindex(train.index)).all()

    # Stacking switched off on the same run: the stack is removed, the run's teacher is the cross-encoder again
    assert main(["pipeline", "--config", str(REPO_ROOT / "configs" / "tiny_test.yaml"), "--data.path", str(path),
                 "--run-dir", str(run), "--no-progress", "--bert2dnn.enabled", "false", "--student.online", "false"]) == 0
    assert not (run / "stacked_scores.parquet").exists() and not (run / "stack").exists()
    cross_encoder = load_run_pairs(run).set_index(["query_id", "product_id"]).teacher_logit
    assert (cross_encoder == scores.set_index(["query_id", "product_id"]).cross_encoder_logit.reindex(
        cross_encoder.index)).all()
    assert "teacher_stack" not in json.loads((run / "metrics.json").read_text())["protocols"]["new_pairs"]["models"]
