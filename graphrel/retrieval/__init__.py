"""Retrieval over the whole catalogue: catalogue and evaluation (recall@k,
NDCG@10 on unseen test queries), BM25 (bm25s), dense retrievers over a faiss exact
inner-product index, the dual encoder fine-tuned on training pairs, EmbedDistill students
(Kim et al., arXiv 2301.12005), ``graphrel retrieve`` and the stage function
:func:`graphrel.retrieval.stage.run_retrieval`. Sub-rooms, imports only downward (README.md):
``search`` <- ``encoding``, ``measures`` <- ``serving`` <- ``students``, ``knn`` <- the stage here.

Python API::

    from graphrel.retrieval import Retriever
    top = Retriever.load("RUN/retrieval/retrievers/dual_encoder").search(["cordless drill"], k=100)
"""

from graphrel.retrieval.serving.retriever import Retriever

__all__ = ["Retriever"]
