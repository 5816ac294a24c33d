"""Teacher scoring backends: bf16/int8 logits against fp32, the agreement check, the choice
(and its fall-backs), resumable labelling through a backend, the config's validation and the
teacher_scoring stage's record."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import spearmanr

from graphrel.errors import GraphrelInputError
from graphrel.models.teacher import CrossEncoderTeacher
from graphrel.pipeline.config import PipelineConfig, TeacherConfig, check_config
from graphrel.scoring import teacher_backends as B
from graphrel.scoring.teacher_labelling import teacher_logits, teacher_logits_resumable

TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
WORDS = "drill bit hose garden paint brush door hinge led light bulb steel ft in pack white cordless saw".split()


def random_pairs(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    return ([" ".join(rng.choice(WORDS, rng.integers(1, 4))) for _ in range(n)],
            [" ".join(rng.choice(WORDS, rng.integers(2, 14))) for _ in range(n)])


def spread_teacher(**config) -> CrossEncoderTeacher:
    """A tiny teacher whose logits differ from pair to pair (its fresh initialisation gives
    almost the same logit to every pair, too close for any ranking to mean anything)."""
    teacher = CrossEncoderTeacher(backbone_config={**TINY, **config}).eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in teacher.model.parameters():
            if parameter.dim() == 2:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.1)
    return teacher


@pytest.fixture(scope="module")
def teacher():
    return spread_teacher()


def test_bf16_logits_follow_fp32(teacher):
    queries, products = random_pairs(120)
    fp32 = teacher_logits(teacher, queries, products, batch_size=32, progress=False)
    bf16 = teacher_logits(teacher, queries, products, batch_size=32, progress=False, backend="bf16")
    assert bf16.dtype == np.float32 and bf16.shape == fp32.shape
    assert not np.array_equal(bf16, fp32)  # it really ran in bfloat16
    assert spearmanr(fp32, bf16)[0] > 0.99
    assert np.abs(bf16 - fp32).max() < 0.2 * fp32.std()


def test_int8_quantises_a_copy_of_the_last_third_of_the_encoder(teacher):
    six = spread_teacher(num_hidden_layers=6)
    names = B.int8_layer_names(six.model)
    assert names and all(".layer.4." in n or ".layer.5." in n for n in names)
    assert len(names) == 12  # q, k, v, attention output, intermediate, output of two layers
    assert set(B.int8_layer_names(teacher.model)) == {n for n in B.int8_layer_names(teacher.model, "int8_all")
                                                     if ".layer.1." in n}
    queries, products = random_pairs(40)
    fp32 = teacher_logits(teacher, queries, products, progress=False)
    int8 = teacher_logits(teacher, queries, products, progress=False, backend="int8")
    assert int8.dtype == np.float32 and np.isfinite(int8).all() and not np.array_equal(int8, fp32)
    assert all(type(m) is torch.nn.Linear for n, m in teacher.model.named_modules() if "dense" in n)  # untouched
    assert np.array_equal(teacher_logits(teacher, queries, products, progress=False), fp32)


def test_unknown_backend_is_refused(teacher):
    with pytest.raises(ValueError, match="unknown teacher scoring backend"):
        teacher_logits(teacher, ["a"], ["b"], progress=False, backend="onnx")


def test_resumable_labelling_with_a_backend_equals_the_one_shot_call(teacher, tmp_path):
    queries, products = random_pairs(70, seed=1)
    for backend in ("bf16", "int8"):
        whole = teacher_logits(teacher, queries, products, batch_size=8, progress=False, backend=backend)
        parts = tmp_path / backend
        chunked = teacher_logits_resumable(teacher, queries, products, parts, chunk_size=16, batch_size=8,
                                           progress=False, backend=backend)
        assert np.array_equal(chunked, whole)  # the same batches: identical
        assert json.loads((parts / "manifest.json").read_text())["backend"] == backend
    # chunks saved with another backend are not reused
    fp32 = teacher_logits_resumable(teacher, queries, products, tmp_path / "bf16", chunk_size=16, batch_size=8,
                                    progress=False)
    assert np.allclose(fp32, teacher_logits(teacher, queries, products, batch_size=8, progress=False), atol=1e-6)


def test_agreement_table_scores_every_backend_against_fp32(teacher, monkeypatch):
    queries, products = random_pairs(48, seed=2)
    monkeypatch.setattr(B, "unavailable_backends", lambda: {"int8_all": "not on this machine"})
    table = B.check_agreement(teacher, queries, products, B.BACKENDS, batch_size=16, repeats=2)
    assert table["pairs"] == 48 and table["batch_size"] == 16 and table["repeats"] == 2
    assert set(table["backends"]) == {"fp32", "bf16", "int8"}
    assert table["unavailable"] == {"int8_all": "not on this machine"}
    fp32 = table["backends"]["fp32"]
    assert fp32["speedup"] == 1.0 and fp32["spearman"] == 1.0 and fp32["max_abs_logit_difference"] == 0.0
    for row in table["backends"].values():
        assert len(row["seconds"]) == 2 and row["pairs_per_second"] > 0
        assert row["speedup"] == pytest.approx(row["pairs_per_second"] / fp32["pairs_per_second"], rel=0.01)
    assert table["backends"]["bf16"]["spearman"] > 0.99
    assert 0 < table["backends"]["bf16"]["max_abs_logit_difference"] < 0.5
    with pytest.raises(ValueError):
        B.check_agreement(teacher, queries, products, ("fp32", "onnx"))
    with pytest.raises(ValueError):
        B.check_agreement(teacher, queries[:1], products[:1], ("fp32",))


def agreement(**rows) -> dict:
    """A synthetic check_agreement result: name=(pairs/s, Spearman) per backend, fp32 at 100."""
    table = {"fp32": {"pairs_per_second": 100.0, "speedup": 1.0, "spearman": 1.0, "max_abs_logit_difference": 0.0}}
    for name, (rate, rho) in rows.items():
        table[name] = {"pairs_per_second": rate, "speedup": rate / 100.0, "spearman": rho,
                       "max_abs_logit_difference": 0.01}
    return {"pairs": 512, "backends": table, "unavailable": {}}


def test_auto_picks_by_agreement_and_a_fixed_preference_not_by_the_speed_of_the_moment():
    table = agreement(bf16=(180.0, 0.99997), int8=(130.0, 0.9994), int8_all=(270.0, 0.979))
    backend, reason = B.choose_backend(table)
    assert backend == "bf16"
    assert "int8_all: Spearman 0.97900 < 0.999" in reason
    busy = agreement(bf16=(95.0, 0.99997), int8=(200.0, 0.9991))  # bf16 timed on a busy machine
    backend, reason = B.choose_backend(busy)
    assert backend == "bf16" and "measured only 0.95x fp32 here" in reason  # same choice, said
    assert B.choose_backend(agreement(bf16=(180.0, 0.998), int8=(200.0, 0.9991)))[0] == "int8"
    assert B.choose_backend(busy, min_spearman=0.99999)[0] == "fp32"


def test_auto_falls_back_to_fp32_and_says_why():
    table = agreement(bf16=(180.0, 0.998), int8=(105.0, 0.9985), int8_all=(270.0, None))
    table["unavailable"] = {"bf16_other": "no such instructions"}
    backend, reason = B.choose_backend(table)
    assert backend == "fp32"
    assert "bf16: Spearman 0.99800 < 0.999" in reason
    assert "int8: Spearman 0.99850 < 0.999" in reason
    assert "int8_all: Spearman with fp32 undefined" in reason
    assert "bf16_other: unavailable (no such instructions)" in reason


def test_a_named_backend_runs_only_if_it_agrees():
    table = agreement(bf16=(180.0, 0.998), int8=(90.0, 0.9995))
    backend, reason = B.choose_backend(table, requested="bf16")
    assert backend == "fp32" and "bf16: Spearman 0.99800 < 0.999" in reason
    assert B.choose_backend(table, requested="int8")[0] == "int8"  # asked for: used even if slower
    table["backends"].pop("int8_all", None)
    table["unavailable"] = {"int8_all": "torch has no quantised engine"}
    backend, reason = B.choose_backend(table, requested="int8_all")
    assert backend == "fp32" and "torch has no quantised engine" in reason
    assert B.choose_backend(table, requested="fp32") == ("fp32", "fp32 requested")
    with pytest.raises(ValueError):
        B.choose_backend(table, requested="onnx")


@pytest.mark.parametrize("key,value", [("scoring_backend", "onnx"), ("scoring_backend", "BF16"),
                                       ("agreement_pairs", 31), ("agreement_pairs", 0), ("agreement_pairs", True),
                                       ("agreement_pairs", 64.0)])
def test_config_rejects_bad_backend_settings(key, value):
    with pytest.raises(GraphrelInputError, match=f"teacher.{key}"):
        check_config(PipelineConfig(teacher=TeacherConfig(**{key: value})))


def test_config_accepts_every_backend_choice():
    for choice in B.CHOICES:
        check_config(PipelineConfig(teacher=TeacherConfig(scoring_backend=choice, agreement_pairs=32)))


def stage_pairs(n: int) -> pd.DataFrame:
    queries, products = random_pairs(n, seed=3)
    return pd.DataFrame({"query_id": np.arange(n) // 3, "product_id": np.arange(n), "query": queries,
                         "product_text": products, "split": ["val", "train", "transfer"] * (n // 3)})


def test_stage_checks_chooses_records_and_labels_with_the_choice(teacher, tmp_path, caplog):
    from graphrel.pipeline.teacher_stages import score_with_teacher

    pairs = stage_pairs(120)  # 40 validation pairs
    config = PipelineConfig(teacher=TeacherConfig(backbone_config=TINY, agreement_pairs=32, score_batch_size=16))
    with caplog.at_level(logging.INFO, logger="graphrel"):
        scores = score_with_teacher(config, tmp_path, pairs, teacher, progress=False)
    record = json.loads((tmp_path / B.RECORD).read_text())
    assert record["requested"] == "auto" and record["backend"] in B.BACKENDS and record["reason"]
    assert record["held_pairs"] == 32 and record["held_split"] == "val"
    assert record["agreement"]["pairs"] == 32 and "fp32" in record["agreement"]["backends"]
    chosen = record["agreement"]["backends"][record["backend"]]
    assert record["speedup"] == chosen["speedup"] and record["spearman"] == chosen["spearman"]
    assert f"teacher scoring backend {record['backend']}:" in caplog.text and "on 32 validation pairs" in caplog.text
    expected = teacher_logits(teacher, pairs["query"], pairs["product_text"], batch_size=16, progress=False,
                              backend=record["backend"])
    assert np.array_equal(scores["teacher_logit"].to_numpy(), expected)
    assert not (tmp_path / "teacher_scores.parts").exists()


def test_stage_falls_back_and_a_resumed_stage_keeps_the_recorded_backend(teacher, tmp_path, monkeypatch):
    from graphrel.pipeline.teacher_stages import score_with_teacher

    pairs = stage_pairs(96)
    monkeypatch.setattr(B, "check_agreement", lambda *a, **k: agreement(bf16=(180.0, 0.998), int8=(150.0, 0.9995)))
    config = PipelineConfig(teacher=TeacherConfig(backbone_config=TINY, scoring_backend="bf16", agreement_pairs=32))
    scores = score_with_teacher(config, tmp_path, pairs, teacher, progress=False)
    record = json.loads((tmp_path / B.RECORD).read_text())
    assert record["backend"] == "fp32" and "bf16: Spearman 0.99800 < 0.999" in record["reason"]
    assert np.array_equal(scores["teacher_logit"].to_numpy(),
                          teacher_logits(teacher, pairs["query"], pairs["product_text"], progress=False))
    # an interrupted stage (record written, scores not) resumes with the recorded backend, unchecked
    (tmp_path / "teacher_scores.parquet").unlink()
    record.update(backend="int8", requested="int8", summary="teacher scoring backend int8: ...")
    (tmp_path / B.RECORD).write_text(json.dumps(record))
    monkeypatch.setattr(B, "check_agreement", lambda *a, **k: pytest.fail("checked again"))
    config.teacher.scoring_backend = "int8"
    scores = score_with_teacher(config, tmp_path, pairs, teacher, progress=False)
    assert np.array_equal(scores["teacher_logit"].to_numpy(),
                          teacher_logits(teacher, pairs["query"], pairs["product_text"], progress=False,
                                         backend="int8"))
