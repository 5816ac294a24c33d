"""Model cards (README.md of every model directory, Hugging Face layout): written by the stages
that write models, rewritten with the evaluation's figures."""

from __future__ import annotations

import dataclasses
import json
import pathlib

import pytest
import yaml

from graphrel.pipeline.config import PipelineConfig
from graphrel.pipeline.model_card import CARD, run_models, update_model_cards, write_model_card


def figures(auc: float, *, teacher_difference: float | None = None, speed: float = 1000.0, **extra) -> dict:
    """One model's entry of ``metrics["protocols"][p]["models"]``, as the evaluation writes it."""
    entry = {"auc": auc, "spearman": 0.43, "rmse": 0.481, "ndcg": 0.935,
             "intervals": {"auc": [auc - 0.02, auc + 0.02], "spearman": [0.40, 0.47], "rmse": [0.47, 0.49],
                           "ndcg": [0.927, 0.943]},
             "pairs_per_second": speed, "pairs_per_second_min": speed * 0.9, "pairs_per_second_max": speed * 1.2,
             "repeats": 5, **extra}
    if teacher_difference is not None:
        low, high = teacher_difference - 0.01, teacher_difference + 0.01
        entry["differences"] = {"teacher": {
            "auc": {"difference": teacher_difference, "interval": [low, high]},
            "spearman": {"difference": 0.013, "interval": [-0.011, 0.038]},
            "rmse": {"difference": 0.0001, "interval": [-0.007, 0.007]},
            "ndcg": {"difference": 0.002, "interval": [-0.005, 0.008]}}}
        entry["speedup_vs_teacher"] = speed / 450.0
    return entry


def tiny_metrics() -> dict:
    paths = {"graph": 90, "text_fallback": 10, "queries_not_in_graph": 100, "products_not_in_graph": 40}
    protocols = {}
    for protocol, auc in (("new_query", 0.7170), ("new_pairs", 0.7250)):
        protocols[protocol] = {"models": {
            "teacher": figures(0.7061, speed=450.0),
            "student_k0": figures(0.7103, teacher_difference=0.004, speed=32000.0),
            "student_korder": figures(auc, teacher_difference=auc - 0.7061, speed=7500.0, paths=paths)}}
    config = json.loads(json.dumps(dataclasses.asdict(PipelineConfig())))  # as metrics.json holds it
    return {"protocols": protocols, "label_scale": [1.0, 3.0], "relevance_threshold": 2.5,
            "split": {"train": {"pairs": 600, "queries": 90}, "val": {"pairs": 70, "queries": 11},
                      "test": {"pairs": 100, "queries": 12}},
            "config": config, "intervals": {"method": "paired bootstrap over queries", "resamples": 1000},
            "ndcg": {"min_pairs": 5, "queries": 8, "random_order": 0.92}, "machine": {"cpu_threads": 2}}


@pytest.fixture
def run(tmp_path):
    """A run directory with three model directories (no data, no weights: a card needs neither)."""
    (tmp_path / "label_scale.json").write_text('{"label_min": 1.0, "label_max": 3.0, "source": "test"}')
    (tmp_path / "teacher").mkdir()
    (tmp_path / "teacher" / "config.json").write_text("{}")
    for name, order, source in (("student_k0", 0, "teacher"), ("student_korder", 2, "teacher"),
                                ("student_online", 0, "student_korder")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "student.json").write_text(json.dumps(
            {"model": "KOrderStudent", "order": order, "cap": 4, "distilled_from": source, "best_val_auc": 0.72}))
    return tmp_path


def header_and_body(path) -> tuple[dict, str]:
    text = path.read_text(encoding="utf-8")
    assert text.startswith("---\n")
    header, body = text[4:].split("\n---\n", 1)
    return yaml.safe_load(header), body


def test_card_before_the_evaluation_says_not_evaluated_and_has_a_plain_header(run):
    path = write_model_card(run / "student_korder", name="student_korder", kind="korder", config=PipelineConfig(),
                            run_dir=run)
    assert path == (run / "student_korder" / CARD).resolve()
    header, body = header_and_body(path)
    assert header["library_name"] == "graphrel"
    assert {"relevance", "distillation", "graph-student", "e-commerce-search"} <= set(header["tags"])
    assert header["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert "pipeline_tag" not in header and "model-index" not in header
    assert header["datasets"] == ["Home Depot Product Search Relevance (Kaggle competition data, 2016): "
                                  "data/home-depot/train.csv.zip"]
    assert "Not evaluated yet: run the evaluation stage" in body
    assert "Knowledge Distillation based Contextual Relevance Matching for E-commerce Product Search" in body
    assert f"graphrel score --model {(run / 'student_korder').resolve()} --input" in body
    assert f"`{run.resolve() / 'teacher'}`" in body  # distilled from the run's teacher
    for section in ("## Training", "## How to use", "## Evaluation", "## Intended use", "## Limits", "## Provenance"):
        assert section in body
    assert "graph.pt" in body.split("## Limits")[1]  # a graph student needs its run's graph


def test_update_writes_both_protocols_tables_with_intervals_and_the_model_index(run):
    metrics = tiny_metrics()
    update_model_cards(run, metrics, run_models(run, {"student_korder": run / "student_korder"}))
    header, body = header_and_body(run / "student_korder" / CARD)
    (entry,) = header["model-index"]
    assert entry["name"] == "student_korder"
    auc = {r["dataset"]["config"]: m["value"] for r in entry["results"] for m in r["metrics"] if m["type"] == "roc_auc"}
    assert auc == {"new_query": 0.717, "new_pairs": 0.725}
    assert all(r["dataset"]["split"] == "test" for r in entry["results"])
    for protocol, value in (("new_query", "0.717 [0.697, 0.737]"), ("new_pairs", "0.725 [0.705, 0.745]")):
        table = body.split(f"### {protocol}")[1].split("###")[0]
        assert f"| AUC | {value} |" in table
        assert "| RMSE (1-3) | 0.481 [0.470, 0.490] | +0.000 [-0.007, +0.007] |" in table
        assert "7,500 pairs/s" in table and "6,750–9,000" in table and "16.7x the teacher's 450 pairs/s" in table
        assert "graph 90, text fallback 10" in table
    assert "| AUC | 0.725 [0.705, 0.745] | +0.019 [+0.009, +0.029] ▲ |" in body  # interval excludes 0
    assert "Not evaluated" not in body
    teacher_header, teacher_body = header_and_body(run / "teacher" / CARD)
    assert teacher_header["pipeline_tag"] == "text-classification"
    assert teacher_header["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert "| AUC | 0.706 [0.686, 0.726] |" in teacher_body and "minus teacher" not in teacher_body


def test_a_calibrated_model_says_how_to_use_its_calibrator_and_what_it_did(run):
    (run / "student_korder" / "calibrator.json").write_text("{}")
    metrics = tiny_metrics()
    metrics["calibration"] = {"models": {"student_korder:new_pairs": {"method": "isotonic", "test": {
        "pairs": 100, "ece_before": 0.081, "ece_after": 0.012, "mse_before": 0.09, "mse_after": 0.07}}}}
    update_model_cards(run, metrics, {"student_korder": run / "student_korder", "student_k0": run / "student_k0"})
    body = header_and_body(run / "student_korder" / CARD)[1]
    assert "--output scores.parquet [--calibrated]" in body and "through `calibrator.json`" in body
    assert "ECE 0.081 -> 0.012, MSE 0.090 -> 0.070" in body.split("### new_pairs")[1]
    assert "ECE" not in body.split("### new_query")[1].split("### new_pairs")[0]  # no figures for that column
    assert "no calibrator" in header_and_body(run / "student_k0" / CARD)[1]


def test_a_card_is_rewritten_not_appended(run):
    kwargs = dict(name="student_k0", kind="k0", config=PipelineConfig(), run_dir=run)
    write_model_card(run / "student_k0", **kwargs)
    write_model_card(run / "student_k0", **kwargs, metrics=tiny_metrics())
    text = (run / "student_k0" / CARD).read_text(encoding="utf-8")
    assert text.count("\n---\n") == 1 and text.count("# student_k0\n") == 1 and text.count("## Evaluation") == 1
    assert "Not evaluated yet" not in text and "0.710 [0.690, 0.730]" in text


def test_a_model_missing_from_the_metrics_keeps_not_evaluated(run):
    update_model_cards(run, tiny_metrics(), {"student_online": run / "student_online", "teacher": run / "teacher"})
    header, body = header_and_body(run / "student_online" / CARD)
    assert "model-index" not in header and "Not evaluated yet: run the evaluation stage" in body
    assert f"`{run.resolve() / 'student_korder'}`" in body  # BERM-O is distilled from the k-order student


def test_missing_optional_figures_are_dashes_not_errors(run):
    metrics = tiny_metrics()
    korder = metrics["protocols"]["new_pairs"]["models"]["student_korder"]
    for key in ("pairs_per_second", "pairs_per_second_min", "pairs_per_second_max", "speedup_vs_teacher", "paths"):
        korder.pop(key)
    korder["spearman"] = None  # NaN in metrics.json
    del korder["intervals"]["ndcg"]
    del metrics["ndcg"], metrics["machine"]
    update_model_cards(run, metrics, {"student_korder": run / "student_korder"})
    body = header_and_body(run / "student_korder" / CARD)[1]
    new_pairs = body.split("### new_pairs")[1]
    assert "| Spearman | – [0.400, 0.470] |" in new_pairs and "| NDCG@all | 0.935 [–, –] |" in new_pairs
    assert "Speed: not measured." in new_pairs


def test_the_card_is_written_atomically(run, monkeypatch):
    directory = run / "student_k0"
    write_model_card(directory, name="student_k0", kind="k0", config=PipelineConfig(), run_dir=run)
    before = (directory / CARD).read_text(encoding="utf-8")
    assert sorted(p.name for p in directory.iterdir()) == [CARD, "student.json"]  # no temporary file left

    def fail(self, *args, **kwargs):
        open(self, "w").write("half a card")
        raise OSError("disk full")

    monkeypatch.setattr(pathlib.Path, "write_text", fail)
    with pytest.raises(OSError, match="disk full"):  # a real error is not hidden
        write_model_card(directory, name="student_k0", kind="k0", config=PipelineConfig(), run_dir=run,
                         metrics=tiny_metrics())
    monkeypatch.undo()
    assert (directory / CARD).read_text(encoding="utf-8") == before
    assert sorted(p.name for p in directory.iterdir()) == [CARD, "student.json"]


def test_random_test_backbones_have_no_base_model_and_a_card_needs_its_directory(run):
    config = PipelineConfig()
    config.teacher.backbone_config = {"hidden_size": 32}
    write_model_card(run / "teacher", name="teacher", kind="teacher", config=config, run_dir=run)
    assert "base_model" not in header_and_body(run / "teacher" / CARD)[0]
    with pytest.raises(FileNotFoundError):
        write_model_card(run / "student_bert2dnn", name="student_bert2dnn", kind="bert2dnn", config=config,
                         run_dir=run)
    with pytest.raises(ValueError, match="no model card"):
        update_model_cards(run, tiny_metrics(), {"student_unknown": run / "student_k0"})


def test_the_bert2dnn_and_stacking_stages_write_their_cards(run, monkeypatch):
    import numpy as np
    import pandas as pd

    import graphrel.models.bert2dnn_training as bert2dnn_training
    import graphrel.pipeline.stacking_stage as stacking_stage
    from graphrel.pipeline.student_stages import fit_bert2dnn_student

    def train(run_dir, directory, **kwargs):
        directory.mkdir()
        (directory / "student.json").write_text('{"model": "Bert2DnnStudent"}')

    monkeypatch.setattr(bert2dnn_training, "train_bert2dnn", train)
    config = PipelineConfig()
    fit_bert2dnn_student(config, run, None, progress=False)
    header, body = header_and_body(run / "student_bert2dnn" / CARD)
    assert "bert2dnn" in header["tags"] and "BERT2DNN: BERT Distillation with Massive Unlabeled Data" in body

    class Stack:
        def to_dict(self):
            return {"teachers": ["cross_encoder", "lexical"], "weights": [1.0, 0.5], "bias": 0.0}

    pairs = pd.DataFrame({"query_id": ["a"], "product_id": ["1"], "query": ["a"], "product_text": ["t"],
                          "split": ["train"]})
    scores = pd.DataFrame({"query_id": ["a"], "product_id": ["1"], "teacher_logit": [0.5], "teacher_score": [0.6]})
    monkeypatch.setattr(stacking_stage, "fit_stack", lambda scored, **kwargs: stacking_stage.StackFit(
        {"lexical": 1}, Stack(), np.array([0.1]), np.array([0.2]), {}))
    stacking_stage.stack_teachers(config, run, pairs, scores)
    header, body = header_and_body(run / "stack" / CARD)
    assert "stacking" in header["tags"] and "base_model" not in header and "# teacher_stack" in body
    assert set(run_models(run, {})) == {"teacher", "teacher_stack"}
