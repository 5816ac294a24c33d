"""Honest evaluation of students: pairs the teacher has not scored.

A student exists for pairs the teacher has *not* scored, so no evaluated pair may be an edge
of a graph a student is trained or scored with (its edge would hold the teacher's score).
Every model is reported under two protocols, on the same evaluated pairs:

- ``new_query``: the query is new to the log. Every edge of val and test queries (labelled
  and transfer set) is absent from the graph the student reads (``graph_new_query.pt``);
  product-side neighbourhoods from training queries remain.
- ``new_pairs``: new candidates of a logged query. Each test query keeps a seeded share of
  its labelled pairs (split ``test_context``) and its transfer candidates in the graph as
  teacher-scored context (``graph.pt``); the other pairs (split ``test``) are absent from
  every graph and are the ones evaluated.

BERM (Liu et al., EMNLP 2022 Industry, arXiv 2210.01701) and BERT2DNN (Jiang et al., ICDM
2020, arXiv 2010.10442) report students on pairs outside their training graph; the two
protocols here are this project's reconstruction of that setting on a public log.

Speeds: every model gets the same warm-up (pairs other than the timed ones) and the median
of the same number of timed runs, each starting from empty text caches.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np
import pandas as pd

#: Protocol name -> the run's graph file a student reads neighbours from under it.
PROTOCOL_GRAPHS = {"new_query": "graph_new_query.pt", "new_pairs": "graph.pt"}
PROTOCOLS = tuple(PROTOCOL_GRAPHS)


def hold_out_test_pairs(labelled: pd.DataFrame, *, context_fraction: float, seed: int) -> pd.DataFrame:
    """Split each test query's labelled pairs into graph context and evaluated pairs.

    Per test query, ``floor(context_fraction * n)`` of its n labelled pairs, drawn with
    ``seed``, get split ``test_context`` (teacher-scored graph context under ``new_pairs``);
    the rest keep split ``test`` and are evaluated (a query with one pair keeps it evaluated).

    Args:
        labelled: pairs with ``query_id`` and ``split`` (train / val / test).
        context_fraction: share in [0, 1) of each test query's pairs kept as context.
        seed: draws the context pairs.

    Returns:
        A copy of ``labelled`` with the context pairs' ``split`` set to ``test_context``.

    Raises:
        ValueError: ``context_fraction`` outside [0, 1).
    """
    if not 0 <= context_fraction < 1:
        raise ValueError(f"context_fraction must be in [0, 1), got {context_fraction}")
    out = labelled.copy()
    is_test = (out["split"] == "test").to_numpy()
    rank = np.random.default_rng(seed).random(len(out))
    frame = pd.DataFrame({"query_id": out["query_id"].to_numpy(), "rank": rank})[is_test]
    position = frame.groupby("query_id")["rank"].rank(method="first").to_numpy() - 1  # 0 .. n-1
    size = frame.groupby("query_id")["rank"].transform("size").to_numpy()
    context = position < np.floor(context_fraction * size)
    split = out["split"].to_numpy(dtype=object).copy()
    split[np.flatnonzero(is_test)[context]] = "test_context"
    out["split"] = split
    return out


def protocol_edges(scored: pd.DataFrame, protocol: str) -> pd.DataFrame:
    """The pairs that are edges of a protocol's graph (never a ``test`` pair).

    Args:
        scored: every pair of a run with ``query_id`` and ``split``.
        protocol: ``new_query`` (pairs of training queries only: training pairs and their
            transfer candidates) or ``new_pairs`` (every pair but the evaluated ``test`` ones).

    Raises:
        ValueError: unknown protocol.
    """
    if protocol == "new_pairs":
        return scored[scored["split"] != "test"]
    if protocol == "new_query":
        train_queries = scored.loc[scored["split"] == "train", "query_id"].unique()
        keep = scored["query_id"].isin(train_queries) & scored["split"].isin(["train", "transfer"])
        return scored[keep]
    raise ValueError(f"unknown protocol {protocol!r}; choose from {PROTOCOLS}")


def median_seconds(score: Callable[[pd.DataFrame], object], pairs: pd.DataFrame, *, warmup: pd.DataFrame,
                   repeats: int, reset: Callable[[], None] | None = None) -> float:
    """Median wall time (s) of ``score(pairs)`` over ``repeats`` runs.

    Before each run ``reset()`` empties the model's text caches and ``score(warmup)`` (other
    pairs, untimed) warms up lazy state, so no run finds the timed texts already cached.

    Raises:
        ValueError: ``repeats`` < 1.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    seconds = []
    for _ in range(repeats):
        if reset is not None:
            reset()
        score(warmup)
        start = time.perf_counter()
        score(pairs)
        seconds.append(time.perf_counter() - start)
    return float(np.median(seconds))


def add_ratios(models: dict) -> dict:
    """Add ``ratio_to_teacher`` (AUC, Spearman, NDCG@10) and ``speedup_vs_teacher`` to every
    model but ``teacher``, in place; returns ``models``."""
    teacher = models["teacher"]
    for name, values in models.items():
        if name != "teacher":
            values["ratio_to_teacher"] = {k: values[k] / teacher[k] for k in ("auc", "spearman", "ndcg@10")}
            values["speedup_vs_teacher"] = values["pairs_per_second"] / teacher["pairs_per_second"]
    return models
