"""Relevance metrics: RMSE, AUC, Spearman, NDCG@k, recall@k.

All functions take plain arrays (numpy or anything ``np.asarray`` accepts). Library
implementations are used where they exist (scikit-learn, SciPy); this module only adds
the per-query grouping the field needs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.metrics import ndcg_score, roc_auc_score

#: Binary relevance threshold on the 1-3 Home Depot scale (this package's choice): label >= 2.5.
RELEVANT_NORMALISED = 0.75  # (2.5 - 1) / 2


def rmse(scores, labels, *, label_range: float = 1.0) -> float:
    """Root-mean-square error, reported on the label's original scale.

    Args:
        scores: (N,) float in [0, 1], predictions on the normalised scale.
        labels: (N,) float in [0, 1], normalised human labels.
        label_range: ``label_max - label_min`` of the original scale (2.0 for 1-3),
            so the result is in the original units.
    """
    scores, labels = np.asarray(scores, float), np.asarray(labels, float)
    return float(np.sqrt(np.mean((scores - labels) ** 2)) * label_range)


def auc(scores, labels, *, threshold: float = RELEVANT_NORMALISED) -> float:
    """ROC AUC of ``scores`` against binary relevance ``labels >= threshold``.

    Args:
        scores: (N,) float, any monotone score.
        labels: (N,) float in [0, 1], normalised human labels.
        threshold: normalised label at or above which a pair counts as relevant.

    Returns:
        AUC in [0, 1]; NaN when only one class is present.
    """
    binary = np.asarray(labels, float) >= threshold - 1e-9
    if binary.all() or not binary.any():
        return float("nan")
    return float(roc_auc_score(binary, np.asarray(scores, float)))


def spearman(scores, labels) -> float:
    """Spearman rank correlation in [-1, 1] between scores and labels (ties averaged)."""
    return float(spearmanr(np.asarray(scores, float), np.asarray(labels, float)).statistic)


def ndcg_at_k(scores, labels, query_ids, *, k: int = 10) -> float:
    """Mean NDCG@k over queries, gains = normalised labels in [0, 1].

    Queries with a single pair or with all-zero gains are skipped (their NDCG is
    undefined or trivially 1).

    Args:
        scores: (N,) float, ranking scores.
        labels: (N,) float in [0, 1], gains.
        query_ids: (N,) hashable, the query of each pair.
        k: cut-off rank.
    """
    frame = pd.DataFrame({"q": np.asarray(query_ids), "s": np.asarray(scores, float),
                          "y": np.asarray(labels, float)})
    values = []
    for _, group in frame.groupby("q", sort=False):
        if len(group) < 2 or group.y.max() <= 0:
            continue
        values.append(ndcg_score(group.y.to_numpy()[None], group.s.to_numpy()[None], k=k))
    return float(np.mean(values)) if values else float("nan")


def per_query_ndcg(scores, labels, query_ids, *, min_pairs: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """NDCG of each query's whole ranking of its judged pairs (no cut-off), gains = labels.

    A pair table's queries have few judged pairs (Home Depot's test queries: 3.4 evaluated
    pairs on average), where NDCG@10 is near 1 for any order; so only queries with at least
    ``min_pairs`` pairs and a non-zero gain count, and :func:`random_order_ndcg` gives the
    figure a random order reaches on the same queries.

    Args:
        scores: (N,) float ranking scores; labels: (N,) float in [0, 1] gains.
        query_ids: (N,) the query of each pair.
        min_pairs: fewest pairs a query needs to count, >= 2.

    Returns:
        ``(ids, ndcg)``: (Q,) the sorted distinct query ids (as str) and (Q,) float NDCG in
        [0, 1], NaN for queries that do not count.
    """
    frame = pd.DataFrame({"q": np.asarray(query_ids).astype(str), "s": np.asarray(scores, float),
                          "y": np.asarray(labels, float)})
    ids = np.unique(frame.q.to_numpy())
    out = np.full(len(ids), np.nan)
    position = {q: i for i, q in enumerate(ids)}
    for query, group in frame.groupby("q", sort=False):
        if len(group) < min_pairs or group.y.max() <= 0:
            continue
        out[position[query]] = ndcg_score(group.y.to_numpy()[None], group.s.to_numpy()[None])
    return ids, out


def random_order_ndcg(labels, query_ids, *, min_pairs: int = 5, shuffles: int = 100, seed: int = 0) -> float:
    """Mean :func:`per_query_ndcg` of random orders: the floor a ranking figure of these
    pairs must be read against (the mean over ``shuffles`` seeded random score draws)."""
    labels = np.asarray(labels, float)
    rng = np.random.default_rng(seed)
    values = [np.nanmean(per_query_ndcg(rng.random(len(labels)), labels, query_ids, min_pairs=min_pairs)[1])
              for _ in range(shuffles)]
    return float(np.mean(values))


def recall_at_k(retrieved, relevant, *, k: int) -> float:
    """Mean recall@k: share of each query's relevant items found in its top ``k``.

    Args:
        retrieved: per query, item ids ranked best first.
        relevant: per query, the set of relevant item ids.
        k: cut-off.
    """
    values = [len(set(list(r)[:k]) & set(g)) / len(g) for r, g in zip(retrieved, relevant) if len(g)]
    return float(np.mean(values)) if values else float("nan")


def relevance_metrics(scores, labels, query_ids, *, label_range: float = 1.0, k: int = 10,
                      threshold: float = RELEVANT_NORMALISED) -> dict:
    """The standard report: ``rmse`` (original scale), ``auc``, ``spearman``, ``ndcg@k``.

    Args:
        scores: (N,) float in [0, 1].
        labels: (N,) float in [0, 1], normalised human labels (no NaN).
        query_ids: (N,) the query of each pair.
        label_range: width of the original label scale (2.0 for Home Depot's 1-3).
        k: NDCG cut-off.
        threshold: normalised label at or above which a pair counts as relevant (AUC).
    """
    return {
        "rmse": rmse(scores, labels, label_range=label_range),
        "auc": auc(scores, labels, threshold=threshold),
        "spearman": spearman(scores, labels),
        f"ndcg@{k}": ndcg_at_k(scores, labels, query_ids, k=k),
    }
