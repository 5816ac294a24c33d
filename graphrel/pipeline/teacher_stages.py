"""Stages ``teacher_fit`` (-> teacher/) and ``teacher_scoring`` (-> teacher_scores.parquet)."""

from __future__ import annotations

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
from graphrel.scoring.teacher_labelling import load_teacher, teacher_logits_resumable


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
    data.set_frames(sample_rows(pairs[pairs.split == "train"], t.max_train_pairs, c.seed),
                    sample_rows(pairs[pairs.split == "val"], t.max_val_pairs, c.seed))
    trainer = stage_trainer(t.epochs, run_dir, "teacher_checkpoints", progress, monitor=None)
    trainer.fit(teacher, datamodule=data)
    with R.atomic_path(directory, directory=True) as tmp:
        teacher.save_pretrained(tmp)
        trainer.save_checkpoint(tmp / "teacher.ckpt")
    write_model_card(directory, name="teacher", kind="teacher", config=c, run_dir=run_dir)
    return teacher


def score_with_teacher(c: PipelineConfig, run_dir: Path, pairs: pd.DataFrame, teacher, *,
                       progress: bool) -> pd.DataFrame:
    """Teacher logits and scores of every pair (labelled and transfer). -> teacher_scores.parquet

    Resumable: chunks saved in teacher_scores.parts/ survive an interruption (removed once
    the scores are written). Reloads teacher_scores.parquet if it exists.
    """
    path = run_dir / R.TEACHER_SCORES
    if path.exists():
        return pd.read_parquet(path)
    t = c.teacher
    parts = run_dir / R.TEACHER_SCORE_PARTS
    logits = teacher_logits_resumable(teacher, pairs["query"], pairs["product_text"], parts,
                                      batch_size=t.score_batch_size, progress=progress)
    scores = pd.DataFrame({"query_id": pairs["query_id"], "product_id": pairs["product_id"],
                           "teacher_logit": logits,
                           "teacher_score": torch.sigmoid(torch.from_numpy(logits) / t.temperature).numpy()})
    R.write_parquet(scores, path)
    shutil.rmtree(parts)
    return scores
