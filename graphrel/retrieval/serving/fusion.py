"""Rank fusion of retrieval runs with ``ranx.fuse`` (Bassani, "ranx: A Blazing-Fast Python
Library for Ranking Evaluation and Comparison", ECIR 2022; "ranx.fuse", CIKM 2022).

The serve-two-models reference of Blend and Match (Bonab et al., WWW '23 Companion, doi
10.1145/3543873.3587629): the dual encoder's and the XMC model's rankings merged per query; and
the hybrid lexical + dense retriever (:mod:`graphrel.retrieval.serving.hybrid`).

- ``rrf``: reciprocal rank fusion (Cormack, Clarke & Buettcher, SIGIR 2009): score(p) = sum over
  runs of 1 / (k + rank_run(p)), k = 60 (ranx's default), a product absent from a run adds nothing.
  ranx ranks by score, so each run is handed over with score = -rank: the ranks fused are
  exactly the runs' own (ties already broken by product id).
- ``combsum``: CombSUM (Fox & Shaw, TREC-2 1994) of each run's scores min-max normalised per
  query (ranx ``norm="min-max"``, ``method="sum"``); absent products add 0.
- ``wsum``: weighted sum of each run's scores normalised per query by ``norm`` (ranx's
  ``min-max``, ``zmuv``: z-score, or ``sum``: shifted to 0 and divided by the shifted sum), one
  weight per run; absent products add 0 (after normalisation): the convex combination of
  Bruch, Gai & Ingber, "An Analysis of Fusion Functions for Hybrid Retrieval", ACM TOIS 2023.

The fused ranking is cut to ``depth``, ties broken by product id, in the run-frame format of
:func:`graphrel.retrieval.measures.evaluation.run_frame` (``query_id, rank, product_id, score``).
:func:`graphrel.retrieval.blend_stage.fusion_entries` evaluates and times a fused system like any
retriever of the table.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd

from graphrel.errors import GraphrelInputError

log = logging.getLogger("graphrel")

METHODS = {"rrf": ("rrf", None), "combsum": ("sum", "min-max")}
#: Score normalisations of ``wsum`` (ranx's names).
WSUM_NORMS = ("min-max", "zmuv", "sum")
RRF_K = 60
DEPTH = 1000  # products per query evaluated and fused (the retrieval table's deepest cut-off)


def _ranx_run(run: pd.DataFrame, name: str, *, by_rank: bool):
    from ranx import Run

    scores = (-run["rank"].to_numpy(dtype=np.float64)) if by_rank else run["score"].to_numpy(dtype=np.float64)
    nested: dict = {}
    for q, p, s in zip(run["query_id"].astype(str), run["product_id"].astype(str), scores):
        nested.setdefault(q, {})[p] = float(s)
    return Run(nested, name=name)


class RanxRuns:
    """Run frames converted to ``ranx.Run`` once (by score, and by rank for RRF), so many
    fusions of the same runs (a grid of settings) pay the conversion once.

    Args:
        runs: run frames ``query_id, rank, product_id, score`` (one per model).
    """

    def __init__(self, runs: list[pd.DataFrame]) -> None:
        self.frames = list(runs)
        self._converted: dict = {}

    def __len__(self) -> int:
        return len(self.frames)

    def get(self, *, by_rank: bool) -> list:
        """The ``ranx.Run`` of every frame (score = -rank with ``by_rank``)."""
        if by_rank not in self._converted:
            self._converted[by_rank] = [_ranx_run(r, f"run{i}", by_rank=by_rank) for i, r in enumerate(self.frames)]
        return self._converted[by_rank]


def _top_frame(fused, depth: int) -> pd.DataFrame:
    """The top ``depth`` of every query of a fused ``ranx.Run`` as a run frame. ranx leaves each
    query's products in descending score; those tied with the ``depth``-th are kept too, so the
    cut below breaks ties by product id, never by ranx's order."""
    queries, products, scores = [], [], []
    for q in fused.keys():
        kth = None
        for i, (p, s) in enumerate(fused.run[q].items()):
            if i >= depth and s < kth:
                break
            if i == depth - 1:
                kth = s
            queries.append(q)
            products.append(p)
            scores.append(s)
    frame = pd.DataFrame({"query_id": queries, "product_id": products, "score": np.asarray(scores, dtype=np.float64)})
    frame = frame.sort_values(["query_id", "score", "product_id"], ascending=[True, False, True], kind="stable")
    frame = frame.groupby("query_id", sort=False).head(depth).reset_index(drop=True)
    frame.insert(1, "rank", frame.groupby("query_id", sort=False).cumcount().astype(np.int64) + 1)
    return frame[["query_id", "rank", "product_id", "score"]]


def fuse_runs(runs: list[pd.DataFrame] | RanxRuns, *, method: str = "rrf", depth: int = 1000, rrf_k: int = RRF_K,
              norm: str | None = None, weights=None) -> pd.DataFrame:
    """Fuse two or more rankings of the same queries with ``ranx.fuse``.

    Args:
        runs: run frames ``query_id, rank, product_id, score`` (one per model, every one with
            the same queries), or them as :class:`RanxRuns` (converted once for many fusions).
        method: ``rrf``, ``combsum`` or ``wsum`` (see the module docstring).
        depth: products kept per query (>= 1).
        rrf_k: RRF's rank constant (>= 1).
        norm: ``wsum`` only: one of :data:`WSUM_NORMS`.
        weights: ``wsum`` only: one finite weight >= 0 per run.

    Returns:
        Run frame ``query_id, rank, product_id, score`` (fused score, higher is better), sorted
        by query id (string order) then rank.

    Raises:
        GraphrelInputError: fewer than two runs, an unknown method, depth or rrf_k < 1, a
            ``wsum`` without a known norm or one weight >= 0 per run, or norm / weights given to
            another method.
    """
    from ranx import fuse

    if method not in (*METHODS, "wsum"):
        raise GraphrelInputError(f"unknown fusion method {method!r}", fix=f"use one of {', '.join(METHODS)}, wsum")
    if len(runs) < 2:
        raise GraphrelInputError(f"fusion needs at least two runs, got {len(runs)}", fix="pass two or more models")
    if depth < 1 or rrf_k < 1:
        raise GraphrelInputError(f"depth and rrf_k must be >= 1, got {depth}, {rrf_k}", fix="pass whole numbers >= 1")
    if method == "wsum":
        if norm not in WSUM_NORMS:
            raise GraphrelInputError(f"unknown wsum normalisation {norm!r}", fix=f"use one of {', '.join(WSUM_NORMS)}")
        if weights is None or len(weights) != len(runs) or not all(np.isfinite(w) and w >= 0 for w in weights):
            raise GraphrelInputError(f"wsum needs one finite weight >= 0 per run, got {weights!r}",
                                     fix=f"pass {len(runs)} weights")
        ranx_method, params = "wsum", {"weights": [float(w) for w in weights]}
    elif norm is not None or weights is not None:
        raise GraphrelInputError(f"norm and weights are options of wsum, not {method}", fix="drop them")
    else:
        (ranx_method, norm), params = METHODS[method], ({"k": rrf_k} if method == "rrf" else None)
    converted = (runs if isinstance(runs, RanxRuns) else RanxRuns(runs)).get(by_rank=method == "rrf")
    with warnings.catch_warnings():  # numba's type-safety warnings inside ranx's normalisation
        warnings.simplefilter("ignore")
        fused = fuse(converted, norm=norm, method=ranx_method, params=params)
    return _top_frame(fused, depth)


def fuse_retrievers(retrievers: list, queries, *, query_ids=None, k: int, method: str = "rrf",
                    batch_size: int = 256, rrf_k: int = RRF_K) -> pd.DataFrame:
    """Each retriever's top ``k`` of every query, fused (the serve-several-models system).

    Args:
        retrievers: two or more :class:`~graphrel.retrieval.serving.retriever.Retriever` over the same catalogue.
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
