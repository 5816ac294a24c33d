"""Retrieval metrics (ir-measures), run frames, TREC run files.

Metrics are computed by ``ir_measures`` (pytrec_eval underneath): recall@k = share of a query's
judged-relevant products in its top k, NDCG@10 with binary gains (judged relevant = 1), both
averaged over the test queries that have at least one relevant product. Unjudged products count
as misses (non-relevant), as graphrel's retrieval protocol says; precision@10 = share of the top 10
that is judged relevant (ir_measures ``P@10``: a query with fewer than 10 results still divides by 10): the figures compare systems,
they are not absolute recall. trec_eval breaks score ties by document id in its own order, so
the ranking handed to it is encoded by rank (score = k - rank + 1): what is evaluated is
exactly the order :func:`~graphrel.retrieval.search.topk.top_k` produced, ties broken by product id. :func:`per_query_metrics`
gives the same figures per query (for bootstrap intervals); the judged-only figures
(:mod:`graphrel.retrieval.measures.judged_only`) are these metrics on a run filtered to judged products.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from graphrel.run import atomic_path

#: Cut-offs of the retrieval table: recall@10/100/1000 and NDCG@10.
RECALL_CUTOFFS = (10, 100, 1000)
NDCG_CUTOFF = 10
PRECISION_CUTOFF = 10


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


def _measures() -> dict:
    """Metric key of the retrieval table -> its ir_measures measure."""
    from ir_measures import P, R, nDCG

    measures = {f"recall@{k}": R @ k for k in RECALL_CUTOFFS}
    measures[f"ndcg@{NDCG_CUTOFF}"] = nDCG @ NDCG_CUTOFF
    measures[f"precision@{PRECISION_CUTOFF}"] = P @ PRECISION_CUTOFF
    return measures


def _ir_inputs(run: pd.DataFrame, qrels: dict) -> tuple[dict, dict]:
    """ir_measures qrels and run dicts: binary gains (relevant = 1), every qrels query in the run
    (one placeholder miss for a query without results), scores encoding the run's ranks."""
    qrels = {str(q): {str(p): 1 for p in rel} for q, rel in qrels.items() if rel}
    depth = run["rank"].max()
    run_dict: dict = {q: {} for q in qrels}
    for q, p, rank in zip(run["query_id"].astype(str), run["product_id"].astype(str), run["rank"]):
        if q in run_dict:
            run_dict[q][p] = float(depth - rank + 1)
    for q in run_dict:  # pytrec_eval skips queries without results: give them one miss
        if not run_dict[q]:
            run_dict[q] = {"\x00no-result": 0.0}
    return qrels, run_dict


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

    measures = _measures()
    qrels, run_dict = _ir_inputs(run, qrels)
    values = ir_measures.calc_aggregate(list(measures.values()), qrels, run_dict)
    out = {key: float(values[measure]) for key, measure in measures.items()}
    out["queries"] = len(qrels)
    return out


def per_query_metrics(run: pd.DataFrame, qrels: dict) -> pd.DataFrame:
    """The figures of :func:`retrieval_metrics`, one row per query (their means are its figures).

    Args:
        run, qrels: as :func:`retrieval_metrics`.

    Returns:
        (Q, 5) frame indexed by the qrels' query ids with a relevant product (as strings, sorted),
        columns ``recall@10, recall@100, recall@1000, ndcg@10, precision@10``, values in [0, 1].
    """
    import ir_measures

    measures = _measures()
    qrels, run_dict = _ir_inputs(run, qrels)
    keys = {measure: key for key, measure in measures.items()}
    values: dict = {key: {} for key in measures}
    for metric in ir_measures.iter_calc(list(measures.values()), qrels, run_dict):
        values[keys[metric.measure]][metric.query_id] = float(metric.value)
    frame = pd.DataFrame(values, index=pd.Index(sorted(qrels), name="query_id"), columns=list(measures))
    return frame.fillna(0.0)


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


def read_trec_run(path: str | Path, query_ids) -> pd.DataFrame:
    """A run file of :func:`write_trec_run` read back, its query ids mapped to ``query_ids``.

    Args:
        path: the ``.trec`` file.
        query_ids: the run's original query ids (whitespace in them was written as ``_``); rows
            of any other query are dropped.

    Returns:
        ``query_id, rank, product_id, score`` (product ids as strings) in the file's order.

    Raises:
        FileNotFoundError: no such file.
        ValueError: two query ids written alike (they differ only in whitespace and ``_``).
    """
    original: dict = {}
    for q in query_ids:
        written = re.sub(r"\s+", "_", str(q))
        if original.setdefault(written, q) != q:
            raise ValueError(f"query ids {original[written]!r} and {q!r} are both written {written!r}")
    frame = pd.read_csv(path, sep=" ", header=None, names=["query_id", "q0", "product_id", "rank", "score", "tag"],
                        dtype={"query_id": str, "product_id": str}, keep_default_na=False)
    frame = frame[frame["query_id"].isin(original.keys())]
    frame = frame.assign(query_id=frame["query_id"].map(original))
    return frame[["query_id", "rank", "product_id", "score"]].reset_index(drop=True)
