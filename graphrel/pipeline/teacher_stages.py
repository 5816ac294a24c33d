"""Stages ``teacher_fit`` (-> teacher/) and ``teacher_scoring`` (-> teacher_backend.json,
teacher_scores.parquet)."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import lightning as L
import pandas as pd
import torch

from graphrel import run as R
from graphrel.pipeline.config import PipelineConfig
from graphrel.pipeline.evaluation import validation_threshold
from graphrel.pipeline.model_card import write_model_card
from graphrel.pipeline.trainer import stage_trainer
from graphrel.scoring import teacher_backends as B
from graphrel.scoring.teacher_labelling import load_teacher, teacher_logits_resumable

log = logging.getLogger("graphrel")


def fit_teacher(c: PipelineConfig, run_dir: Path, pairs: pd.DataFrame, *, progress: bool):
    """Fine-tune the cross-encoder on (a cap of) the training pairs. -> teacher/

    Returns the teacher (reloaded from teacher/ if it exists). teacher/ is written
    atomically: an HF model directory plus ``teacher.ckpt``; then its model card (README.md).
    """
    from graphrel.models.teacher_data import TeacherDataModule, sample_rows
    from graphrel.models.teacher import CrossEncoderTeacher

    t = c.teacher
    directory = run_dir / R.TEACHER_DIR
    if (directory / "config.json").is_file():
        return load_teacher(directory, max_length=t.max_length, temperature=t.temperature)
    L.seed_everything(c.seed, workers=True, verbose=False)
    teacher = CrossEncoderTeacher(backbone=t.backbone, backbone_config=t.backbone_config,
                                  learning_rate=t.learning_rate, max_length=t.max_length,
                                  temperature=t.temperature, relevance_threshold=validation_threshold(c, run_dir))
    data = TeacherDataModule(backbone=t.backbone, batch_size=t.batch_size, max_length=t.max_length, seed=c.seed)
    data.set_frames(fine_tuning_pairs(c, pairs), sample_rows(pairs[pairs.split == "val"], t.max_val_pairs, c.seed))
    trainer = stage_trainer(t.epochs, run_dir, "teacher_checkpoints", progress, monitor=None, precision=t.precision)
    trainer.fit(teacher, datamodule=data)
    with R.atomic_path(directory, directory=True) as tmp:
        teacher.save_pretrained(tmp)
        trainer.save_checkpoint(tmp / "teacher.ckpt")
    write_model_card(directory, name="teacher", kind="teacher", config=c, run_dir=run_dir)
    return teacher


def fine_tuning_pairs(c: PipelineConfig, pairs: pd.DataFrame) -> pd.DataFrame:
    """The teacher's fine-tuning pairs: (a cap of) the judged training pairs, plus the catalogue
    negatives of their queries (:func:`graphrel.pipeline.teacher_negatives.catalogue_negatives`,
    drawn from the training products) when ``teacher.random_negatives`` or
    ``teacher.mined_negatives`` asks for them. Columns ``query``, ``product_text``, ``label``."""
    from graphrel.models.teacher_data import sample_rows
    from graphrel.pipeline.teacher_negatives import catalogue_negatives

    t = c.teacher
    train = pairs[pairs.split == "train"]
    judged = sample_rows(train, t.max_train_pairs, c.seed)
    if not (t.random_negatives or t.mined_negatives):
        return judged
    negatives = catalogue_negatives(judged, train[["product_id", "product_text"]],
                                    random_per_query=t.random_negatives, mined_per_query=t.mined_negatives,
                                    mined_depth=t.mined_depth, seed=c.seed)
    log.info("teacher: %d judged pairs + %d catalogue negatives (%s)", len(judged), len(negatives),
             ", ".join(f"{n} {kind}" for kind, n in negatives["negative"].value_counts().sort_index().items()))
    return pd.concat([judged[["query", "product_text", "label"]], negatives[["query", "product_text", "label"]]],
                     ignore_index=True)


def score_with_teacher(c: PipelineConfig, run_dir: Path, pairs: pd.DataFrame, teacher, *,
                       progress: bool) -> pd.DataFrame:
    """Teacher logits and scores of every pair (labelled and transfer). -> teacher_backend.json,
    teacher_scores.parquet

    First the scoring backends are checked against fp32 on ``teacher.agreement_pairs`` held
    pairs and one is chosen (:func:`choose_teacher_backend`); every pair is then scored with it.
    Resumable: chunks saved in teacher_scores.parts/ survive an interruption (removed once
    the scores are written), and a resumed run keeps the backend teacher_backend.json names.
    Reloads teacher_scores.parquet if it exists.
    """
    path = run_dir / R.TEACHER_SCORES
    if path.exists():
        return pd.read_parquet(path)
    t = c.teacher
    backend = choose_teacher_backend(c, run_dir, pairs, teacher)["backend"]
    parts = run_dir / R.TEACHER_SCORE_PARTS
    logits = teacher_logits_resumable(teacher, pairs["query"], pairs["product_text"], parts,
                                      batch_size=t.score_batch_size, progress=progress, backend=backend)
    scores = pd.DataFrame({"query_id": pairs["query_id"], "product_id": pairs["product_id"],
                           "teacher_logit": logits,
                           "teacher_score": torch.sigmoid(torch.from_numpy(logits) / t.temperature).numpy()})
    R.write_parquet(scores, path)
    shutil.rmtree(parts)
    return scores


def held_pairs(pairs: pd.DataFrame, count: int, seed: int) -> tuple[pd.DataFrame, str]:
    """A seeded sample of ``count`` validation pairs (all of them if fewer; pairs of every
    split if there are fewer than 32 validation pairs), and which split: ``"val"`` or ``"all"``."""
    val = pairs[pairs["split"] == "val"] if "split" in pairs else pairs.iloc[:0]
    source, split = (val, "val") if len(val) >= 32 else (pairs, "all")
    return source.sample(min(count, len(source)), random_state=seed), split


def choose_teacher_backend(c: PipelineConfig, run_dir: Path, pairs: pd.DataFrame, teacher) -> dict:
    """Check the teacher's scoring backends against fp32 and choose one. -> teacher_backend.json

    Scores ``teacher.agreement_pairs`` held pairs (:func:`held_pairs`) with fp32 and every
    backend (:func:`graphrel.scoring.teacher_backends.check_agreement`, batches of
    ``teacher.score_batch_size``), chooses ``teacher.scoring_backend`` or, for ``auto``, the
    first of :data:`graphrel.scoring.teacher_backends.PREFERENCE` that agrees (:func:`graphrel.scoring.teacher_backends.choose_backend`), logs the
    choice in one line and writes the record atomically. A record of the same request left
    by an interrupted run is reused (its saved chunks were scored with that backend).

    Returns:
        the record: ``{"requested", "backend", "reason", "summary" (the log line), "speedup",
        "spearman", "max_abs_logit_difference" (those three of the chosen backend),
        "held_pairs", "held_split" ("val" or "all"), "min_spearman", "min_speedup",
        "agreement": check_agreement's result}``.
    """
    t = c.teacher
    record_path = run_dir / B.RECORD
    if record_path.is_file():
        record = json.loads(record_path.read_text())
        if record.get("requested") == t.scoring_backend and record.get("backend") in B.BACKENDS:
            log.info("%s (chosen before an interruption: %s)", record.get("summary", record["backend"]),
                     record.get("reason"))
            return record
    held, split = held_pairs(pairs, t.agreement_pairs, c.seed)
    what = f"{len(held)} {'validation ' if split == 'val' else ''}pairs"
    agreement = B.check_agreement(teacher, held["query"], held["product_text"], B.BACKENDS,
                                  batch_size=t.score_batch_size)
    backend, reason = B.choose_backend(agreement, requested=t.scoring_backend)
    for name, row in agreement["backends"].items():
        log.info("teacher backend %s: %.1f pairs/s (%.2fx fp32), Spearman %s with fp32, max logit difference "
                 "%.3f on %s", name, row["pairs_per_second"], row["speedup"],
                 "undefined" if row["spearman"] is None else f"{row['spearman']:.5f}",
                 row["max_abs_logit_difference"], what)
    chosen = agreement["backends"][backend]
    record = {"requested": t.scoring_backend, "backend": backend, "reason": reason,
              "summary": B.summary(agreement, backend, what),
              "speedup": chosen["speedup"], "spearman": chosen["spearman"],
              "max_abs_logit_difference": chosen["max_abs_logit_difference"], "held_pairs": len(held),
              "held_split": split,
              "min_spearman": B.MIN_SPEARMAN, "min_speedup": B.MIN_SPEEDUP, "agreement": agreement}
    log.info("%s (%s)", record["summary"], reason)
    R.write_json(record, record_path)
    return record
