"""Training driver of a BERT2DNN student on a finished pipeline run, and the student
directory it writes (what :class:`graphrel.scoring.bert2dnn_scorer.Bert2DnnScorer` loads)."""

from __future__ import annotations

import inspect
import json
import shutil
import tempfile
import time
from pathlib import Path

import lightning as L
import pandas as pd
import torch

from graphrel.backbone import MINILM
from graphrel.models.bert2dnn import NGRAMS_FILE, Bert2DnnStudent
from graphrel.models.bert2dnn_data import Bert2DnnDataModule
from graphrel.models.class_path import add_class_path
from graphrel.run import STUDENT_CHECKPOINT, STUDENT_MANIFEST, atomic_path


def save_student(model: Bert2DnnStudent, featurizer, directory: str | Path, *, checkpoint: str | Path | None = None,
                 extra: dict | None = None) -> Path:
    """Write a scorer directory atomically: built beside ``directory``, then renamed onto it.

    Contents: ``model.ckpt`` (``checkpoint`` copied, or the model's weights and
    hyper-parameters saved afresh), ``ngrams.json`` and ``student.json``. An existing
    ``directory`` is replaced only once the new one is complete.
    """
    directory = Path(directory)
    with atomic_path(directory, directory=True) as tmp:
        if checkpoint is not None:
            shutil.copyfile(checkpoint, tmp / STUDENT_CHECKPOINT)
        else:
            state = {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams),
                     "ngrams": model.ngram_state, "pytorch-lightning_version": L.__version__}
            add_class_path(state, model)
            torch.save(state, tmp / STUDENT_CHECKPOINT)
        featurizer.save(tmp / NGRAMS_FILE)
        manifest = {"model": "Bert2DnnStudent", "checkpoint": STUDENT_CHECKPOINT, "ngrams": NGRAMS_FILE,
                    "init": model.hparams.init, "temperature": model.hparams.temperature,
                    "vocab_size": featurizer.vocab_size, "num_buckets": featurizer.num_buckets, **(extra or {})}
        (tmp / STUDENT_MANIFEST).write_text(json.dumps(manifest, indent=2))
    return directory


def train_bert2dnn(run_dir: str | Path, out_dir: str | Path, *, temperature: float = 1.0, init: str = "sentence",
                   epochs: int = 4, batch_size: int = 128, learning_rate: float = 1e-3, optimizer: str = "adam",
                   label_weight: float = 1.0, min_count: int = 2, num_buckets: int = 1 << 16,
                   transfer: str = "train_queries",
                   backbone: str = MINILM, backbone_config: dict | None = None, seed: int = 0,
                   progress: bool = False, model_options: dict | None = None,
                   scoring_dtype: str = "float32", pairs: pd.DataFrame | None = None) -> dict:
    """Fit a BERT2DNN student on a finished pipeline run and save a scorer directory.

    Trains on the run's teacher logits (train split + transfer pairs, see
    :class:`graphrel.models.bert2dnn_data.Bert2DnnDataModule`), keeps the epoch with the
    best ``val_auc`` and writes ``out_dir`` (``student.json``, ``model.ckpt``,
    ``ngrams.json``) atomically.

    Args:
        run_dir: a pipeline run directory (pairs.parquet, teacher_scores.parquet).
        out_dir: the student directory to write (replaced if it exists).
        temperature, init, learning_rate, optimizer, label_weight: see :class:`Bert2DnnStudent`.
        epochs, batch_size, seed: training loop.
        min_count, num_buckets, transfer: see the datamodule (``transfer="all"`` also trains
            on transfer pairs of val/test queries).
        model_options: further :class:`Bert2DnnStudent` arguments.
        scoring_dtype: ``"float32"`` or ``"bfloat16"``: the MLP's dtype when the directory
            is loaded for scoring (:class:`graphrel.scoring.bert2dnn_scorer.Bert2DnnScorer`),
            kept in ``student.json``.
        pairs: the run's teacher-scored pairs (columns as
            :meth:`Bert2DnnDataModule.set_pairs`) instead of reading ``run_dir``: the
            pipeline passes its stacked scores this way.

    Raises:
        ValueError: unknown ``scoring_dtype`` (before any training).

    Returns:
        The manifest written (with ``best_val_auc``, ``train_pairs``; no wall time, so the
        same run writes the same bytes: the stage's time is in the run's stage timings).
    """
    if scoring_dtype not in ("float32", "bfloat16"):
        raise ValueError(f"scoring_dtype must be 'float32' or 'bfloat16', got {scoring_dtype!r}")
    L.seed_everything(seed, workers=True, verbose=False)
    # batches carry the overlap features exactly when the student reads them (its default unless set)
    options = model_options or {}
    match = (options["match_features"] if "match_features" in options
             else inspect.signature(Bert2DnnStudent).parameters["match_features"].default)
    data = Bert2DnnDataModule(run_dir=str(run_dir), batch_size=batch_size, min_count=min_count,
                              num_buckets=num_buckets, transfer=transfer, seed=seed, match_features=bool(match))
    if pairs is not None:
        data.set_pairs(pairs)
    else:
        data.setup("fit")
    model = Bert2DnnStudent(init=init, temperature=temperature, learning_rate=learning_rate, optimizer=optimizer,
                            label_weight=label_weight, backbone=backbone, backbone_config=backbone_config,
                            **(model_options or {}))
    out_dir = Path(out_dir)
    with tempfile.TemporaryDirectory(prefix=f".{out_dir.name}.fit.", dir=out_dir.parent if out_dir.parent.exists()
                                     else None) as work:
        checkpoint, seconds = _fit_keeping_best(model, data, epochs=epochs, progress=progress, work=work)
        extra = {"best_val_auc": float(checkpoint.best_model_score), "epochs": epochs,
                 "train_pairs": len(data.frames["train"]),
                 "transfer": transfer, "run_dir": str(run_dir), "scoring_dtype": scoring_dtype}
        save_student(model, data.ngrams, out_dir, checkpoint=checkpoint.best_model_path, extra=extra)
    return json.loads((out_dir / "student.json").read_text())


def _fit_keeping_best(model: Bert2DnnStudent, data: Bert2DnnDataModule, *, epochs: int, progress: bool, work: str):
    """Fit ``model`` for ``epochs`` (deterministic, one CPU process, no sanity pass); the
    weights of the epoch with the best ``val_auc`` are saved in ``work``.

    Returns:
        (the ``ModelCheckpoint`` callback, with ``best_model_path`` / ``best_model_score``;
        fit seconds).
    """
    from lightning.pytorch.callbacks import ModelCheckpoint

    checkpoint = ModelCheckpoint(dirpath=work, filename="best", monitor="val_auc", mode="max", save_top_k=1,
                                 save_weights_only=True, enable_version_counter=False)
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False, callbacks=[checkpoint],
                        enable_progress_bar=progress, enable_model_summary=False, num_sanity_val_steps=0,
                        deterministic=True, default_root_dir=work)
    start = time.perf_counter()
    trainer.fit(model, datamodule=data)
    return checkpoint, time.perf_counter() - start
