"""The evaluation protocols: which pairs are evaluated, and which pairs may be graph edges.

A student exists for pairs the teacher has *not* scored, so no evaluated pair may be an edge
of a graph a student is trained or scored with (its edge would hold the teacher's score), and
neither may the same pair of *texts* under other ids (one product title under two product ids
is one pair to the teacher). Every model is reported under two protocols, on the same
evaluated pairs:

- ``new_query``: the query is new to the log. Every edge of val and test queries (labelled
  and transfer set) is absent from the graph the student reads (``graph_new_query.pt``);
  product-side neighbourhoods from training queries remain.
- ``new_pairs``: new candidates of a logged query. Each test query keeps a seeded share of
  its labelled pairs (split ``test_context``) and its transfer candidates in the graph as
  teacher-scored context (``graph.pt``); the other pairs (split ``test``) are absent from
  every graph and are the ones evaluated.

In both, an edge whose text key pair (:func:`graphrel.data.text_keys.pair_keys`) equals an
evaluated pair's is removed too (:func:`deduplication_counts` says how many).

BERM (Liu et al., EMNLP 2022 Industry, arXiv 2210.01701) and BERT2DNN (Jiang et al., ICDM
2020, arXiv 2010.10442) report students on pairs outside their training graph; the two
protocols here are this project's reconstruction of that setting on a public log.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from graphrel.data.split import training_pairs
from graphrel.data.text_keys import pair_keys, text_keys

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


def _by_ids(scored: pd.DataFrame, protocol: str) -> np.ndarray:
    """(N,) bool: rows a protocol's graph may hold, judged by ids and splits alone."""
    if protocol == "new_pairs":
        return (scored["split"] != "test").to_numpy()
    if protocol == "new_query":
        return training_pairs(scored)  # train pairs and transfer pairs of queries no held-out split holds
    raise ValueError(f"unknown protocol {protocol!r}; choose from {PROTOCOLS}")


def _evaluated_text(scored: pd.DataFrame, keys: np.ndarray) -> np.ndarray:
    """(N,) bool: rows whose text key pair is that of an evaluated (``test``) pair."""
    evaluated = set(keys[(scored["split"] == "test").to_numpy()])
    return np.fromiter((key in evaluated for key in keys), dtype=bool, count=len(keys))


def protocol_edges(scored: pd.DataFrame, protocol: str) -> pd.DataFrame:
    """The pairs that are edges of a protocol's graph: never a ``test`` pair, nor a pair
    whose (query, product text) text keys equal a ``test`` pair's under other ids.

    Args:
        scored: every pair of a run with ``query_id``, ``query``, ``product_text`` and ``split``.
        protocol: ``new_query`` (pairs of training queries only: training pairs and the transfer
            candidates of queries no held-out split holds) or ``new_pairs`` (every pair but the evaluated ``test`` ones).

    Raises:
        ValueError: unknown protocol.
    """
    keep = _by_ids(scored, protocol) & ~_evaluated_text(scored, pair_keys(scored["query"], scored["product_text"]))
    return scored[keep]


def deduplication_counts(scored: pd.DataFrame) -> dict:
    """What text de-duplication removed, for ``metrics.json``.

    Returns:
        ``{"query_ids_sharing_a_text": int`` (query ids whose text key another id has too:
        kept in one split), ``"product_ids_sharing_a_title": int``, ``"edges_removed":
        {protocol: int}`` (edges kept by ids but dropped for an evaluated pair's texts), and
        ``"evaluated_pairs_with_a_removed_twin": {protocol: int}``}.
    """
    keys = pair_keys(scored["query"], scored["product_text"])
    same_text = _evaluated_text(scored, keys)
    evaluated = (scored["split"] == "test").to_numpy()
    counts = {"query_ids_sharing_a_text": _ids_sharing(scored, "query_id", "query"),
              "product_ids_sharing_a_title": _ids_sharing(scored, "product_id", "product_text"),
              "edges_removed": {}, "evaluated_pairs_with_a_removed_twin": {}}
    for protocol in PROTOCOLS:
        removed = _by_ids(scored, protocol) & same_text
        counts["edges_removed"][protocol] = int(removed.sum())
        twins = set(keys[removed])
        counts["evaluated_pairs_with_a_removed_twin"][protocol] = int(sum(key in twins for key in keys[evaluated]))
    return counts


def _ids_sharing(scored: pd.DataFrame, id_column: str, text_column: str) -> int:
    nodes = scored.drop_duplicates(id_column)
    keys = text_keys(nodes[text_column])
    return int(keys.duplicated(keep=False).sum())
