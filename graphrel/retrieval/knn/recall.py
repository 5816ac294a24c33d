"""Top-k-Recall of a CE k-NN search against the exact CE top-k (Yadav et al., ICLR 2024).

Top-k-Recall@B = |answer's top k  ∩  exact CE top-k| / k, the answer being the top k of the B
products the search scored (every scored product has its exact score, so this equals the share
of the exact top-k that the search scored at all). An item tied with the exact k-th score counts
as a hit (duplicate product titles get identical CE scores; which of them is "the" k-th is
arbitrary).
"""

from __future__ import annotations

import numpy as np


def top_k_recall(answer_rows, exact_scores: np.ndarray, k: int) -> float:
    """Share of the exact top-k in the answer's first k rows.

    Args:
        answer_rows: item rows, best first (only the first k count).
        exact_scores: (N,) exact CE scores of every item for this query.
        k: 1 <= k <= N.

    Returns:
        A value in [0, 1].

    Raises:
        ValueError: k out of range.
    """
    exact = np.asarray(exact_scores, dtype=np.float64).ravel()
    if not 1 <= k <= len(exact):
        raise ValueError(f"k must be in [1, {len(exact)}], got {k}")
    kth = np.partition(exact, len(exact) - k)[len(exact) - k]
    answer = np.asarray(answer_rows, dtype=np.int64)[:k]
    return min(k, int((exact[answer] >= kth).sum())) / k


def mean_top_k_recall(answers: list, exact_scores: np.ndarray, k: int) -> float:
    """Mean :func:`top_k_recall` over queries: ``answers[q]`` against ``exact_scores[q]`` ((Q, N))."""
    if not answers:
        raise ValueError("no query to average over")
    return float(np.mean([top_k_recall(rows, exact_scores[q], k) for q, rows in enumerate(answers)]))
