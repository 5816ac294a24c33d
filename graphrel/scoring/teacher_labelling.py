"""Teacher labelling: the cross-encoder's logits of many pairs, the slow part of a run.

Pairs are tokenised once and batched by token length (little padding);
:func:`teacher_logits_resumable` saves chunks as it goes, so an interrupted labelling of
hundreds of thousands of pairs resumes. Scores are ``sigmoid(logit / T)``. Both score
through a backend of :mod:`graphrel.scoring.teacher_backends` (``fp32``, ``bf16``, ``int8``, ...).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from graphrel.run import write_json, write_npy
from graphrel.scoring.paused_gc import paused_garbage_collector
from graphrel.scoring.teacher_backends import teacher_forward


@torch.inference_mode()
@paused_garbage_collector()
def teacher_logits(teacher, queries, products, *, batch_size: int = 128, sort_by_length: bool = True,
                   pad_to_max_length: bool = False, progress: bool = True,
                   description: str = "teacher scoring", backend: str = "fp32",
                   forward=None) -> np.ndarray:
    """Teacher logits of pairs, in input order.

    Pairs are tokenised once, then batched by token length (little padding: about 2x the
    pairs/s of unsorted batches here) and run under ``torch.inference_mode``.

    Args:
        teacher: a :class:`graphrel.models.teacher.CrossEncoderTeacher`.
        queries, products: N strings each.
        batch_size: pairs per forward pass.
        sort_by_length: batch pairs of similar length together.
        pad_to_max_length: pad every batch to the teacher's ``max_length`` (the plain,
            slow way; for benchmarks) instead of to its longest pair.
        backend: a :data:`graphrel.scoring.teacher_backends.BACKENDS` name.
        forward: a ready :func:`~graphrel.scoring.teacher_backends.teacher_forward` of
            ``teacher`` (then ``backend`` is not read): callers scoring many times build it once
            (``int8`` quantises a copy of the model each time it is built).

    Returns:
        (N,) float32 logits; scores are ``sigmoid(logit / T)``.

    Raises:
        ValueError: for an unknown backend.
    """
    ids, types = _encode_pairs(teacher, queries, products)
    order = np.argsort([len(x) for x in ids], kind="stable") if sort_by_length else np.arange(len(ids))
    out = np.empty(len(ids), dtype=np.float32)
    out[order] = _logits_of_rows(teacher, ids, types, order, batch_size=batch_size,
                                 pad_to_max_length=pad_to_max_length, progress=progress, description=description,
                                 forward=forward or teacher_forward(teacher, backend))
    return out


def _encode_pairs(teacher, queries, products) -> tuple[list, list]:
    """Wordpiece ids and token types of (query, product) pairs, truncated to max_length."""
    teacher.eval()
    encoded = teacher.tokenizer(list(queries), list(products), truncation=True,
                                max_length=teacher.hparams.max_length)
    return encoded["input_ids"], encoded["token_type_ids"]


def _logits_of_rows(teacher, ids, types, rows, *, batch_size: int, pad_to_max_length: bool = False,
                    progress: bool = False, description: str = "teacher scoring", forward=None) -> np.ndarray:
    """Teacher logits (len(rows),) of the encoded pairs ``rows``, batched in that order, through
    ``forward`` (a :func:`graphrel.scoring.teacher_backends.teacher_forward`; None: the teacher)."""
    forward = teacher if forward is None else forward
    out = np.empty(len(rows), dtype=np.float32)
    pad = teacher.tokenizer.pad_token_id
    for start in tqdm(range(0, len(rows), batch_size), desc=description, disable=not progress,
                      unit="batch", mininterval=2.0):
        batch = rows[start:start + batch_size]
        width = teacher.hparams.max_length if pad_to_max_length else max(len(ids[i]) for i in batch)
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
        token_types = torch.zeros((len(batch), width), dtype=torch.long)
        for j, i in enumerate(batch):
            input_ids[j, : len(ids[i])] = torch.as_tensor(ids[i])
            token_types[j, : len(types[i])] = torch.as_tensor(types[i])
        out[start:start + len(batch)] = forward(input_ids, (input_ids != pad).long(), token_types).float().numpy()
    return out


@torch.inference_mode()
@paused_garbage_collector()
def teacher_logits_resumable(teacher, queries, products, parts_dir: str | Path, *, chunk_size: int = 8192,
                             batch_size: int = 128, progress: bool = True, backend: str = "fp32") -> np.ndarray:
    """:func:`teacher_logits` of many pairs, saved chunk by chunk so an interrupted run resumes.

    Pairs are ordered by token length once; each chunk of ``chunk_size`` pairs of that order
    is scored (length-sorted batches, as :func:`teacher_logits`) and saved atomically as
    ``parts_dir/chunk-NNNNN.npy``. A re-run with the same pairs and settings loads the saved
    chunks and scores only the rest. With ``chunk_size`` a multiple of ``batch_size`` the
    batches are exactly those of one uninterrupted :func:`teacher_logits` call, so the
    result is identical. ``parts_dir`` records the settings, the backend among them
    (``manifest.json``); saved chunks of other pairs or settings are discarded. The caller
    deletes ``parts_dir`` once the result is safely stored.

    Args:
        teacher: a :class:`graphrel.models.teacher.CrossEncoderTeacher`.
        queries, products: N strings each.
        parts_dir: folder for the saved chunks.
        chunk_size: pairs per saved chunk.
        batch_size: pairs per forward pass.
        backend: a :data:`graphrel.scoring.teacher_backends.BACKENDS` name.
        forward: a ready :func:`~graphrel.scoring.teacher_backends.teacher_forward` of
            ``teacher`` (then ``backend`` is not read): callers scoring many times build it once
            (``int8`` quantises a copy of the model each time it is built).

    Returns:
        (N,) float32 logits in input order.

    Raises:
        ValueError: for an unknown backend.
    """
    forward = teacher_forward(teacher, backend)
    queries, products = list(queries), list(products)
    parts_dir = Path(parts_dir)
    ids, types = _encode_pairs(teacher, queries, products)  # once: chunks reuse the encoding
    order = np.argsort([len(x) for x in ids], kind="stable")
    digest = hashlib.sha256("\x1f".join(q + "\x1e" + p for q, p in zip(queries, products)).encode()).hexdigest()
    settings = {"pairs": len(queries), "pairs_sha256": digest, "chunk_size": chunk_size, "batch_size": batch_size,
                "max_length": teacher.hparams.max_length}
    if backend != "fp32":  # fp32 chunks keep the manifest they had before backends existed
        settings["backend"] = backend
    manifest = parts_dir / "manifest.json"
    if parts_dir.exists() and (not manifest.is_file() or json.loads(manifest.read_text()) != settings):
        shutil.rmtree(parts_dir)  # chunks of other pairs or settings: start over
    parts_dir.mkdir(parents=True, exist_ok=True)
    if not manifest.is_file():
        write_json(settings, manifest)
    out = np.empty(len(queries), dtype=np.float32)
    starts = range(0, len(queries), chunk_size)
    for index, start in enumerate(tqdm(starts, desc="teacher scoring (chunks)", disable=not progress, unit="chunk")):
        rows = order[start:start + chunk_size]
        path = parts_dir / f"chunk-{index:05d}.npy"
        if path.is_file():
            out[rows] = np.load(path)
            continue
        logits = _logits_of_rows(teacher, ids, types, rows, batch_size=batch_size, forward=forward)
        write_npy(logits, path)
        out[rows] = logits
    return out


def quantize_teacher(teacher):
    """int8 dynamic quantisation of the teacher's linear layers (``torch.ao.quantization.
    quantize_dynamic``): weights stored as int8, activations quantised on the fly. In place;
    returns the teacher. Check its scores against full precision before relying on it
    (``tools/bench_students.py`` reports the Spearman correlation)."""
    from torch import nn

    teacher.model = torch.ao.quantization.quantize_dynamic(teacher.model.eval(), {nn.Linear}, dtype=torch.qint8)
    return teacher


def load_teacher(directory: str | Path, **overrides):
    """A saved teacher (HF directory written by ``CrossEncoderTeacher.save_pretrained``).

    Raises:
        GraphrelInputError: if the directory is not a model directory.
    """
    from graphrel.models.teacher import CrossEncoderTeacher

    return CrossEncoderTeacher(backbone=str(directory), **overrides)
