"""Rank fusion of retrieval runs with ``ranx.fuse`` (Bassani, ECIR 2022; "ranx.fuse", CIKM 2022).

The serve-two-models reference of Blend and Match (Bonab et al., WWW '23 Companion, doi
10.1145/3543873.3587629): the dual encoder's and the XMC model's rankings merged per query.

- ``rrf``: reciprocal rank fusion (Cormack et al., SIGIR 2009): score(p) = sum over runs of
  1 / (k + rank_run(p)), k = 60 (ranx's default), a product absent from a run adds nothing.
  ranx ranks by score, so each run is handed over with score = -rank: the ranks fused are
  exactly the runs' own (ties already broken by product id).
- ``combsum``: CombSUM (Fox & Shaw, TREC-2 1994) of each run's scores min-max normalised per
  query (ranx ``norm="min-max"``, ``method="sum"``); absent products add 0.

The fused ranking is cut to ``depth``, ties broken by product id, in the run-frame format of
:func:`graphrel.retrieval.evaluation.run_frame` (``query_id, rank, product_id, score``).
:func:`fusion_entries` evaluates and times a fused system like any retriever of the table.
"""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from graphrel.errors import GraphrelInputError

log = logging.getLogger("graphrel")

METHODS = {"rrf": ("rrf", None), "combsum": ("sum", "min-max")}
RRF_K = 60
DEPTH = 1000  # products per query evaluated and fused (the retrieval table's deepest cut-off)


def _ranx_run(run: pd.DataFrame, name: str, *, by_rank: bool):
    from ranx import Run

    scores = (-run["rank"].to_numpy(dtype=np.float64)) if by_rank else run["score"].to_numpy(dtype=np.float64)
    nested: dict = {}
    for q, p, s in zip(run["query_id"].astype(str), run["product_id"].astype(str), scores):
        nested.setdefault(q, {})[p] = float(s)
    return Run(nested, name=name)


def fuse_runs(runs: list[pd.DataFrame], *, method: str = "rrf", depth: int = 1000, rrf_k: int = RRF_K) -> pd.DataFrame:
    """Fuse two or more rankings of the same queries with ``ranx.fuse``.

    Args:
        runs: run frames ``query_id, rank, product_id, score`` (one per model; a query missing
            from a run gets nothing from it).
        method: ``rrf`` or ``combsum`` (see the module docstring).
        depth: products kept per query (>= 1).
        rrf_k: RRF's rank constant (>= 1).

    Returns:
        Run frame ``query_id, rank, product_id, score`` (fused score, higher is better), sorted
        by query id (string order) then rank.

    Raises:
        GraphrelInputError: fewer than two runs, an unknown method, depth or rrf_k < 1.
    """
    from ranx import fuse

    if method not in METHODS:
        raise GraphrelInputError(f"unknown fusion method {method!r}", fix=f"use one of {', '.join(METHODS)}")
    if len(runs) < 2:
        raise GraphrelInputError(f"fusion needs at least two runs, got {len(runs)}", fix="pass two or more models")
    if depth < 1 or rrf_k < 1:
        raise GraphrelInputError(f"depth and rrf_k must be >= 1, got {depth}, {rrf_k}", fix="pass whole numbers >= 1")
    ranx_method, norm = METHODS[method]
    with warnings.catch_warnings():  # numba's type-safety warnings inside ranx's normalisation
        warnings.simplefilter("ignore")
        fused = fuse([_ranx_run(r, f"run{i}", by_rank=method == "rrf") for i, r in enumerate(runs)],
                     norm=norm, method=ranx_method, params={"k": rrf_k} if method == "rrf" else None)
    rows = [(q, p, s) for q, docs in fused.to_dict().items() for p, s in docs.items()]
    frame = pd.DataFrame(rows, columns=["query_id", "product_id", "score"])
    frame = frame.sort_values(["query_id", "score", "product_id"], ascending=[True, False, True], kind="stable")
    frame = frame.groupby("query_id", sort=False).head(depth).reset_index(drop=True)
    frame.insert(1, "rank", frame.groupby("query_id", sort=False).cumcount().astype(np.int64) + 1)
    return frame[["query_id", "rank", "product_id", "score"]]


def fuse_retrievers(retrievers: list, queries, *, query_ids=None, k: int, method: str = "rrf",
                    batch_size: int = 256, rrf_k: int = RRF_K) -> pd.DataFrame:
    """Each retriever's top ``k`` of every query, fused (the serve-several-models system).

    Args:
        retrievers: two or more :class:`~graphrel.retrieval.retriever.Retriever` over the same catalogue.
        queries: Q query texts; query_ids: (Q,) ids (default 0..Q-1).
        k: products per model and in the fused output (>= 1).
        method: ``rrf`` or ``combsum``.

    Returns:
        Run frame as :func:`fuse_runs`, queries in input order.

    Raises:
        GraphrelInputError: retrievers over different catalogues, or as :func:`fuse_runs`.
    """
    if len(retrievers) < 2:
        raise GraphrelInputError(f"fusion needs at least two models, got {len(retrievers)}",
                                 fix="pass --model twice (e.g. the dual encoder and the XMC model)")
    first = retrievers[0].catalogue.product_ids
    for retriever in retrievers[1:]:
        if len(retriever.catalogue.product_ids) != len(first) or (retriever.catalogue.product_ids != first).any():
            raise GraphrelInputError(f"models {retrievers[0].name!r} and {retriever.name!r} have different catalogues",
                                     fix="fuse retrievers built by the same retrieval stage")
    ids = np.arange(len(queries)) if query_ids is None else np.asarray(query_ids, dtype=object)
    runs = [r.search(queries, k, query_ids=ids, batch_size=batch_size) for r in retrievers]
    fused = fuse_runs(runs, method=method, depth=k, rrf_k=rrf_k)
    order = {str(q): i for i, q in enumerate(ids)}
    fused["_order"] = fused["query_id"].map(order)
    fused = fused.sort_values(["_order", "rank"], kind="stable").drop(columns="_order")
    original = {str(q): q for q in ids}
    fused["query_id"] = fused["query_id"].map(original)
    return fused.reset_index(drop=True)


def fusion_entries(directories: list, judged, runs_dir: Path, *, rrf_k: int = 60, warmup=(), repeats: int = 3,
                   timing_k: int = 100, threads: int = 1) -> dict:
    """``fusion_rrf`` and ``fusion_combsum`` of retrievers' top 1000 on the judged test queries.

    Speed = the whole serve-both system: every model's search of the top ``timing_k`` plus the
    fusion, median of ``repeats`` runs over the test queries after a warm-up; parameters and
    index sizes are the models' sums.
    """
    from graphrel.retrieval.evaluation import retrieval_metrics, run_frame, write_trec_run
    from graphrel.retrieval.retriever import Retriever

    retrievers = [Retriever.load(d, threads=threads) for d in directories]
    queries, ids = list(judged.queries), judged.query_ids
    runs = []
    for retriever in retrievers:
        rows, scores = retriever.search_rows(queries, min(DEPTH, len(retriever.catalogue)))
        runs.append(run_frame(ids, retriever.catalogue.product_ids, rows, scores))
    sizes = [_index_bytes(r, Path(d)) for r, d in zip(retrievers, directories)]
    entries = {}
    for method in ("rrf", "combsum"):
        name = f"fusion_{method}"
        fused = fuse_runs(runs, method=method, depth=DEPTH, rrf_k=rrf_k)
        write_trec_run(fused, Path(runs_dir) / f"{name}.trec", tag=name)
        metrics = retrieval_metrics(fused, judged.qrels)
        entries[name] = {**{k: v for k, v in metrics.items() if k != "queries"},
                         "parameters": int(sum(r.manifest.get("parameters", 0) for r in retrievers)),
                         "teacher": None, "models": [r.name for r in retrievers], "index_build_seconds": 0.0,
                         "index_bytes": int(sum(sizes)),
                         **_time_fused(retrievers, queries, method, rrf_k, warmup, repeats, timing_k)}
        log.info("retrieval: %s recall@100 %.3f ndcg@10 %.3f", name, metrics["recall@100"], metrics["ndcg@10"])
    return entries


def _index_bytes(retriever, directory: Path) -> int:
    if retriever.xmc is not None:
        return retriever.xmc.size_bytes()
    path = directory / "product_embeddings.npy"
    return int(np.load(path, mmap_mode="r").nbytes) if path.is_file() else 0


def _time_fused(retrievers, queries, method, rrf_k, warmup, repeats, timing_k) -> dict:
    warm = list(warmup) or queries[:64]
    fuse_retrievers(retrievers, warm, k=timing_k, method=method, rrf_k=rrf_k)
    encode_times, search_times = [], []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        for retriever in retrievers:
            if retriever.xmc is not None:
                retriever.xmc.features.transform(queries)
            elif retriever.bm25 is not None:
                retriever.bm25.query_token_ids(queries)
            else:
                retriever.encode_queries(queries)
        encode_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        fuse_retrievers(retrievers, queries, k=timing_k, method=method, rrf_k=rrf_k)
        search_times.append(time.perf_counter() - start)
    return {"query_encodings_per_second": len(queries) / float(np.median(encode_times)),
            "queries_per_second": len(queries) / float(np.median(search_times))}
