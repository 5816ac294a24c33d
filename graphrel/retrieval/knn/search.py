"""Test-time k-NN search with the cross-encoder: multi-round adaptive retrieval (AXN, adaCUR),
ANNCUR's two-step search and retrieve-and-rerank are one algorithm with different inputs.

Yadav et al., "Adaptive Retrieval and Scalable Indexing for k-NN Search with Cross-Encoders"
(ICLR 2024, arXiv 2405.03651), Algorithm 1: a budget of B CE calls spent over R rounds. Round 1
CE-scores the first k_s products of a first-round ranking (dual encoder, BM25, random, or
ANNCUR's fixed anchor items); every later round solves the least squares
u_q = argmin_u ||V_A u - a|| over the products A scored so far (minimum-norm solution:
``torch.linalg.lstsq``, driver ``gelsd``; equal to pinv(V_A) a), optionally blends
u = (1 - lambda) u_q + lambda u_param with a parametric query embedding, and CE-scores the k_s
unscored products of highest u . v. The answer is the top k of every scored product by exact
CE score. With V = R^T (the CE scores of anchor queries against every item) this is CUR:
u = pinv(R[:, A]^T) a gives the approximation a pinv(R[:, A]) R of ANNCUR (Yadav et al., EMNLP
2022, arXiv 2210.12579) and, over several rounds, adaCUR (Findings of EMNLP 2023, arXiv
2305.02996). One round of B products from a retriever is retrieve-and-rerank.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


def round_sizes(budget: int, rounds: int) -> list[int]:
    """Products scored per round: B split over R rounds, k_s = B // R each, the remainder to the
    first rounds (B=50, R=10 -> ten 5s; B=100, R=3 -> 34, 33, 33).

    Raises:
        ValueError: rounds < 1 or budget < rounds (a round would score nothing).
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    if budget < rounds:
        raise ValueError(f"budget ({budget}) must be >= rounds ({rounds}): each round scores >= 1 product")
    base, extra = divmod(int(budget), int(rounds))
    return [base + (1 if r < extra else 0) for r in range(rounds)]


@dataclass(frozen=True)
class SearchResult:
    """One query's search.

    Attributes:
        rows: (min(k, scored),) item rows of the answer, best exact CE score first.
        scores: their exact CE scores.
        scored_rows: (calls,) every item row CE-scored, in scoring order.
        scored_scores: their CE scores.
    """

    rows: np.ndarray
    scores: np.ndarray
    scored_rows: np.ndarray
    scored_scores: np.ndarray

    @property
    def calls(self) -> int:
        return len(self.scored_rows)


def least_squares_query(item_embeddings: torch.Tensor, rows: np.ndarray, scores: np.ndarray) -> torch.Tensor:
    """u = argmin ||V[rows] u - scores||, minimum norm (float64).

    Args:
        item_embeddings: V, (N, d).
        rows: (m,) item rows scored; scores: (m,) their (standardised) CE scores.

    Returns:
        (d,) float64.
    """
    matrix = item_embeddings[torch.as_tensor(rows, dtype=torch.long)].to(torch.float64)
    target = torch.as_tensor(np.asarray(scores, dtype=np.float64)).reshape(-1, 1)
    return torch.linalg.lstsq(matrix, target, driver="gelsd").solution.reshape(-1)


def _best_unscored(values: np.ndarray, scored: np.ndarray, count: int) -> np.ndarray:
    """Rows of the ``count`` highest ``values`` not yet scored; ties by row (smaller first)."""
    values = np.where(scored, -np.inf, values.astype(np.float64))
    count = min(count, int((~scored).sum()))
    if count <= 0:
        return np.zeros(0, dtype=np.int64)
    candidates = np.argpartition(-values, count - 1)[:count]
    kth = values[candidates].min()
    candidates = np.flatnonzero((values >= kth) & ~scored)
    return candidates[np.lexsort((candidates, -values[candidates]))][:count]


def adaptive_search(score_items, first_round, sizes, k: int, *, item_embeddings: torch.Tensor | None = None,
                    n_items: int | None = None, query_embedding: torch.Tensor | None = None, blend: float = 0.0,
                    offset: float = 0.0, scale: float = 1.0) -> SearchResult:
    """Algorithm 1 for one query.

    Args:
        score_items: ``(item_rows (m,)) -> (m,) CE scores`` of this query (a counter's calls).
        first_round: item rows ranked best first; round 1 scores its first ``sizes[0]`` distinct rows.
        sizes: products scored per round (:func:`round_sizes`, or ANNCUR's ``[k_i, B - k_i]``).
        k: answer size (>= 1).
        item_embeddings: V (N, d) used from round 2 on; None allows one round only.
        n_items: N when ``item_embeddings`` is None (default: 1 + the largest first-round row).
        query_embedding: (d,) parametric u_param, needed when ``blend`` > 0.
        blend: lambda in [0, 1].
        offset, scale: the least squares fit (a - offset) / scale (the index's standardisation).

    Returns:
        :class:`SearchResult`; ``calls`` = sum(sizes) unless the items run out.

    Raises:
        ValueError: k < 1, an empty or non-positive round, later rounds without item
            embeddings, or a blend without a query embedding.
    """
    sizes = [int(s) for s in sizes]
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if not sizes or min(sizes) < 1:
        raise ValueError(f"every round must score >= 1 product, got {sizes}")
    if len(sizes) > 1 and item_embeddings is None:
        raise ValueError("rounds after the first need item embeddings")
    if not 0 <= blend <= 1 or (blend > 0 and query_embedding is None):
        raise ValueError(f"blend must be in [0, 1] and needs a query embedding when > 0, got {blend}")
    first_round = np.asarray(first_round, dtype=np.int64)
    n = item_embeddings.shape[0] if item_embeddings is not None else int(n_items or first_round.max() + 1)
    scored = np.zeros(n, dtype=bool)
    rows_done, scores_done = [], []
    _, first = np.unique(first_round, return_index=True)
    initial = first_round[np.sort(first)][:sizes[0]]
    for round_index, size in enumerate(sizes):
        if round_index == 0:
            rows = initial
        else:
            u = least_squares_query(item_embeddings, np.concatenate(rows_done),
                                    (np.concatenate(scores_done) - offset) / scale)
            if blend > 0:
                u = (1 - blend) * u + blend * query_embedding.to(torch.float64).reshape(-1)
            approximate = (item_embeddings @ u.to(item_embeddings.dtype)).numpy()
            rows = _best_unscored(approximate, scored, size)
        if len(rows) == 0:
            break
        scores = np.asarray(score_items(rows), dtype=np.float64)
        scored[rows] = True
        rows_done.append(rows)
        scores_done.append(scores)
    all_rows, all_scores = np.concatenate(rows_done), np.concatenate(scores_done)
    order = np.lexsort((all_rows, -all_scores))[:k]
    return SearchResult(all_rows[order], all_scores[order], all_rows, all_scores)


def anncur_sizes(budget: int, anchor_items: int) -> list[int]:
    """ANNCUR's rounds at budget B: the k_i fixed anchor items, then the B - k_i products of
    highest approximate score (one round when k_i >= B).

    Raises:
        ValueError: anchor_items < 1.
    """
    if anchor_items < 1:
        raise ValueError(f"anchor items must be >= 1, got {anchor_items}")
    return [min(anchor_items, budget)] + ([budget - anchor_items] if budget > anchor_items else [])


def cur_item_embeddings(anchor_rows: np.ndarray) -> torch.Tensor:
    """Item embeddings of CUR: V = R^T, each item embedded by its CE scores with the k_q anchor queries.

    Args:
        anchor_rows: R, (k_q, N) dense CE scores of the anchor queries against every item.

    Returns:
        (N, k_q) float64.
    """
    return torch.as_tensor(np.asarray(anchor_rows, dtype=np.float64)).T.contiguous()
