"""Ranking with a deterministic tie-break, retrieval metrics (ir-measures), TREC run files.

Metrics are computed by ``ir_measures`` (pytrec_eval underneath): recall@k = share of a query's
judged-relevant products in its top k, NDCG@10 with binary gains (judged relevant = 1), both
averaged over the test queries that have at least one relevant product. Unjudged products count
as misses (non-relevant), as graphrel's retrieval protocol says; precision@10 = share of the top 10
that is judged relevant (ir_measures ``P@10``: a query with fewer than 10 results still divides by 10): the figures compare systems,
they are not absolute recall. trec_eval breaks score ties by document id in its own order, so
the ranking handed to it is encoded by rank (score = k - rank + 1): what is evaluated is
exactly the order :func:`top_k` produced, ties broken by product id.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from graphrel.run import atomic_path

#: Cut-offs of the retrieval table: recall@10/100/1000 and NDCG@10.
RECALL_CUTOFFS = (10, 100, 1000)
NDCG_CUTOFF = 10
PRECISION_CUTOFF = 10


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


def run_frame(query_ids, product_ids: np.ndarray, indices: np.ndarray, scores: np.ndarray) -> pd.DataFrame:
    """Long table of a ranking: one row per (query, rank).

    Args:
        query_ids: (Q,) query ids.
        product_ids: (N,) the catalogue's product ids.
        indices: (Q, k) catalogue rows, best first.
        scores: (Q, k) their scores.

    Returns:
        DataFrame ``query_id, rank (1-based), product_id, score`` sorted by query then rank.
    """
    q, k = indices.shape
    return pd.DataFrame({
        "query_id": np.repeat(np.asarray(query_ids, dtype=object), k),
        "rank": np.tile(np.arange(1, k + 1, dtype=np.int64), q),
        "product_id": np.asarray(product_ids, dtype=object)[indices.ravel()],
        "score": scores.ravel().astype(np.float64),
    })


def retrieval_metrics(run: pd.DataFrame, qrels: dict) -> dict:
    """recall@10/100/1000, NDCG@10 and precision@10 of a ranking against judged-relevant products.

    Args:
        run: ``query_id, rank, product_id`` (as :func:`run_frame`); every query of ``qrels``
            should be present (a query absent from the run scores 0 on every metric).
        qrels: query id -> set of relevant product ids (queries without one are left out).

    Returns:
        ``{"recall@10", "recall@100", "recall@1000", "ndcg@10", "precision@10", "queries"}``;
        metrics in [0, 1].
    """
    import ir_measures
    from ir_measures import P, R, nDCG

    qrels = {str(q): {str(p): 1 for p in rel} for q, rel in qrels.items() if rel}
    depth = run["rank"].max()
    run_dict: dict = {q: {} for q in qrels}
    for q, p, rank in zip(run["query_id"].astype(str), run["product_id"].astype(str), run["rank"]):
        if q in run_dict:
            run_dict[q][p] = float(depth - rank + 1)
    for q in run_dict:  # pytrec_eval skips queries without results: give them one miss
        if not run_dict[q]:
            run_dict[q] = {"\x00no-result": 0.0}
    measures = [R @ k for k in RECALL_CUTOFFS] + [nDCG @ NDCG_CUTOFF, P @ PRECISION_CUTOFF]
    values = ir_measures.calc_aggregate(measures, qrels, run_dict)
    out = {f"recall@{k}": float(values[R @ k]) for k in RECALL_CUTOFFS}
    out[f"ndcg@{NDCG_CUTOFF}"] = float(values[nDCG @ NDCG_CUTOFF])
    out[f"precision@{PRECISION_CUTOFF}"] = float(values[P @ PRECISION_CUTOFF])
    out["queries"] = len(qrels)
    return out


def write_trec_run(run: pd.DataFrame, path: str | Path, *, tag: str) -> None:
    """Write a ranking as a TREC run file, atomically: ``qid Q0 product_id rank score tag``.

    Query ids containing whitespace would break the format; they are written with each run of
    whitespace replaced by ``_`` (Home Depot's query ids are the query texts).
    """
    qids = run["query_id"].astype(str).str.replace(r"\s+", "_", regex=True)
    lines = (qids + " Q0 " + run["product_id"].astype(str) + " " + run["rank"].astype(str) + " "
             + run["score"].map(lambda s: f"{s:.6f}") + f" {tag}\n")
    with atomic_path(path) as tmp:
        tmp.write_text("".join(lines), encoding="utf-8")
