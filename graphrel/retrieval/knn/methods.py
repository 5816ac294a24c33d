"""Every method of the CE k-NN comparison run over the test queries at one budget, charged in CE calls.

Each run gets a fresh :class:`~graphrel.retrieval.knn.calls.CrossEncoderCalls` over the ground
truth matrix (the test queries' CE scores, computed once): a call served from the cache costs
the method one CE call, exactly as a fresh teacher call would.

Methods (names of ``metrics.json``'s ``knn`` entry):

- ``retrieve_rerank_de`` / ``retrieve_rerank_bm25``: the retriever's top B, CE-scored (R = 1).
- ``axn_mf_ind`` / ``axn_mf_trns``: Algorithm 1 over the index's item embeddings, R rounds.
- ``anncur``: k_i fixed random anchor items (the same for every query), then the B - k_i items of
  highest CUR approximation; item embeddings = the anchor queries' dense CE rows.
- ``adacur``: Algorithm 1 over the same CUR item embeddings, R rounds (anchors grow each round).
"""

from __future__ import annotations

import time

import numpy as np

from graphrel.retrieval.knn.calls import CrossEncoderCalls, matrix_pair_scores
from graphrel.retrieval.knn.recall import top_k_recall
from graphrel.retrieval.knn.search import adaptive_search, anncur_sizes, round_sizes


def run_method(truth: np.ndarray, first_rounds: np.ndarray, sizes, ks, *, item_embeddings=None,
               query_embeddings=None, blend: float = 0.0, offset: float = 0.0, scale: float = 1.0) -> dict:
    """Search every test query; Top-k-Recall and CE calls.

    Args:
        truth: (Q, N) exact CE scores (served as the CE calls, and the exact top-k).
        first_rounds: (Q, >= sizes[0]) item rows ranked best first, per query.
        sizes: products per round.
        ks: k values (each <= sum(sizes) and <= N).
        item_embeddings: V (N, d) or None (one round).
        query_embeddings: (Q, d) u_param per query, for ``blend`` > 0.
        blend, offset, scale: as :func:`~graphrel.retrieval.knn.search.adaptive_search`.

    Returns:
        ``{"top{k}_recall": mean over queries, "ce_calls_search": mean CE calls per query,
        "ce_calls_search_total": all queries' calls, "search_seconds": mean seconds per query
        spent outside the CE (least squares, ranking; the CE calls are cached here)}``.
    """
    calls = CrossEncoderCalls(matrix_pair_scores(truth))
    depth = max(ks)
    recalls = {k: [] for k in ks}
    start = time.perf_counter()
    for q in range(len(truth)):
        found = adaptive_search(lambda rows, q=q: calls(q, rows), first_rounds[q], sizes, depth,
                                item_embeddings=item_embeddings, n_items=truth.shape[1],
                                query_embedding=None if query_embeddings is None else query_embeddings[q],
                                blend=blend, offset=offset, scale=scale)
        for k in ks:
            recalls[k].append(top_k_recall(found.rows, truth[q], k))
    seconds = time.perf_counter() - start
    out = {f"top{k}_recall": float(np.mean(values)) for k, values in recalls.items()}
    out.update(ce_calls_search=calls.calls / len(truth), ce_calls_search_total=calls.calls,
               search_seconds=seconds / len(truth))
    return out


def recall_ks(top_ks, budget: int, n_items: int) -> list[int]:
    """The k of Top-k-Recall reported at budget B: k <= B and k <= N."""
    return [k for k in sorted(top_ks) if k <= budget and k <= n_items]


def retrieve_rerank(truth, ranking, budget: int, top_ks) -> dict:
    """A retriever's top B re-ranked by the CE (R = 1)."""
    return run_method(truth, ranking, [budget], recall_ks(top_ks, budget, truth.shape[1]))


def axn(truth, ranking, budget: int, rounds: int, top_ks, index, *, query_embeddings=None, blend: float = 0.0) -> dict:
    """AXN's multi-round search over a :class:`~graphrel.retrieval.knn.index_build.FittedIndex`."""
    return run_method(truth, ranking, round_sizes(budget, rounds), recall_ks(top_ks, budget, truth.shape[1]),
                      item_embeddings=index.item_embeddings, query_embeddings=query_embeddings,
                      blend=blend, offset=index.offset, scale=index.scale)


def anncur(truth, anchor_items: np.ndarray, budget: int, top_ks, cur_embeddings) -> dict:
    """ANNCUR at budget B: the fixed anchor items (same for every query), then B - k_i re-ranked."""
    sizes = anncur_sizes(budget, len(anchor_items))
    first = np.broadcast_to(np.asarray(anchor_items, dtype=np.int64), (len(truth), len(anchor_items)))
    return run_method(truth, first, sizes, recall_ks(top_ks, budget, truth.shape[1]), item_embeddings=cur_embeddings)


def adacur(truth, ranking, budget: int, rounds: int, top_ks, cur_embeddings) -> dict:
    """adaCUR: Algorithm 1 with the CUR item embeddings."""
    return run_method(truth, ranking, round_sizes(budget, rounds), recall_ks(top_ks, budget, truth.shape[1]),
                      item_embeddings=cur_embeddings)
