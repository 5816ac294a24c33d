"""Approximate inner-product search over product embeddings: a faiss HNSW graph.

HNSW (Hierarchical Navigable Small World graphs; Malkov & Yashunin, "Efficient and robust
approximate nearest neighbor search using Hierarchical Navigable Small World graphs", IEEE
TPAMI 2018, arXiv 1603.09320) links every product to about ``2 * m`` neighbours on the bottom
layer (``m`` on the layers above) and answers a query by a greedy descent from the top layer,
then a best-first search of the bottom layer that keeps ``max(ef_search, k)`` candidates. It
scores a few thousand products per query instead of all of them, so it is **approximate**: a
true top-k product can be missed. :func:`graphrel.retrieval.search.index_comparison.compare_indexes` measures how
many are (overlap@k with the exact top k) and the speed gained.

faiss's ``IndexHNSWFlat`` with ``METRIC_INNER_PRODUCT`` keeps the vectors themselves (no
compression); with unit vectors inner product = cosine and its ranking equals the L2 one, for
which HNSW was designed.
"""

from __future__ import annotations

import numpy as np

from graphrel.retrieval.search.topk import checked_queries, top_k


def check_hnsw_options(m: int, ef_construction: int, ef_search: int) -> None:
    """Raise ``ValueError`` naming the first HNSW option out of range.

    Args:
        m: neighbours per product on the upper layers (2 * m on the bottom one), >= 2.
        ef_construction: candidate list size while inserting a product, >= 1.
        ef_search: candidate list size while searching, >= 1.
    """
    for name, value, low in (("m", m, 2), ("ef_construction", ef_construction, 1), ("ef_search", ef_search, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"HNSW {name} must be a whole number >= {low}, got {value!r}")


class HNSWIndex:
    """faiss HNSW inner-product index over a catalogue's product embeddings (approximate).

    Args:
        product_embeddings: (N, d) float32, row i = catalogue row i (product id order); unit
            rows wherever the model's similarity is cosine.
        m: graph degree (``faiss.IndexHNSWFlat``'s M), >= 2. Larger: better recall, slower
            build, more memory (about ``N * 2 * m * 4`` bytes of links besides the vectors).
        ef_construction: candidates kept while inserting a product, >= 1. Larger: a better graph,
            slower build.
        ef_search: candidates kept while searching, >= 1 (at least the number of results
            asked for); can be changed after the build (:attr:`ef_search`). Larger: better
            recall, slower search.
        threads: faiss OpenMP threads (``faiss.omp_set_num_threads``, process-wide); None
            leaves faiss's default. The build is parallel and so not bit-for-bit reproducible
            with more than one thread.

    Raises:
        ValueError: an option out of range (the message names it) or embeddings not (N >= 1, d).
    """

    def __init__(self, product_embeddings: np.ndarray, *, m: int = 32, ef_construction: int = 100,
                 ef_search: int = 128, threads: int | None = None) -> None:
        import faiss

        check_hnsw_options(m, ef_construction, ef_search)
        if threads is not None:
            faiss.omp_set_num_threads(int(threads))
        vectors = np.ascontiguousarray(product_embeddings, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) == 0:
            raise ValueError(f"product embeddings must be (products >= 1, dim), got shape {vectors.shape}")
        self.index = faiss.IndexHNSWFlat(vectors.shape[1], int(m), faiss.METRIC_INNER_PRODUCT)
        self.index.hnsw.efConstruction = int(ef_construction)
        self.index.hnsw.efSearch = int(ef_search)
        self.index.add(vectors)
        self.m = int(m)
        self.ef_construction = int(ef_construction)
        #: Queries whose HNSW search found fewer than k products and were answered exactly.
        self.exact_fallbacks = 0

    @classmethod
    def load(cls, path, *, ef_search: int | None = None, threads: int | None = None) -> "HNSWIndex":
        """An index written by :meth:`save` (no rebuild: reading takes well under a second).

        Args:
            path: the file.
            ef_search: candidates while searching, >= 1; None keeps the saved value.
            threads: faiss OpenMP threads (process-wide); None leaves faiss's default.

        Raises:
            ValueError: the file is not a faiss HNSW flat inner-product index, or ``ef_search`` < 1.
        """
        import faiss

        if threads is not None:
            faiss.omp_set_num_threads(int(threads))
        index = faiss.read_index(str(path))  # already the concrete class, and it owns the index
        if not isinstance(index, faiss.IndexHNSWFlat) or index.metric_type != faiss.METRIC_INNER_PRODUCT:
            raise ValueError(f"{path} is not a faiss IndexHNSWFlat with inner product")
        self = cls.__new__(cls)
        self.index, self.exact_fallbacks = index, 0
        self.m, self.ef_construction = int(index.hnsw.nb_neighbors(1)), int(index.hnsw.efConstruction)
        if ef_search is not None:
            self.ef_search = ef_search
        return self

    def save(self, path) -> None:
        """Write the graph and the vectors to ``path`` (``faiss.write_index``; read back by :meth:`load`)."""
        import faiss

        faiss.write_index(self.index, str(path))

    def __len__(self) -> int:
        return self.index.ntotal

    @property
    def dim(self) -> int:
        return self.index.d

    @property
    def ef_search(self) -> int:
        """Candidate list size of the search (>= 1); settable without rebuilding the graph."""
        return int(self.index.hnsw.efSearch)

    @ef_search.setter
    def ef_search(self, value: int) -> None:
        check_hnsw_options(self.m, self.ef_construction, value)
        self.index.hnsw.efSearch = int(value)

    def search(self, query_embeddings: np.ndarray, k: int, *, margin: int = 16) -> tuple[np.ndarray, np.ndarray]:
        """About the ``k`` products of highest inner product for each query (approximate).

        HNSW is asked for ``k + margin`` products; they are ordered by score, equal scores by
        catalogue row (= product id order), and cut to ``k``, so a tie at the cut goes to the
        smaller row among the products found (which products are found is approximate: unlike
        :class:`~graphrel.retrieval.search.index.ExactIndex`, a tie is not resolved over the whole
        catalogue). The search keeps ``max(ef_search, k + margin)`` candidates (faiss would stop
        after ``ef_search`` steps even for a deeper k: at depth 1000 with ef_search 128 it kept
        60% of the exact top 1000 on Home Depot). When it still ends with fewer than
        ``k + margin`` products (a tiny catalogue graph, or k near the catalogue size) that query
        is answered by exact search over the stored vectors, so no result is missing (counted in
        :attr:`exact_fallbacks`).

        Args:
            query_embeddings: (Q, d) float32, the same space as the products.
            k: >= 1; clamped to the catalogue size.
            margin: extra products fetched for the tie order at the cut, >= 0.

        Returns:
            indices (Q, k) int64 catalogue rows (each row distinct, all valid) and scores (Q, k)
            float32 inner products, best first.

        Raises:
            ValueError: k < 1 or a dimension mismatch.
        """
        import faiss

        queries, k = checked_queries(query_embeddings, k, dim=self.dim, products=len(self))
        fetch = min(len(self), k + max(0, int(margin)))
        params = faiss.SearchParametersHNSW()
        params.efSearch = max(self.ef_search, fetch)
        scores, indices = self.index.search(queries, fetch, params=params)
        short = np.flatnonzero((indices < 0).any(axis=1))
        order = np.lexsort((indices, -scores), axis=-1)[:, :k]  # score, then catalogue row
        indices = np.take_along_axis(indices, order, axis=1)
        scores = np.take_along_axis(scores, order, axis=1)
        if len(short):
            self.exact_fallbacks += len(short)
            indices[short], scores[short] = top_k(queries[short] @ self._vectors().T, k)
        return indices.astype(np.int64, copy=False), scores.astype(np.float32, copy=False)

    def _vectors(self) -> np.ndarray:
        """(N, d) float32 view of the stored product vectors (no copy; valid while the index lives)."""
        import faiss

        storage = faiss.downcast_index(self.index.storage)
        return faiss.rev_swig_ptr(storage.get_xb(), len(self) * self.dim).reshape(len(self), self.dim)
