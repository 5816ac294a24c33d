"""Batch scoring of pairs: the teacher (length-sorted, the slow part) and students.

Both take texts and return scores in input order. :func:`load_scorer` loads any student
directory; ``graphrel score`` (:func:`graphrel.streaming.score_file`) streams a pairs file
through it.
"""

from __future__ import annotations

import gc
import json
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from graphrel.errors import GraphrelInputError
from graphrel.run import GRAPH, STUDENT_CHECKPOINT, STUDENT_MANIFEST, load_run_graph


@contextmanager
def paused_garbage_collector():
    """Pause Python's cyclic garbage collector for a scoring loop.

    Featurising allocates many short-lived lists and tuples; in a long-lived process
    holding millions of objects (a pipeline with Lightning, transformers and pandas
    loaded), each automatic collection scans them all: measured here, student scoring ran
    at 12k pairs/s with the collector on against 18k paused. Used by teacher and students
    alike, so their speeds stay comparable.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@torch.inference_mode()
@paused_garbage_collector()
def teacher_logits(teacher, queries, products, *, batch_size: int = 128, sort_by_length: bool = True,
                   pad_to_max_length: bool = False, progress: bool = True,
                   description: str = "teacher scoring") -> np.ndarray:
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

    Returns:
        (N,) float32 logits; scores are ``sigmoid(logit / T)``.
    """
    ids, types = _encode_pairs(teacher, queries, products)
    order = np.argsort([len(x) for x in ids], kind="stable") if sort_by_length else np.arange(len(ids))
    out = np.empty(len(ids), dtype=np.float32)
    out[order] = _logits_of_rows(teacher, ids, types, order, batch_size=batch_size,
                                 pad_to_max_length=pad_to_max_length, progress=progress, description=description)
    return out


def _encode_pairs(teacher, queries, products) -> tuple[list, list]:
    """Wordpiece ids and token types of (query, product) pairs, truncated to max_length."""
    teacher.eval()
    encoded = teacher.tokenizer(list(queries), list(products), truncation=True,
                                max_length=teacher.hparams.max_length)
    return encoded["input_ids"], encoded["token_type_ids"]


def _logits_of_rows(teacher, ids, types, rows, *, batch_size: int, pad_to_max_length: bool = False,
                    progress: bool = False, description: str = "teacher scoring") -> np.ndarray:
    """Teacher logits (len(rows),) of the encoded pairs ``rows``, batched in that order."""
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
        out[start:start + len(batch)] = teacher(input_ids, (input_ids != pad).long(), token_types).float().numpy()
    return out


@torch.inference_mode()
@paused_garbage_collector()
def teacher_logits_resumable(teacher, queries, products, parts_dir: str | Path, *, chunk_size: int = 8192,
                             batch_size: int = 128, progress: bool = True) -> np.ndarray:
    """:func:`teacher_logits` of many pairs, saved chunk by chunk so an interrupted run resumes.

    Pairs are ordered by token length once; each chunk of ``chunk_size`` pairs of that order
    is scored (length-sorted batches, as :func:`teacher_logits`) and saved atomically as
    ``parts_dir/chunk-NNNNN.npy``. A re-run with the same pairs and settings loads the saved
    chunks and scores only the rest. With ``chunk_size`` a multiple of ``batch_size`` the
    batches are exactly those of one uninterrupted :func:`teacher_logits` call, so the
    result is identical. ``parts_dir`` records the settings (``manifest.json``); saved chunks
    of other pairs or settings are discarded. The caller deletes ``parts_dir`` once the
    result is safely stored.

    Args:
        teacher: a :class:`graphrel.models.teacher.CrossEncoderTeacher`.
        queries, products: N strings each.
        parts_dir: folder for the saved chunks.
        chunk_size: pairs per saved chunk.
        batch_size: pairs per forward pass.

    Returns:
        (N,) float32 logits in input order.
    """
    import hashlib
    import shutil

    queries, products = list(queries), list(products)
    parts_dir = Path(parts_dir)
    ids, types = _encode_pairs(teacher, queries, products)  # once: chunks reuse the encoding
    order = np.argsort([len(x) for x in ids], kind="stable")
    digest = hashlib.sha256("\x1f".join(q + "\x1e" + p for q, p in zip(queries, products)).encode()).hexdigest()
    settings = {"pairs": len(queries), "pairs_sha256": digest, "chunk_size": chunk_size, "batch_size": batch_size,
                "max_length": teacher.hparams.max_length}
    manifest = parts_dir / "manifest.json"
    if parts_dir.exists() and (not manifest.is_file() or json.loads(manifest.read_text()) != settings):
        shutil.rmtree(parts_dir)  # chunks of other pairs or settings: start over
    parts_dir.mkdir(parents=True, exist_ok=True)
    if not manifest.is_file():
        manifest.write_text(json.dumps(settings))
    out = np.empty(len(queries), dtype=np.float32)
    starts = range(0, len(queries), chunk_size)
    for index, start in enumerate(tqdm(starts, desc="teacher scoring (chunks)", disable=not progress, unit="chunk")):
        rows = order[start:start + chunk_size]
        path = parts_dir / f"chunk-{index:05d}.npy"
        if path.is_file():
            out[rows] = np.load(path)
            continue
        logits = _logits_of_rows(teacher, ids, types, rows, batch_size=batch_size)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, logits)
        os.replace(tmp, path)
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


def read_student_manifest(directory: Path, model_type: str | None = None, *,
                          fix: str = "re-run the stage that wrote this student") -> tuple[dict, Path]:
    """``student.json`` of a student directory and the path of its checkpoint.

    Args:
        directory: a student directory.
        model_type: the manifest's ``model`` the caller can load (None: any).
        fix: what to tell the user when the checkpoint is missing.

    Raises:
        GraphrelInputError: no manifest, a manifest that is not a JSON object, another model
            type, or a missing checkpoint.
    """
    manifest_path = directory / STUDENT_MANIFEST
    if not manifest_path.is_file():
        raise GraphrelInputError("not a student model directory (no student.json)", path=directory,
                                 fix="pass a student directory of a run, e.g. RUN/student_korder")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        manifest = None
    if not isinstance(manifest, dict):
        raise GraphrelInputError("student.json is not a JSON object", path=manifest_path,
                                 fix="restore the student.json written with this model")
    if model_type is not None and manifest.get("model") != model_type:
        raise GraphrelInputError(f"unsupported student type {manifest.get('model')!r} (expected {model_type})",
                                 path=manifest_path, fix="load this directory with graphrel.scoring.load_scorer")
    checkpoint = directory / manifest.get("checkpoint", STUDENT_CHECKPOINT)
    if model_type is not None and not checkpoint.is_file():
        raise GraphrelInputError("student checkpoint not found", path=checkpoint, fix=fix)
    return manifest, checkpoint


@dataclass
class StudentScorer:
    """A trained student with its graph, ready to score pairs from text.

    Load with :meth:`load` from a student directory (``model.ckpt`` + ``student.json``).
    """

    model: object
    featurizer: object
    name: str = "student"

    @classmethod
    def load(cls, directory: str | Path, *, graph: str | Path | None = None) -> "StudentScorer":
        """Load ``<directory>/student.json``, its checkpoint and its graph.

        Args:
            directory: a student directory.
            graph: the query-product graph (``graph.pt``) to read neighbours from instead of
                the one the manifest names (e.g. a run's ``graph_new_query.pt``, in which no
                test query has an edge).

        Raises:
            GraphrelInputError: unknown directory, missing manifest or checkpoint, or a
                checkpoint of another model type.
        """
        from graphrel.backbone import load_tokenizer
        from graphrel.data.features import PairFeaturizer
        from graphrel.data.tokens import WordpieceCache
        from graphrel.models.korder import KOrderStudent

        directory = Path(directory)
        manifest, checkpoint = read_student_manifest(directory, "KOrderStudent",
                                                     fix="re-run the pipeline's student stage")
        try:
            model = KOrderStudent.load_from_checkpoint(checkpoint, map_location="cpu")
        except (KeyError, TypeError, RuntimeError) as error:
            raise GraphrelInputError(f"not a k-order student checkpoint ({error.__class__.__name__})",
                                     path=checkpoint, fix="pass the checkpoint of a KOrderStudent") from None
        model.eval()
        graph = load_run_graph(Path(graph) if graph is not None
                               else (directory / manifest.get("graph", f"../{GRAPH}")).resolve())
        featurizer = PairFeaturizer(graph, WordpieceCache(load_tokenizer(model.hparams.backbone)),
                                    cap=manifest.get("cap", 8), metapaths=model.metapaths,
                                    neighbourhood_statistics=model.hparams.get("neighbourhood_statistics", False))
        model.attach_graph(featurizer.query_node_tokens, featurizer.product_node_tokens)
        scorer = cls(model=model, featurizer=featurizer, name=directory.name)
        scorer.reset_text_caches()  # the graph's node texts are not the texts it will score
        return scorer

    def reset_text_caches(self) -> None:
        """Forget the wordpieces of every text tokenised so far (timing from a cold cache)."""
        from graphrel.data.tokens import WordpieceCache

        self.featurizer.tokens = WordpieceCache(self.featurizer.tokens.tokenizer, self.featurizer.tokens.pad_id)

    @torch.inference_mode()
    @paused_garbage_collector()
    def score(self, query_ids, queries, product_ids, product_texts, *, batch_size: int = 512,
              progress: bool = False) -> np.ndarray:
        """Relevance scores of pairs from their ids and texts, in input order.

        Texts are tokenised and neighbours looked up for all pairs at once (vectorised),
        then scored in batches of similar product-text length (little padding).

        Args:
            query_ids, product_ids: N str ids (graph neighbours are looked up by id; unseen
                ids have none).
            queries, product_texts: N str texts.
            batch_size: pairs per forward pass (small batches stay in CPU cache).

        Returns:
            (N,) float32 scores in [0, 1].

        Raises:
            ValueError: ``batch_size`` < 1 (no batch would run: the scores would be
                whatever memory held).
        """
        from graphrel.data.features import select_rows

        if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"batch_size must be a whole number >= 1, got {batch_size!r}")

        features = self.featurizer.from_texts(query_ids, queries, product_ids, product_texts)
        lengths = (features["product_tokens"] != self.featurizer.tokens.pad_id).sum(1).numpy()
        order = torch.from_numpy(np.argsort(lengths, kind="stable"))
        out = np.empty(len(lengths), dtype=np.float32)
        for start in tqdm(range(0, len(order), batch_size), desc=f"{self.name} scoring", disable=not progress,
                          unit="batch", mininterval=2.0):
            rows = order[start:start + batch_size]
            batch = select_rows(features, rows, self.featurizer.tokens.pad_id)
            out[rows.numpy()] = torch.sigmoid(self.model(batch)).numpy()
        return out


#: Model type in a student directory's manifest -> "module:scorer class" that loads it.
SCORERS = {"KOrderStudent": "graphrel.scoring:StudentScorer",
           "Bert2DnnStudent": "graphrel.models.bert2dnn_scorer:Bert2DnnScorer"}


def load_scorer(directory: str | Path, *, graph: str | Path | None = None):
    """Load any student directory (k-order graph student, BERM-O, BERT2DNN) for scoring.

    Dispatches on ``student.json``'s ``model``; every scorer has
    ``score(query_ids, queries, product_ids, product_texts) -> (N,) float32 in [0, 1]``
    and ``reset_text_caches()``.

    Args:
        directory: a student directory.
        graph: for graph students, a ``graph.pt`` to read neighbours from instead of the
            manifest's (text-only students ignore it).

    Raises:
        GraphrelInputError: no manifest, or a model type graphrel cannot score.
    """
    import importlib

    directory = Path(directory)
    model = read_student_manifest(directory)[0].get("model")
    if model not in SCORERS:
        raise GraphrelInputError(f"unsupported student type {model!r}", path=directory / STUDENT_MANIFEST,
                                 fix=f"pass a directory of one of: {', '.join(SCORERS)}")
    module, name = SCORERS[model].split(":")
    scorer_class = getattr(importlib.import_module(module), name)
    return scorer_class.load(directory, graph=graph) if model == "KOrderStudent" else scorer_class.load(directory)


def timed(function, *args, **kwargs):
    """(result, seconds) of one call."""
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start
