"""Builders of the retrieval stage's retrievers: the baselines (BM25, zero-shot MiniLM), the
mined and teacher-scored training examples, the fine-tuned dual encoder (the EmbedDistill
teacher) and the EmbedDistill students. Each writes its retriever directory under
``OUTPUT/retrievers`` (or its file under ``OUTPUT``) unless one with the same build key is there
(:mod:`graphrel.retrieval.build_keys`)."""

from __future__ import annotations

import dataclasses

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from graphrel.retrieval.build_keys import key as _key
from graphrel.retrieval.build_keys import reusable as _reusable
from graphrel.retrieval.build_keys import run_fingerprint as _run_fingerprint
from graphrel.retrieval.build_keys import set_key as _set_key
from graphrel.retrieval.search.catalogue import Catalogue
from graphrel.retrieval.config import ABLATIONS
from graphrel.retrieval.serving.retriever import save_bm25_retriever, save_dense_retriever
from graphrel.run import write_parquet

log = logging.getLogger("graphrel")


def _product_embeddings(encoder, name: str, catalogue: Catalogue, cache: Path, key: str, batch_size: int,
                        precision: str = "float32") -> np.ndarray:
    """The catalogue encoded by ``encoder`` (unit rows) in ``precision``, cached as ``cache/NAME.npy`` + key."""
    from graphrel.retrieval.encoding.encoders import encode

    path, key_path = cache / f"{name}.npy", cache / f"{name}.key"
    if path.is_file() and key_path.is_file() and key_path.read_text() == key:
        return np.load(path)
    start = time.perf_counter()
    vectors = encode(encoder, catalogue.texts, batch_size=batch_size, precision=precision)
    log.info("retrieval: encoded %d products with %s in %.0f s (%s)", len(catalogue), name,
             time.perf_counter() - start, precision)
    from graphrel.run import atomic_path

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, vectors)
    key_path.write_text(key)
    return vectors


def _training_examples(pairs, catalogue, config, threshold, run_dir: Path, output_dir: Path, key: str) -> pd.DataFrame:
    """Mined and teacher-scored training examples, cached in ``training_examples.parquet``."""
    from graphrel.retrieval.search.bm25 import BM25Index
    from graphrel.retrieval.students.mining import add_teacher_logits, mine_hard_negatives, positive_examples

    path, key_path = output_dir / "training_examples.parquet", output_dir / "training_examples.key"
    if path.is_file() and key_path.is_file() and key_path.read_text() == key:
        return pd.read_parquet(path)
    from graphrel.scoring.teacher_scorer import TeacherScorer

    examples = positive_examples(pairs, threshold=threshold, max_examples=config.max_train_examples, seed=config.seed)
    bm25 = BM25Index(catalogue.texts, k1=config.bm25_k1, b=config.bm25_b)
    examples = mine_hard_negatives(examples, pairs, bm25, catalogue, negatives=config.hard_negatives,
                                   depth=config.negative_depth, threshold=threshold, seed=config.seed)
    start = time.perf_counter()
    teacher = TeacherScorer.load(run_dir / "teacher")  # the backend the positives' run scores came from
    examples = add_teacher_logits(examples, teacher, batch_size=config.teacher_batch_size)
    log.info("retrieval: %d training examples, negatives scored by the teacher (%s backend) in %.0f s", len(examples),
             teacher.backend, time.perf_counter() - start)
    write_parquet(examples, path)
    key_path.write_text(key)
    return examples


def build_retrievers(pairs, catalogue, catalogue_key, config, threshold, run_dir, output_dir, *, judged,
                     warmup=()) -> tuple[list[str], dict]:
    """Build (or reuse) every retriever directory.

    Returns:
        ``(names, fused)``: the retriever directories' names in report order, and the rank-fusion
        entries of Blend and Match (``fusion_rrf``, ``fusion_combsum``; evaluated on ``judged``
        by :func:`~graphrel.retrieval.blend_stage.build_blend_and_match`), {} when it is off.
    """
    (output_dir / "cache").mkdir(parents=True, exist_ok=True)
    zero_products, zero_key, precision = _build_baselines(catalogue, catalogue_key, config, output_dir)
    config = dataclasses.replace(config, encode_precision=precision)  # what the checked encoding uses
    example_key = _key(catalogue=catalogue_key, threshold=threshold, n=config.max_train_examples,
                       neg=config.hard_negatives, depth=config.negative_depth, seed=config.seed, k1=config.bm25_k1,
                       b=config.bm25_b, run=_run_fingerprint(pairs, run_dir),
                       **_teacher_backend_entry(run_dir))
    examples = _training_examples(pairs, catalogue, config, threshold, run_dir, output_dir, example_key)
    de_key = _build_dual_encoder(examples, catalogue, zero_products, config, output_dir, _key(e=example_key, z=zero_key))
    variants = {"embeddistill": (config.label_weight, config.score_weight, config.embedding_weight)}
    if config.ablation:
        variants.update(ABLATIONS)
    from graphrel.retrieval.student_builders import build_students

    students = build_students(variants, examples, pairs, catalogue, config, output_dir, de_key,
                              test_queries=judged.queries)
    names, fused = ["bm25", "minilm_zero_shot", "dual_encoder", *students], {}
    if config.blend_and_match:
        from graphrel.retrieval.blend_stage import build_blend_and_match

        blend = build_blend_and_match(pairs, catalogue, examples, judged, config=config, threshold=threshold,
                                      product_embeddings=zero_products, upstream_key=de_key, output_dir=output_dir,
                                      warmup=warmup)
        names += blend["retrievers"]
        fused = blend["fusion"]
    return names, fused


def _teacher_backend_entry(run_dir: Path) -> dict:
    """``{"teacher_backend": name}`` when the run's teacher scores on another backend than fp32
    (its scores of the training negatives depend on it); ``{}`` for fp32, as before backends."""
    from graphrel.scoring.teacher_scorer import run_teacher_backend

    backend = run_teacher_backend(Path(run_dir) / "teacher")
    return {} if backend == "fp32" else {"teacher_backend": backend}


def _build_baselines(catalogue, catalogue_key, c, output_dir) -> tuple[np.ndarray, str, str]:
    """BM25 and zero-shot MiniLM; returns the zero-shot product embeddings, their key and the
    precision of bulk encoding (``c.encode_precision`` if it agrees with float32, else float32)."""
    from graphrel.retrieval.encoding.encoders import checked_precision, count_parameters, load_encoder

    root = output_dir / "retrievers"
    key = _key(stage="bm25", catalogue=catalogue_key, k1=c.bm25_k1, b=c.bm25_b)
    if not _reusable(root / "bm25", key):
        save_bm25_retriever(root / "bm25", catalogue=catalogue, k1=c.bm25_k1, b=c.bm25_b)
        _set_key(root / "bm25", key)
    zero = load_encoder(c.backbone)
    # the encoder's files (weights, tokenizer) are in the key: a new package version re-encodes
    from graphrel.backbone import MINILM, resolve_backbone
    from graphrel.retrieval.build_keys import directory_fingerprint

    files = directory_fingerprint(resolve_backbone(MINILM) if str(c.backbone) == MINILM else c.backbone)

    def zero_key_of(precision: str) -> str:  # float32: no precision entry, as before the option
        return _key(encoder=c.backbone, files=files, catalogue=catalogue_key,
                    **({} if precision == "float32" else {"precision": precision}))

    key_path = output_dir / "cache" / "minilm_zero_shot.key"
    cached = key_path.is_file() and key_path.read_text() == zero_key_of(c.encode_precision)  # it passed the check
    precision = checked_precision(zero, catalogue.texts, c.encode_precision, what="encoding",
                                  texts_name="catalogue texts", batch_size=c.encode_batch_size, passed_before=cached)
    zero_key = zero_key_of(precision)
    products = _product_embeddings(zero, "minilm_zero_shot", catalogue, output_dir / "cache", zero_key,
                                   c.encode_batch_size, precision)
    if not _reusable(root / "minilm_zero_shot", zero_key):
        save_dense_retriever(root / "minilm_zero_shot", query_encoder=zero, catalogue=catalogue,
                             product_embeddings=products, name="minilm_zero_shot",
                             product_encoder_parameters=count_parameters(zero), extra={"build_key": zero_key})
    return products, zero_key, precision


def _build_dual_encoder(examples, catalogue, zero_products, c, output_dir, upstream: str) -> str:
    """Fine-tune the dual encoder (the EmbedDistill teacher) unless reusable; returns its key."""
    from graphrel.retrieval.encoding.encoders import count_parameters, load_encoder
    from graphrel.retrieval.students.training import fine_tune_dual_encoder

    directory = output_dir / "retrievers" / "dual_encoder"
    key = _key(up=upstream, steps=c.dual_encoder_steps, bs=c.dual_encoder_batch_size, lr=c.dual_encoder_learning_rate,
               side=c.dual_encoder_product_side, scale=c.scale, seed=c.seed)
    if _reusable(directory, key):
        return key
    model = load_encoder(c.backbone)
    frozen = c.dual_encoder_product_side == "frozen"
    rows = {p: i for i, p in enumerate(catalogue.product_ids)}
    start = time.perf_counter()
    losses = fine_tune_dual_encoder(model, examples, steps=c.dual_encoder_steps, batch_size=c.dual_encoder_batch_size,
                                    learning_rate=c.dual_encoder_learning_rate, seed=c.seed, scale=c.scale,
                                    product_embeddings=zero_products if frozen else None,
                                    product_rows=rows if frozen else None)
    seconds = time.perf_counter() - start
    products = zero_products if frozen else _product_embeddings(model, "dual_encoder", catalogue, output_dir / "cache",
                                                                 key, c.encode_batch_size, c.encode_precision)
    save_dense_retriever(directory, query_encoder=model, catalogue=catalogue, product_embeddings=products,
                         name="dual_encoder", product_encoder_parameters=count_parameters(model),
                         extra={"build_key": key, "train_seconds": seconds, "product_side": c.dual_encoder_product_side,
                                "first_loss": losses[0], "last_loss": float(np.mean(losses[-20:]))})
    return key


def build_hybrid(pairs, catalogue_key: str, config, threshold: float, output_dir: Path, names: list[str]) -> str:
    """Choose the hybrid's fusion on the run's validation queries and write its directory
    (:mod:`graphrel.retrieval.serving.hybrid`), unless one with the same build key is there.

    The validation queries are the run's ``val`` split with a product labelled at or above
    ``threshold`` (as the test queries are read); BM25 and the dense input (``hybrid_dense``;
    with ``auto`` each of ``dual_encoder`` and the EmbedDistill students, the best validation
    recall@100 kept) search their top 1000 of them. A run without such a query gets RRF
    (``fusion_rrf_k``), recorded as chosen on 0 queries.

    Returns:
        The hybrid's directory name (``hybrid``).

    Raises:
        GraphrelInputError: ``hybrid_dense`` is not one of ``names``.
    """
    from graphrel.errors import GraphrelInputError
    from graphrel.retrieval.search.catalogue import judged_test_queries
    from graphrel.retrieval.measures.evaluation import retrieval_metrics
    from graphrel.retrieval.serving.hybrid import CHOICE_KEYS, DEPTH, NAME, choose_setting, save_hybrid, settings_grid
    from graphrel.retrieval.serving.retriever import Retriever

    root = output_dir / "retrievers"
    if config.hybrid_dense == "auto" and "dual_encoder" in names:
        candidates = [n for n in names if n == "dual_encoder" or n.startswith("embeddistill")]
    elif config.hybrid_dense in names and config.hybrid_dense not in ("bm25", "xmc"):
        candidates = [config.hybrid_dense]
    else:
        raise GraphrelInputError(f"retrieval.hybrid_dense {config.hybrid_dense!r} is not a dense retriever of this "
                                 "stage", fix="set retrieval.hybrid_dense to dual_encoder, an embeddistill student "
                                              "or auto")
    try:
        val = judged_test_queries(pairs, threshold=threshold, splits=("val",))
    except GraphrelInputError:  # no validation pair, or none relevant
        val = None
    build_key = _key(stage=NAME, catalogue=catalogue_key, grid=settings_grid(config.fusion_rrf_k), depth=DEPTH,
                     inputs={n: _manifest_key(root / n) for n in ["bm25", *candidates]},
                     val=None if val is None else sorted((q, sorted(p)) for q, p in val.qrels.items()))
    if _reusable(root / NAME, build_key):
        return NAME
    lexical = Retriever.load(root / "bm25", threads=config.threads)
    if val is None:
        log.warning("retrieval: no validation query with a relevant product: the hybrid fuses by RRF, not chosen")
        dense = Retriever.load(root / candidates[0], threads=config.threads)
        save_hybrid(root / NAME, inputs=[lexical, dense], input_names=["bm25", candidates[0]],
                    setting=settings_grid(config.fusion_rrf_k)[0], grid=[], build_key=build_key,
                    validation={"split": "val", "queries": 0, "figures": None, "inputs": None})
        return NAME
    start, texts, depth = time.perf_counter(), list(val.queries), min(DEPTH, len(lexical.catalogue))
    runs, figures, dense = {}, {}, None
    for name in ["bm25", *candidates]:
        retriever = lexical if name == "bm25" else Retriever.load(root / name, threads=config.threads)
        runs[name] = retriever.search(texts, depth, query_ids=val.query_ids)
        measured = retrieval_metrics(runs[name], val.qrels)
        figures[name] = {k: measured[k] for k in CHOICE_KEYS}
        if name != "bm25" and (dense is None or _ordered(figures[name]) > _ordered(figures[dense[0]])):
            if dense is not None:
                del runs[dense[0]]  # keep BM25's run and the best dense run so far
            dense = (name, retriever)
        elif name != "bm25":
            del runs[name]
    dense, dense_retriever = dense
    setting, grid = choose_setting(runs["bm25"], runs[dense], val.qrels, rrf_k=config.fusion_rrf_k)
    chosen = next(p for p in grid if all(p[k] == setting[k] for k in setting))
    save_hybrid(root / NAME, inputs=[lexical, dense_retriever],
                input_names=["bm25", dense], setting=setting, grid=grid, build_key=build_key,
                validation={"split": "val", "queries": len(val), "figures": {k: chosen[k] for k in CHOICE_KEYS},
                            "inputs": figures})
    log.info("retrieval: hybrid bm25 + %s: %s chosen on %d validation queries (recall@100 %.3f) in %.0f s", dense,
             {k: v for k, v in setting.items() if v is not None}, len(val), chosen["recall@100"],
             time.perf_counter() - start)
    return NAME


def _ordered(figures: dict) -> tuple:
    """Validation figures in the order the hybrid's choices compare them (recall@100, NDCG@10)."""
    return figures["recall@100"], figures["ndcg@10"]


def _manifest_key(directory: Path) -> str | None:
    """The build key recorded in a retriever directory's manifest (None without one)."""
    import json

    from graphrel.retrieval.serving.retriever import MANIFEST

    try:
        return json.loads((directory / MANIFEST).read_text()).get("build_key")
    except (OSError, ValueError):
        return None
