"""EmbedDistill symmetric student (Kim et al., arXiv 2301.12005, Sec. 4.2): one small encoder for
queries **and** products, distilled from a dual-encoder teacher.

Unlike the asymmetric student (:mod:`graphrel.retrieval.students.embeddistill`), the product side is
the student's own: the whole catalogue is re-encoded by the student (seconds for a static
encoder), so the catalogue no longer needs the teacher either. The encoder is the same as the
asymmetric student's (model2vec static token embeddings, mean-pooled, linear projection psi,
L2 normalisation; :func:`~graphrel.retrieval.students.embeddistill.build_asymmetric_student` builds it).
Losses (weights configurable, any may be 0):

- **label loss**: in-batch softmax over the batch's positives and hard negatives, all encoded
  by the student (sentence-transformers ``MultipleNegativesRankingLoss``);
- **score distillation**: KL(softmax(s <e_t(q), e_t(p)>) || softmax(s <e_s(q), e_s(p)>)) over
  every product of the batch;
- **query embedding matching**: mean ||e_t(q) - e_s(q)||_2 (the paper's Eq. 7);
- **document embedding matching**: mean ||e_t(p) - e_s(p)||_2 over the batch's products and,
  optionally, ``matching_products_batch_size`` random catalogue products per step (products
  need no label: the catalogue is the document-side analogue of synthetic queries).

Reconstruction choices (not in the paper): the static-embedding encoder; one shared encoder
and projection for both sides; random catalogue products in the document matching term.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from graphrel.retrieval.students.embeddistill import (LossWeights, check_matching_queries, matching_batches,
                                                       score_distillation, training_setup)
from graphrel.retrieval.students.training import embed, train_on_distinct_queries


def train_symmetric_student(student, examples: pd.DataFrame, *, product_texts, teacher_product_embeddings: np.ndarray,
                            product_rows: dict, teacher_query_embeddings: np.ndarray, weights: LossWeights,
                            steps: int, batch_size: int, learning_rate: float, seed: int, scale: float = 20.0,
                            document_weight: float = 1.0, matching_products_batch_size: int = 0,
                            matching_queries=None, matching_teacher_embeddings: np.ndarray | None = None,
                            matching_batch_size: int | None = None, matching_score: bool = False) -> list[float]:
    """Train a symmetric EmbedDistill student in place: it encodes queries and products.

    Args:
        student: a ``SentenceTransformer`` whose output dim = the teacher's (e.g. from
            :func:`~graphrel.retrieval.students.embeddistill.build_asymmetric_student`).
        examples: ``query_id, query, product_id, negative_1..n`` (product ids).
        product_texts: (N,) product texts in catalogue order.
        teacher_product_embeddings: (N, d) the teacher's unit product embeddings, catalogue order.
        product_rows: product id -> catalogue row.
        teacher_query_embeddings: (len(examples), d) the teacher's embedding of each example's query.
        weights: label, score distillation and query embedding matching weights.
        steps, batch_size, learning_rate, seed: as :func:`~graphrel.retrieval.students.training.train_on_distinct_queries`.
        scale: softmax inverse temperature on cosines (> 0).
        document_weight: weight of document embedding matching (>= 0).
        matching_products_batch_size: random catalogue products per step added to document
            matching (>= 0; 0: only the batch's products).
        matching_queries, matching_teacher_embeddings, matching_batch_size, matching_score: extra
            unlabelled queries, as :func:`~graphrel.retrieval.students.embeddistill.train_asymmetric_student`.

    Returns:
        The total loss of every step.

    Raises:
        ValueError: an option out of range, embeddings that disagree with the catalogue, or bad
            extra matching queries.
    """
    texts = np.asarray([str(t) for t in product_texts], dtype=object)
    teacher_p = np.asarray(teacher_product_embeddings, dtype=np.float32)
    if teacher_p.ndim != 2 or teacher_p.shape[0] != len(texts):
        raise ValueError(f"teacher_product_embeddings must be ({len(texts)}, d), got {teacher_p.shape}")
    if student.get_embedding_dimension() != teacher_p.shape[1]:
        raise ValueError(f"student dim {student.get_embedding_dimension()} != teacher dim {teacher_p.shape[1]}")
    if not np.isfinite(document_weight) or document_weight < 0:
        raise ValueError(f"document_weight must be a finite number >= 0, got {document_weight!r}")
    extra_products = matching_products_batch_size
    if isinstance(extra_products, bool) or not isinstance(extra_products, int) or extra_products < 0:
        raise ValueError(f"matching_products_batch_size must be a whole number >= 0, got {extra_products!r}")
    if extra_products and not document_weight:
        raise ValueError("matching_products_batch_size > 0 needs document_weight > 0 (document matching uses them)")
    extra = check_matching_queries(matching_queries, matching_teacher_embeddings, dim=teacher_p.shape[1],
                                   batch_size=matching_batch_size, weights=weights, matching_score=matching_score)
    label_loss, matching_loss, rows, teacher_q, queries, extra_batches = training_setup(
        student, examples, product_rows, teacher_query_embeddings, extra, scale=scale, seed=seed, steps=steps,
        batch_size=batch_size, matching_batch_size=matching_batch_size)
    teacher_products = torch.from_numpy(np.ascontiguousarray(teacher_p))
    product_batches = None if not matching_products_batch_size else matching_batches(
        len(texts), batch_size=matching_products_batch_size, steps=steps, seed=seed + 2)

    def step_loss(batch: np.ndarray) -> torch.Tensor:
        query_texts, query_targets = queries[batch], teacher_q[batch]
        if extra_batches is not None:
            more = next(extra_batches)
            query_texts = np.concatenate([query_texts, extra[0][more]])
            query_targets = torch.cat([query_targets, extra[1][more]])
        batch_rows = rows[batch].T.reshape(-1)  # column-major: positives, then negative_1, ...
        all_rows = batch_rows if product_batches is None else np.concatenate([batch_rows, next(product_batches)])
        q_all = embed(student, query_texts)
        p_all = embed(student, texts[all_rows])
        q_s, p_s, p_t = q_all[:len(batch)], p_all[:len(batch_rows)], teacher_products[batch_rows]
        total = q_all.new_zeros(())
        if weights.label:
            total = total + weights.label * label_loss.compute_loss_from_embeddings(
                [q_s, *p_s.split(len(batch))], None)
        if weights.score:
            scored = slice(None) if matching_score else slice(0, len(batch))
            total = total + weights.score * score_distillation(q_all[scored], query_targets[scored], p_s, scale=scale,
                                                               teacher_products=p_t)
        if weights.embedding:
            total = total + weights.embedding * matching_loss.compute_loss_from_embeddings([q_all], [query_targets])
        if document_weight:
            total = total + document_weight * matching_loss.compute_loss_from_embeddings(
                [p_all], [teacher_products[all_rows]])
        return total

    return train_on_distinct_queries(student, examples["query_id"].to_numpy(), step_loss, steps=steps,
                                     batch_size=batch_size, learning_rate=learning_rate, seed=seed,
                                     name="embeddistill symmetric student")


def save_symmetric_student(directory: str | Path, student, catalogue, *, name: str, teacher: str | None = None,
                           batch_size: int = 1024, extra: dict | None = None) -> np.ndarray:
    """Encode the catalogue with the student and write its dense retriever directory.

    Both sides are the student's: ``product_embeddings.npy`` is the catalogue re-encoded by it and
    ``product_encoder_parameters`` is its parameter count.

    Args:
        directory: the retriever directory (replaced atomically).
        student: the trained symmetric student.
        catalogue: a :class:`~graphrel.retrieval.search.catalogue.Catalogue`.
        name, teacher, extra: as :func:`~graphrel.retrieval.serving.retriever.save_dense_retriever`.
        batch_size: product texts per encoder call (>= 1).

    Returns:
        (N, d) float32 unit product embeddings written (the student's).
    """
    from graphrel.retrieval.encoding.encoders import count_parameters, encode
    from graphrel.retrieval.serving.retriever import save_dense_retriever

    products = encode(student, catalogue.texts, batch_size=batch_size)
    save_dense_retriever(directory, query_encoder=student, catalogue=catalogue, product_embeddings=products, name=name,
                         teacher=teacher, product_encoder_parameters=count_parameters(student),
                         extra={"product_side": "student", **(extra or {})})
    return products
