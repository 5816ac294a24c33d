"""The whole pipeline on tiny random models and a slice of the real data: determinism, the
evaluation protocols' graphs, and stages re-run when the config changes."""

import json

import pandas as pd
import pytest
import torch

from graphrel.cli import main

pytestmark = pytest.mark.real_data


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """Two runs of configs/tiny_test.yaml into fresh directories a and b."""
    from conftest import REPO_ROOT, real_data_path

    path = real_data_path()
    if path is None:
        pytest.skip("real Home Depot data not found (see data/README.md)")
    root = tmp_path_factory.mktemp("tiny")
    for name in ("a", "b"):
        assert main(["pipeline", "--config", str(REPO_ROOT / "configs" / "tiny_test.yaml"), "--data.path", str(path),
                     "--run-dir", str(root / name), "--no-progress"]) == 0
    return root / "a", root / "b"


def metrics_of(run):
    return json.loads((run / "metrics.json").read_text())


def test_same_seed_same_metrics_in_both_protocols(tiny_runs, tmp_path):
    first, second = (metrics_of(run) for run in tiny_runs)
    assert first["split"] == second["split"]
    assert set(first["protocols"]) == {"new_query", "new_pairs"}
    for protocol in ("new_query", "new_pairs"):
        models = first["protocols"][protocol]["models"]
        # every student of the tiny config, BERT2DNN included, is trained and evaluated
        assert {"teacher", "student_k0", "student_korder", "student_online", "student_bert2dnn"} == set(models)
        for model in models:
            for key in ("rmse", "auc", "spearman", "ndcg"):
                assert models[model][key] == second["protocols"][protocol]["models"][model][key], (model, key)
    # text-only models read no graph: the same figures under both protocols
    for model in ("teacher", "student_k0", "student_bert2dnn"):
        assert first["protocols"]["new_query"]["models"][model]["auc"] == \
            first["protocols"]["new_pairs"]["models"][model]["auc"]
    report = (tiny_runs[0] / "report.md").read_text()
    assert "### new_query" in report and "### new_pairs" in report and "RMSE (1-3)" in report
    # `graphrel score` loads the BERT2DNN student directory like any other
    test = pd.read_parquet(tiny_runs[0] / "pairs.parquet").query("split == 'test'").head(50)
    test[["query_id", "query", "product_id", "product_text"]].to_csv(tmp_path / "pairs.csv", index=False)
    assert main(["score", "--model", str(tiny_runs[0] / "student_bert2dnn"), "--input", str(tmp_path / "pairs.csv"),
                 "--output", str(tmp_path / "scores.parquet")]) == 0
    scores = pd.read_parquet(tmp_path / "scores.parquet")
    assert len(scores) == 50 and scores["score"].between(0, 1).all()


def edges_of(graph) -> set:
    q, p = graph["query", "shown", "product"].edge_index.numpy()
    return set(zip((graph["query"].node_id[i] for i in q), (graph["product"].node_id[i] for i in p)))


def test_no_evaluated_pair_is_an_edge_of_any_graph_a_student_trains_or_scores_with(tiny_runs):
    run = tiny_runs[0]
    pairs = pd.read_parquet(run / "pairs.parquet")
    evaluated = set(zip(pairs.query_id[pairs.split == "test"], pairs.product_id[pairs.split == "test"]))
    predictions = pd.read_parquet(run / "test_predictions.parquet")
    assert set(zip(predictions.query_id, predictions.product_id)) == evaluated and len(evaluated) > 50
    graphs = {path.name: torch.load(path, weights_only=False) for path in run.glob("*.pt")}
    assert set(graphs) == {"graph.pt", "graph_new_query.pt"}
    for student in run.glob("student_*/student.json"):  # the graph each student trained with
        manifest = json.loads(student.read_text())
        if "graph" in manifest:
            assert (student.parent / manifest["graph"]).resolve() == (run / "graph.pt").resolve()
    for name, graph in graphs.items():
        assert not evaluated & edges_of(graph), name
    # ... nor is an evaluated pair's text pair under other ids (one title under two product ids)
    from graphrel.data.text_keys import pair_keys

    keys = dict(zip(zip(pairs.query_id, pairs.product_id), pair_keys(pairs["query"], pairs.product_text)))
    evaluated_text = {keys[pair] for pair in evaluated}
    for name, graph in graphs.items():
        assert not evaluated_text & {keys[edge] for edge in edges_of(graph) if edge in keys}, name
    # new_pairs keeps the test queries' other judged pairs as context (but for text twins of
    # evaluated pairs); new_query no val/test query at all
    context = {pair for pair in zip(pairs.query_id[pairs.split == "test_context"],
                                    pairs.product_id[pairs.split == "test_context"])
               if keys[pair] not in evaluated_text}
    assert context and context <= edges_of(graphs["graph.pt"])
    unseen = set(pairs.query_id[pairs.split.isin(["val", "test", "test_context"])])
    assert not unseen & set(graphs["graph_new_query.pt"]["query"].node_id)


def test_changing_the_cap_reruns_the_graph_students_only(tiny_runs, capsys):
    from conftest import REPO_ROOT, real_data_path

    run = tiny_runs[1]
    before = {name: (run / name / "model.ckpt").stat().st_mtime_ns
              for name in ("student_k0", "student_korder", "student_online")}
    teacher = (run / "teacher" / "config.json").stat().st_mtime_ns
    capsys.readouterr()
    assert main(["pipeline", "--config", str(REPO_ROOT / "configs" / "tiny_test.yaml"),
                 "--data.path", str(real_data_path()), "--run-dir", str(run), "--no-progress",
                 "--student.cap", "2", "--bert2dnn.enabled", "false"]) == 0
    log = capsys.readouterr().err
    assert "stage student_korder: re-running (student.cap 4 -> 2)" in log
    assert json.loads((run / "student_korder" / "student.json").read_text())["cap"] == 2
    assert (run / "student_k0" / "model.ckpt").stat().st_mtime_ns == before["student_k0"]  # reads no neighbours
    for name in ("student_korder", "student_online"):
        assert (run / name / "model.ckpt").stat().st_mtime_ns != before[name], name
    assert (run / "teacher" / "config.json").stat().st_mtime_ns == teacher
    assert metrics_of(run)["config"]["student"]["cap"] == 2
    assert "student_bert2dnn" not in metrics_of(run)["protocols"]["new_query"]["models"]


def test_the_retrieval_stage_adds_its_metrics_and_report_section(tiny_runs, tmp_path):
    """``retrieval.enabled``: a finished run keeps its stages and gains ``metrics.json``'s
    ``retrieval`` (every retriever, the issue's keys) and ``retrieval_two_stage`` (the dual
    encoder's top k re-ranked by the k-order student and the teacher), and a report section."""
    import shutil

    from conftest import REPO_ROOT, real_data_path
    from retrieval.conftest import build_tiny_encoder

    run = tmp_path / "run"
    shutil.copytree(tiny_runs[0], run)
    encoder = build_tiny_encoder(tmp_path / "encoder")
    teacher = (run / "teacher" / "config.json").stat().st_mtime_ns
    options = {"enabled": "true", "backbone": str(encoder), "encode_batch_size": "16", "max_train_examples": "60",
               "negative_depth": "6", "dual_encoder_steps": "4", "dual_encoder_batch_size": "8", "student_dim": "8",
               "student_steps": "4", "student_batch_size": "8", "ablation": "false", "timing_repeats": "1",
               "warmup_queries": "4", "threads": "1", "max_test_queries": "10", "rerank_depth": "5",
               "dual_pooling_steps": "2", "blend_and_match": "false", "dual_pooling_train_pairs": "8", "dual_pooling_test_pairs": "8"}
    argv = [item for key, value in options.items() for item in (f"--retrieval.{key}", value)]
    assert main(["pipeline", "--config", str(REPO_ROOT / "configs" / "tiny_test.yaml"), "--data.path",
                 str(real_data_path()), "--run-dir", str(run), "--no-progress", *argv]) == 0
    assert (run / "teacher" / "config.json").stat().st_mtime_ns == teacher  # only the new stage ran
    metrics = metrics_of(run)
    assert list(metrics["retrieval"]) == ["bm25", "minilm_zero_shot", "dual_encoder", "embeddistill",
                                         "embeddistill_symmetric", "hybrid"]
    assert metrics["retrieval"]["hybrid"]["setting"]["inputs"] == ["bm25", "embeddistill_symmetric"]
    for name, entry in metrics["retrieval"].items():
        assert {"recall@10", "recall@100", "recall@1000", "ndcg@10", "query_encodings_per_second",
                "queries_per_second", "parameters", "teacher"} <= set(entry), name
    assert metrics["retrieval"]["embeddistill"]["teacher"] == "dual_encoder"
    two = metrics["retrieval_two_stage"]
    assert two["depth"] == 5 and set(two["rerankers"]) == {"student_korder", "teacher"}
    assert all(0 <= m["ndcg@10"] <= 1 for m in two["rerankers"].values())
    assert metrics["retrieval_teacher_geometry"]["test_pairs"] == 8
    report = (run / "report.md").read_text()
    assert "## Retrieval" in report and "### Two-stage" in report and "retrieval" in metrics["timings_seconds"]
