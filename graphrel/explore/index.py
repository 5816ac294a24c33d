"""The query-product graph as arrays, with look-ups by id or text and "did you mean" errors."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import numpy as np
from torch_geometric.data import HeteroData

from graphrel.data.graph import EDGE
from graphrel.errors import GraphrelInputError, did_you_mean
from graphrel.explore.naming import short

__all__ = ["GraphIndex", "unknown_query", "unknown_product"]


class GraphIndex:
    """Arrays and look-ups over a query-product HeteroData (built once per graph).

    Args:
        graph: a query-product graph (:func:`graphrel.data.graph.build_graph`).
        edge_labels: (E,) float label of every ``shown`` edge, NaN = none; None takes the
            graph's own edge labels (train only).

    Raises:
        GraphrelInputError: if ``graph`` has no query nodes or ``shown`` edges.
    """

    def __init__(self, graph: HeteroData, edge_labels: np.ndarray | None = None) -> None:
        if "query" not in graph.node_types or EDGE not in graph.edge_types:
            raise GraphrelInputError("not a graphrel query-product graph (no query nodes or shown edges)",
                                     fix="pass a graph built by graphrel.data.graph.build_graph or a run directory")
        self.query_ids = [str(x) for x in graph["query"].node_id]
        self.query_texts = [str(x) for x in graph["query"].text]
        self.product_ids = [str(x) for x in graph["product"].node_id]
        self.product_texts = [str(x) for x in graph["product"].text]
        store = graph[EDGE]
        self.src, self.dst = (x.astype(np.int64) for x in store.edge_index.numpy())
        self.teacher = store.teacher_score.numpy().astype(np.float64)
        self.split = store.split.numpy().astype(np.int64)
        self.label = (store.label.numpy().astype(np.float64) if edge_labels is None
                      else np.asarray(edge_labels, dtype=np.float64))
        self.query_degree = np.bincount(self.src, minlength=len(self.query_ids))
        self.product_degree = np.bincount(self.dst, minlength=len(self.product_ids))
        # Edges of each node, best teacher score first (CSR).
        self._by_query = self._csr(self.src, len(self.query_ids))
        self._by_product = self._csr(self.dst, len(self.product_ids))
        self.query_position = {q: i for i, q in enumerate(self.query_ids)}
        self.product_position = {p: i for i, p in enumerate(self.product_ids)}
        self._query_by_text: dict[str, list[int]] = {}
        for i, text in enumerate(self.query_texts):
            self._query_by_text.setdefault(text, []).append(i)

    @cached_property
    def edge_score(self) -> dict[tuple[int, int], float]:
        """(query index, product index) -> teacher score of that edge."""
        return {(int(q), int(p)): float(s) for q, p, s in zip(self.src, self.dst, self.teacher)}

    def _csr(self, node: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
        order = np.lexsort((-self.teacher, node))
        return order, np.searchsorted(node[order], np.arange(count + 1))

    def edges_of(self, kind: str, index: int) -> np.ndarray:
        """Edge numbers of a node, highest teacher score first."""
        order, starts = self._by_query if kind == "query" else self._by_product
        return order[starts[index]:starts[index + 1]]

    def find_query(self, query: str) -> int | None:
        """Node index of a query given by id or text; None if unknown."""
        query = str(query)
        if query in self.query_position:
            return self.query_position[query]
        found = self._query_by_text.get(query)
        if found is None:
            normal = " ".join(query.split()).casefold()
            found = [i for i, t in enumerate(self.query_texts) if " ".join(t.split()).casefold() == normal] or None
        if found is None:
            return None
        if len(found) > 1:
            ids = ", ".join(repr(self.query_ids[i]) for i in found[:5])
            raise GraphrelInputError(f"query text {query!r} belongs to several query ids ({ids})",
                                     fix="pass one query id instead of the text")
        return found[0]

    def find_product(self, product_id: str) -> int | None:
        """Node index of a product id; None if unknown."""
        return self.product_position.get(str(product_id).strip())

    def query_suggestions(self, query: str, n: int = 5) -> list[str]:
        """Query texts and ids closest to ``query``."""
        pool = sorted(set(self.query_texts) | set(self.query_ids))
        return did_you_mean(str(query), pool, n=n)

    def product_suggestions(self, product_id: str, n: int = 5) -> tuple[list[str], list[tuple[str, str]]]:
        """Closest product ids, and (id, text) of products whose text is closest."""
        product_id = str(product_id)
        ids = did_you_mean(product_id, self.product_ids, n=n)
        by_text = {}
        for i, text in enumerate(self.product_texts):
            by_text.setdefault(text, i)
        texts = did_you_mean(product_id, by_text, n=3, cutoff=0.5)
        if not texts:  # a few words of a long title: match against title prefixes too
            prefixes = {}
            for text, i in by_text.items():
                prefixes.setdefault(text[: len(product_id) + 10], i)
            found = did_you_mean(product_id, prefixes, n=3)
            return ids, [(self.product_ids[prefixes[t]], self.product_texts[prefixes[t]]) for t in found]
        return ids, [(self.product_ids[by_text[t]], t) for t in texts]


def unknown_query(index: GraphIndex, query: str, where: str | Path | None) -> GraphrelInputError:
    """The error for a query that is not in the graph, naming the closest known ones."""
    close = index.query_suggestions(query)
    hint = "closest: " + ", ".join(repr(c) for c in close) if close else "no close match"
    return GraphrelInputError(f"unknown query {query!r}; {hint}", path=where,
                              fix="pass a query of the run (exact text or query id), e.g. one of the closest")


def unknown_product(index: GraphIndex, product_id: str, where: str | Path | None,
                    extra_fix: str = "") -> GraphrelInputError:
    """The error for a product id that is not in the graph, naming the closest ids and texts."""
    ids, texts = index.product_suggestions(product_id)
    hints = []
    if ids:
        hints.append("closest ids: " + ", ".join(repr(i) for i in ids))
    if texts:
        hints.append("products whose text is close: " + ", ".join(f"{i!r} ({short(t, 40)})" for i, t in texts))
    hint = "; ".join(hints) if hints else "no close match"
    return GraphrelInputError(f"unknown product id {product_id!r}; {hint}", path=where,
                              fix="pass a product id of the run, e.g. one of the closest" + extra_fix)
