"""Builders of the EmbedDistill students (Kim et al., arXiv 2301.12005) in the retrieval stage.

Every student starts from model2vec static token embeddings distilled from the dual encoder's
query encoder (``student_dim`` dimensions), restricted with ``student_prune_vocabulary`` to the
wordpieces of the catalogue's titles and the run's training and validation queries (never a test
query): on Home Depot that keeps about 11.5k of 30.5k rows, so 192 dimensions fit in 1/10 of the
teacher's parameters (2.22M of 22.7M) where the whole vocabulary allowed only 64. The embedding
matching terms also see **extra matching queries** without products: synthetic queries from the
catalogue's titles (:func:`~graphrel.data.query_generation.generate_queries`) and the run's
training and validation queries, each with the teacher's query embedding (computed once, cached
under ``cache/``); a generated query equal to a test query (case-folded) is left out.

Students: ``embeddistill`` (asymmetric: the teacher's frozen product embeddings), the loss
ablation (``embeddistill_label`` ...) and ``embeddistill_symmetric`` (the student encodes the
products too, with document embedding matching).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from graphrel.retrieval.build_keys import key as _key
from graphrel.retrieval.build_keys import reusable as _reusable
from graphrel.retrieval.serving.retriever import Retriever, save_dense_retriever
from graphrel.run import atomic_path

log = logging.getLogger("graphrel")

SYMMETRIC = "embeddistill_symmetric"


def run_queries(pairs: pd.DataFrame) -> list[str]:
    """Distinct query texts of the run's training and validation splits (never test), in id order."""
    rows = pairs[pairs["split"].isin(["train", "val"])].drop_duplicates("query_id").sort_values("query_id")
    return rows["query"].astype(str).tolist()


def matching_queries(pairs, catalogue, c, *, test_queries) -> list[str]:
    """The extra matching queries of config ``c``: generated from titles, then the run's queries.

    Generated queries equal (case-folded, stripped) to a test query are left out.
    """
    from graphrel.data.query_generation import generate_queries

    texts = []
    if c.generated_queries_per_product:
        texts += generate_queries(list(catalogue.texts), per_product=c.generated_queries_per_product, seed=c.seed)
    test = {str(q).lower().strip() for q in test_queries}
    texts = [t for t in texts if t.lower().strip() not in test]
    if c.matching_run_queries:
        texts += run_queries(pairs)
    return texts


def _teacher_embeddings(encoder, texts: list[str], path: Path, key: str, batch_size: int,
                        precision: str = "float32") -> np.ndarray:
    """The teacher's unit embeddings of ``texts`` in ``precision``, cached in ``path`` (+ ``.key``)."""
    from graphrel.retrieval.encoding.encoders import encode

    key_path = path.with_suffix(".key")
    if path.is_file() and key_path.is_file() and key_path.read_text() == key:
        return np.load(path)
    start = time.perf_counter()
    vectors = encode(encoder, texts, batch_size=batch_size, precision=precision)
    log.info("retrieval: %d matching queries encoded by the teacher in %.0f s (%s)", len(texts),
             time.perf_counter() - start, precision)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, vectors)
    key_path.write_text(key)
    return vectors


def build_students(variants: dict, examples, pairs, catalogue, c, output_dir: Path, teacher_key: str, *,
                   test_queries) -> list[str]:
    """Train every EmbedDistill student unless reusable; return the names built, in report order.

    Args:
        variants: asymmetric students, name -> (label, score, embedding) loss weights.
        examples: the stage's training examples; pairs: the run's pairs; catalogue: the products.
        c: the ``RetrievalConfig``; output_dir: the stage's directory; teacher_key: the dual
            encoder's build key; test_queries: texts the matching queries must not repeat.
    """
    from graphrel.retrieval.students.embeddistill import LossWeights, build_asymmetric_student, distil_static_embeddings
    from graphrel.retrieval.students.embeddistill import prune_vocabulary, train_asymmetric_student
    from graphrel.retrieval.encoding.encoders import checked_precision, encode

    root = Path(output_dir) / "retrievers"
    teacher = Retriever.load(root / "dual_encoder")
    products = np.load(root / "dual_encoder" / "product_embeddings.npy")
    rows = {p: i for i, p in enumerate(catalogue.product_ids)}
    matching = matching_queries(pairs, catalogue, c, test_queries=test_queries)
    cache = Path(output_dir) / "cache" / "matching_queries.npy"

    def cache_key(precision: str) -> str:  # float32: no precision entry, as before the option
        return _key(teacher=teacher_key, texts=_key(texts=matching),
                    **({} if precision == "float32" else {"precision": precision}))

    key_path = cache.with_suffix(".key")
    cached = key_path.is_file() and key_path.read_text() == cache_key(c.target_precision)  # it passed the check
    precision = checked_precision(teacher.query_encoder, matching, c.target_precision, what="target encoding",
                                  texts_name="matching queries", batch_size=c.encode_batch_size, passed_before=cached)
    setup = dict(teacher=teacher_key, dim=c.student_dim, prune=c.student_prune_vocabulary, steps=c.student_steps,
                 bs=c.student_batch_size, lr=c.student_learning_rate, scale=c.scale, seed=c.seed,
                 matching=_key(texts=matching), matching_bs=c.matching_batch_size, matching_score=c.matching_score,
                 **({} if precision == "float32" else {"targets": precision}))
    names = list(variants) + ([SYMMETRIC] if c.symmetric_student else [])
    keys = {name: _key(weights=variants.get(name, (c.label_weight, c.score_weight, c.embedding_weight)),
                       kind="symmetric" if name == SYMMETRIC else "asymmetric",
                       document_weight=c.document_weight if name == SYMMETRIC else None, **setup) for name in names}
    todo = [name for name in names if not _reusable(root / name, keys[name])]
    if not todo:
        return names
    start = time.perf_counter()
    static = distil_static_embeddings(root / "dual_encoder" / "query_encoder", dim=c.student_dim)
    if c.student_prune_vocabulary:
        static = prune_vocabulary(static, list(catalogue.texts) + run_queries(pairs) + list(examples["query"]))
    log.info("retrieval: static embeddings (%d wordpieces x %d) in %.0f s", static.num_embeddings, c.student_dim,
             time.perf_counter() - start)
    teacher_q = encode(teacher.query_encoder, examples["query"], batch_size=c.encode_batch_size, precision=precision)
    extra = {}
    if matching:
        vectors = _teacher_embeddings(teacher.query_encoder, matching, cache, cache_key(precision), c.encode_batch_size,
                                      precision)
        extra = dict(matching_queries=matching, matching_teacher_embeddings=vectors,
                     matching_batch_size=c.matching_batch_size, matching_score=c.matching_score)
    for name in todo:
        weights = variants.get(name, (c.label_weight, c.score_weight, c.embedding_weight))
        loss_weights = LossWeights(*weights)
        student = build_asymmetric_student(static, output_dim=products.shape[1], seed=c.seed)
        uses_matching = bool(extra) and bool(loss_weights.embedding or (c.matching_score and loss_weights.score))
        common = dict(teacher_query_embeddings=teacher_q, weights=loss_weights, steps=c.student_steps,
                      batch_size=c.student_batch_size, learning_rate=c.student_learning_rate, seed=c.seed,
                      scale=c.scale, **(extra if uses_matching else {}))
        start = time.perf_counter()
        manifest = {"build_key": keys[name], "loss_weights": dict(zip(("label", "score", "embedding"), weights)),
                    "matching_queries": len(matching) if uses_matching else 0, "static_rows": static.num_embeddings,
                    "target_precision": precision}
        if name == SYMMETRIC:
            from graphrel.retrieval.students.embeddistill_symmetric import save_symmetric_student, train_symmetric_student

            losses = train_symmetric_student(student, examples, product_texts=catalogue.texts,
                                             teacher_product_embeddings=products, product_rows=rows,
                                             document_weight=c.document_weight, **common)
            manifest.update(train_seconds=time.perf_counter() - start, first_loss=losses[0],
                            last_loss=float(np.mean(losses[-20:])), document_weight=c.document_weight)
            save_symmetric_student(root / name, student, catalogue, name=name, teacher="dual_encoder", extra=manifest)
            continue
        losses = train_asymmetric_student(student, examples, product_embeddings=products, product_rows=rows, **common)
        manifest.update(train_seconds=time.perf_counter() - start, first_loss=losses[0],
                        last_loss=float(np.mean(losses[-20:])))
        save_dense_retriever(root / name, query_encoder=student, catalogue=catalogue, product_embeddings=products,
                             name=name, teacher="dual_encoder",
                             product_encoder_parameters=teacher.manifest.get("product_encoder_parameters"),
                             extra=manifest)
    return names
