"""k-NN search with the cross-encoder itself: the top-k products **by CE score**
without scoring every product, cost counted in CE calls.

AXN (Yadav et al., "Adaptive Retrieval and Scalable Indexing for k-NN Search with Cross-Encoders",
ICLR 2024, arXiv 2405.03651): an offline index of product embeddings fitted to a sparse matrix
of CE scores (MF-Trns, MF-Ind), then a multi-round adaptive search under a budget of CE calls.
Baselines on the same ground truth and budgets: dual-encoder / BM25 retrieve-and-rerank, ANNCUR
(EMNLP 2022, arXiv 2210.12579) and adaCUR (Findings of EMNLP 2023, arXiv 2305.02996).

Modules (imports go downward): ``config`` (:class:`KnnConfig`), ``calls`` (the CE-call counter),
``score_cache`` (resumable cached CE scores), ``factorisation`` (MF models), ``index_build``,
``search`` (Algorithm 1), ``recall`` (Top-k-Recall), ``data`` (item set, queries), ``methods``,
``report``, ``index_store`` (saved index), ``evaluation`` (:func:`run_knn_evaluation`),
``command`` (``graphrel knn``, :func:`knn_search`).
"""

from graphrel.retrieval.knn.config import KnnConfig

__all__ = ["KnnConfig", "run_knn_evaluation", "knn_search"]


def __getattr__(name: str):  # lazy: the evaluation imports pandas, torch, the retrievers
    if name == "run_knn_evaluation":
        from graphrel.retrieval.knn.evaluation import run_knn_evaluation

        return run_knn_evaluation
    if name == "knn_search":
        from graphrel.retrieval.knn.command import knn_search

        return knn_search
    raise AttributeError(name)
