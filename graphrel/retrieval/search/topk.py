"""The two search primitives every index shares: the exact top k of a score matrix with a
deterministic tie-break (:func:`top_k`), and query embeddings checked against an index
(:func:`checked_queries`). Below :mod:`graphrel.retrieval.search.index`,
:mod:`graphrel.retrieval.search.hnsw` and :mod:`graphrel.retrieval.search.bm25`, so none of them
imports another for these.
"""

from __future__ import annotations

import numpy as np


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best columns of each row, ties broken by column (smaller column first).

    With the catalogue sorted by product id, the column is the product's rank in id order, so
    equal scores rank by product id. Exact (no approximation): every column tied with the
    k-th score is considered before the cut.

    Args:
        scores: (Q, N) float scores, higher is better; NaN is not allowed.
        k: 1 <= k; clamped to N.

    Returns:
        indices (Q, min(k, N)) int64 and their scores (Q, min(k, N)), best first.

    Raises:
        ValueError: k < 1 or scores not 2-D.
    """
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"scores must be (queries, products), got shape {scores.shape}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    k = min(int(k), scores.shape[1])
    indices = np.empty((scores.shape[0], k), dtype=np.int64)
    for row, values in enumerate(scores):
        kth = np.partition(values, values.shape[0] - k)[values.shape[0] - k]  # k-th largest
        candidates = np.flatnonzero(values >= kth)
        order = np.lexsort((candidates, -values[candidates]))[:k]
        indices[row] = candidates[order]
    return indices, np.take_along_axis(scores, indices, axis=1)


def checked_queries(query_embeddings, k: int, *, dim: int, products: int) -> tuple[np.ndarray, int]:
    """Query embeddings as (Q, dim) C-contiguous float32 and ``k`` clamped to the products.

    Raises:
        ValueError: k < 1 or a dimension mismatch.
    """
    queries = np.ascontiguousarray(query_embeddings, dtype=np.float32)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if queries.ndim != 2 or queries.shape[1] != dim:
        raise ValueError(f"query embeddings must be (queries, {dim}), got shape {queries.shape}")
    return queries, min(int(k), products)
