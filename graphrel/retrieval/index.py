"""Exact inner-product search over product embeddings with faiss-cpu.

``faiss.IndexFlatIP`` scores every product (exact, no approximation). Vectors are
L2-normalised by the caller wherever the model's similarity is cosine (every sentence encoder
graphrel trains ends with a ``Normalize`` module), so inner product = cosine. faiss orders equal
scores in no documented way; :meth:`ExactIndex.search` re-orders them by catalogue row (= product
id order) and, when a tie straddles the cut, re-scores that query over the whole catalogue, so
the top k is the same whatever the batch.
"""

from __future__ import annotations

import numpy as np

from graphrel.retrieval.evaluation import top_k


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero).

    Args:
        vectors: (N, d) float.

    Returns:
        (N, d) float32, C-contiguous.
    """
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors / np.where(norms > 0, norms, 1.0))


class ExactIndex:
    """faiss exact inner-product index over a catalogue's product embeddings.

    Args:
        product_embeddings: (N, d) float32, row i = catalogue row i (product id order).
        threads: faiss OpenMP threads (``faiss.omp_set_num_threads``); None leaves faiss's default.
    """

    def __init__(self, product_embeddings: np.ndarray, *, threads: int | None = None) -> None:
        import faiss

        if threads is not None:
            faiss.omp_set_num_threads(int(threads))
        vectors = np.ascontiguousarray(product_embeddings, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) == 0:
            raise ValueError(f"product embeddings must be (products >= 1, dim), got shape {vectors.shape}")
        self.index = faiss.IndexFlatIP(vectors.shape[1])
        self.index.add(vectors)

    def __len__(self) -> int:
        return self.index.ntotal

    @property
    def dim(self) -> int:
        return self.index.d

    def search(self, query_embeddings: np.ndarray, k: int, *, margin: int = 16) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` products of highest inner product for each query, ties by catalogue row.

        Args:
            query_embeddings: (Q, d) float32, the same space as the products.
            k: >= 1; clamped to the catalogue size.
            margin: extra results fetched so ties at the cut can be re-ordered without a
                full re-scoring (any value >= 0 gives the same result).

        Returns:
            indices (Q, k) int64 catalogue rows and scores (Q, k) float32, best first.

        Raises:
            ValueError: k < 1 or a dimension mismatch.
        """
        queries = np.ascontiguousarray(query_embeddings, dtype=np.float32)
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise ValueError(f"query embeddings must be (queries, {self.dim}), got shape {queries.shape}")
        n = len(self)
        k = min(int(k), n)
        fetch = min(n, k + max(0, int(margin)))
        scores, indices = self.index.search(queries, fetch)
        out_i = np.empty((len(queries), k), dtype=np.int64)
        out_s = np.empty((len(queries), k), dtype=np.float32)
        for row in range(len(queries)):
            if fetch < n and scores[row, fetch - 1] >= scores[row, k - 1]:  # a tie reaches past the fetch
                full_s, full_i = self.index.search(queries[row:row + 1], n)
                dense = np.empty(n, dtype=np.float32)
                dense[full_i[0]] = full_s[0]
                idx, val = top_k(dense[None], k)
                out_i[row], out_s[row] = idx[0], val[0]
                continue
            order = np.lexsort((indices[row], -scores[row]))[:k]
            out_i[row], out_s[row] = indices[row, order], scores[row, order]
        return out_i, out_s
