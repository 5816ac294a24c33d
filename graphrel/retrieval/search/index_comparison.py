"""What HNSW costs against exact search: recall of the exact top k, build time, size, speed.

:func:`compare_indexes` builds both indexes over the same product embeddings and searches the
same query embeddings with each (query encoding is not timed: it is the same for both).

- **overlap@k** (:func:`overlap_at_k`): mean over queries of
  ``|HNSW top k ∩ exact top k| / k``, the recall of the exact top k (1.0 = no loss; the
  recall loss is 1 - overlap@k). The HNSW top k comes from a search of depth k, as a user
  asking for k products would get it: :meth:`HNSWIndex.search` keeps at least k + 16
  candidates, so an ``ef_search`` below that gives the same overlap@k as ``k + 16``.
- **build seconds**: time to build each index from the (N, d) array.
- **index bytes**: ``len(faiss.serialize_index(index))`` (vectors + HNSW links).
- **queries per second**: ``Q / median(seconds of repeats full searches)`` of depth
  ``timing_k`` through ``search`` of each index (tie re-ordering included), after one
  untimed warm-up search of every query; the same protocol for both. The timed searches are
  interleaved (each repeat times exact, then HNSW at every ``ef_search``), so a load that
  other processes put on a shared machine falls on all of them alike.
"""

from __future__ import annotations

import time
from typing import Sequence

import numpy as np

from graphrel.retrieval.search.hnsw import HNSWIndex, check_hnsw_options
from graphrel.retrieval.search.index import ExactIndex


def overlap_at_k(found: np.ndarray, exact: np.ndarray, k: int) -> float:
    """Mean over queries of ``|found[:, :k] ∩ exact[:, :k]| / k``.

    Args:
        found: (Q, >= k) int catalogue rows of the approximate search, best first.
        exact: (Q, >= k) int catalogue rows of the exact search, best first.
        k: >= 1 and <= both widths.

    Returns:
        overlap@k in [0, 1].

    Raises:
        ValueError: k out of range or the row counts differ.
    """
    if len(found) != len(exact) or k < 1 or k > min(found.shape[1], exact.shape[1]):
        raise ValueError(f"need (Q, >= k) rows for both, got {found.shape}, {exact.shape}, k={k}")
    hits = [len(np.intersect1d(a[:k], b[:k])) for a, b in zip(found, exact)]
    return float(np.mean(hits)) / k


def _search_seconds(index, queries: np.ndarray, k: int) -> float:
    start = time.perf_counter()
    index.search(queries, k)
    return time.perf_counter() - start


def _index_bytes(faiss_index) -> int:
    import faiss

    return int(len(faiss.serialize_index(faiss_index)))


def compare_indexes(product_embeddings: np.ndarray, query_embeddings: np.ndarray, *,
                    cutoffs: Sequence[int] = (10, 100), timing_k: int = 100, m: int = 32,
                    ef_construction: int = 100, ef_search: int | Sequence[int] = (16, 64, 128, 256),
                    repeats: int = 3, threads: int | None = None) -> dict:
    """Exact inner-product search against HNSW (one graph, several ``ef_search``) on the same data.

    Args:
        product_embeddings: (N, d) float32 unit rows (a retriever's ``product_embeddings.npy``).
        query_embeddings: (Q, d) float32 unit rows (its query encoder's test queries).
        cutoffs: the k of overlap@k, each >= 1 (clamped to N).
        timing_k: search depth timed, >= 1 (clamped to N).
        m, ef_construction: HNSW graph options (see :class:`~graphrel.retrieval.search.hnsw.HNSWIndex`).
        ef_search: one value or several (duplicates dropped), each >= 1; the graph is built once.
        repeats: timed searches per index (median), >= 1.
        threads: faiss threads (None: faiss's default). Use the same as in production.

    Returns:
        ``{"products", "queries", "dim", "threads", "repeats", "timing_k", "cutoffs",
        "exact": {"build_seconds", "index_bytes", "queries_per_second"},
        "hnsw": {"m", "ef_construction", "build_seconds", "index_bytes", "searches": [
        {"ef_search", "overlap@K" for each cutoff K, "queries_per_second",
        "speedup" (HNSW / exact queries per second), "exact_fallbacks"}, ...]}}``.

    Raises:
        ValueError: an option out of range, empty inputs or a dimension mismatch.
    """
    products = np.ascontiguousarray(product_embeddings, dtype=np.float32)
    queries = np.ascontiguousarray(query_embeddings, dtype=np.float32)
    efs = list(dict.fromkeys([ef_search] if np.isscalar(ef_search) else ef_search))
    for ef in efs:
        check_hnsw_options(m, ef_construction, ef)
    if not efs or not list(cutoffs) or repeats < 1 or timing_k < 1 or min(cutoffs) < 1:
        raise ValueError(f"need cutoffs >= 1, ef_search values, repeats >= 1 and timing_k >= 1, got "
                         f"cutoffs={cutoffs}, ef_search={ef_search}, repeats={repeats}, timing_k={timing_k}")
    if queries.ndim != 2 or len(queries) == 0:
        raise ValueError(f"query embeddings must be (queries >= 1, dim), got shape {queries.shape}")
    start = time.perf_counter()
    exact = ExactIndex(products, threads=threads)
    exact_build = time.perf_counter() - start
    n, timing_k = len(exact), min(int(timing_k), len(exact))
    cuts = sorted({min(int(c), n) for c in cutoffs})
    exact_rows = exact.search(queries, cuts[-1])[0]
    start = time.perf_counter()
    hnsw = HNSWIndex(products, m=m, ef_construction=ef_construction, ef_search=efs[0], threads=threads)
    hnsw_build = time.perf_counter() - start
    searches = []
    for ef in efs:
        hnsw.ef_search = ef
        hnsw.exact_fallbacks = 0
        entry = {"ef_search": int(ef)}
        for cut in cuts:
            entry[f"overlap@{cut}"] = overlap_at_k(hnsw.search(queries, cut)[0], exact_rows, cut)
        entry["exact_fallbacks"] = hnsw.exact_fallbacks
        searches.append(entry)
    seconds = {"exact": [], **{entry["ef_search"]: [] for entry in searches}}
    for repeat in range(repeats + 1):  # the first pass is the warm-up
        for key in seconds:
            if key != "exact":
                hnsw.ef_search = key
            took = _search_seconds(exact if key == "exact" else hnsw, queries, timing_k)
            if repeat:
                seconds[key].append(took)
    speed = {key: len(queries) / float(np.median(values)) for key, values in seconds.items()}
    for entry in searches:
        entry["queries_per_second"] = speed[entry["ef_search"]]
        entry["speedup"] = speed[entry["ef_search"]] / speed["exact"]
    return {"products": n, "queries": len(queries), "dim": exact.dim, "threads": threads, "repeats": repeats,
            "timing_k": timing_k, "cutoffs": cuts,
            "exact": {"build_seconds": exact_build, "index_bytes": _index_bytes(exact.index),
                      "queries_per_second": speed["exact"]},
            "hnsw": {"m": hnsw.m, "ef_construction": hnsw.ef_construction, "build_seconds": hnsw_build,
                     "index_bytes": _index_bytes(hnsw.index), "searches": searches}}


def index_comparison_markdown(result: dict, *, title: str = "Exact search against HNSW") -> str:
    """A markdown table of :func:`compare_indexes`' result: one row for exact, one per ``ef_search``."""
    cuts = result["cutoffs"]
    exact, hnsw = result["exact"], result["hnsw"]
    head = (["index", "ef_search"] + [f"overlap@{c}" for c in cuts]
            + [f"queries/s (top {result['timing_k']})", "x exact", "build s", "index MB"])
    lines = [f"### {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines.append("| exact (IndexFlatIP) | | " + " | ".join("1.000" for _ in cuts)
                 + f" | {exact['queries_per_second']:,.0f} | 1.0 | {exact['build_seconds']:.2f} | "
                 f"{exact['index_bytes'] / 2**20:.1f} |")
    for s in hnsw["searches"]:
        lines.append(f"| HNSW M={hnsw['m']}, efC={hnsw['ef_construction']} | {s['ef_search']} | "
                     + " | ".join(f"{s[f'overlap@{c}']:.3f}" for c in cuts)
                     + f" | {s['queries_per_second']:,.0f} | {s['speedup']:.1f} | {hnsw['build_seconds']:.2f} | "
                     f"{hnsw['index_bytes'] / 2**20:.1f} |")
    lines += ["", f"{result['products']:,} products x {result['dim']} dims, {result['queries']:,} queries, "
              f"{result['threads'] or 'default'} faiss threads. overlap@k = mean share of the exact top k that "
              f"HNSW returns (searched at depth k, with at least k + 16 candidates whatever ef_search); "
              f"queries/s = search only (no query encoding), median of {result['repeats']} interleaved runs "
              f"after a warm-up; HNSW build s = graph build (once for every ef_search).", ""]
    return "\n".join(lines)
