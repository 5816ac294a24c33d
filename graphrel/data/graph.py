"""The query-product bipartite graph of a search log, and metapath neighbours.

Nodes are queries and products (text attributes); an edge ``("query", "shown",
"product")`` is a pair seen in the log (labelled or from the transfer set) and carries
the teacher score, and the human label on training edges only (NaN elsewhere).

:class:`MetapathNeighbours` gives, for a batch of pairs (q, p), the capped neighbours of
the four metapaths of BERM (Liu et al., EMNLP 2022 Industry, arXiv 2210.01701):

- ``Q-P``: other products shown for q (never p itself);
- ``P-Q``: other queries that showed p (never q itself);
- ``Q-P-Q``: queries q'' reached by q -> p' -> q'' with p' != p and q'' != q;
- ``P-Q-P``: products p'' reached by p -> q' -> p'' with q' != q and p'' != p.

So the pair's own edge (its teacher score, its label) never reaches its features.
Neighbours are metapath *instances*, kept highest teacher score first (for two-hop
paths the product of the two edges' scores), at most ``cap`` per metapath.
Unseen queries or products (index -1) simply have no neighbours there (inductive use).
``hide_query`` makes a graph query look unseen for one pair (its query side empty, its own
edge still left out of the product side): training pairs see what a new query sees.

:meth:`MetapathNeighbours.similar_query_paths` adds the metapaths ``SIMILAR_QUERY_METAPATHS``
through a query's nearest logged queries (never the query itself nor a query with its text),
which a query new to the log has as well.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch_geometric.data import HeteroData

EDGE = ("query", "shown", "product")
REVERSE_EDGE = ("product", "rev_shown", "query")
METAPATHS = ("Q-P", "P-Q", "Q-P-Q", "P-Q-P")
#: Metapaths through a query's nearest logged queries (:mod:`graphrel.data.query_neighbours`),
#: a neighbourhood that a query new to the log has too: ``Q~Q`` the logged queries themselves
#: (score: their text similarity to the query), ``Q~Q-P`` their products (score: similarity x
#: the teacher score of the logged query's edge).
SIMILAR_QUERY_METAPATHS = ("Q~Q", "Q~Q-P")
#: Node type of each metapath's neighbours (and of the pair's node it is compared with).
NEIGHBOUR_TYPE = {"Q-P": "product", "P-Q": "query", "Q-P-Q": "query", "P-Q-P": "product",
                  "Q~Q": "query", "Q~Q-P": "product"}
#: Width of the statistics :meth:`MetapathNeighbours.similar_query_paths` returns.
NUM_SIMILAR_QUERY_STATISTICS = 4
#: Metapaths used by a k-order student: k=0 text only, k=1 one hop, k=2 two hops.
METAPATHS_BY_ORDER = {0: (), 1: ("Q-P", "P-Q"), 2: METAPATHS}
#: Split of an edge. ``test_context``: labelled pairs of a test query kept in the graph as
#: teacher-scored context (protocol ``new_pairs``); the evaluated ``test`` pairs are never edges
#: of a graph a student is trained or scored with.
SPLIT_CODES = {"train": 0, "val": 1, "test": 2, "transfer": 3, "test_context": 4}


def metapaths_for_order(k: int) -> tuple[str, ...]:
    """The metapaths a k-order student reads (k in {0, 1, 2}).

    Raises:
        ValueError: for other k.
    """
    if k not in METAPATHS_BY_ORDER:
        raise ValueError(f"order k must be 0, 1 or 2, got {k}")
    return METAPATHS_BY_ORDER[k]


def build_graph(edges: pd.DataFrame, *, label_splits: tuple[str, ...] = ("train",)) -> HeteroData:
    """Bipartite query-product graph with teacher scores on edges.

    Args:
        edges: one row per pair with columns ``query_id, query, product_id, product_text,
            teacher_score`` (float in [0, 1]), ``split`` (train/val/test/transfer) and
            ``label`` (float in [0, 1] or NaN).
        label_splits: splits whose human labels are stored on edges; others get NaN, so
            test labels never enter the graph.

    Returns:
        ``HeteroData`` with ``data["query"].node_id / .text`` (lists of str, length Nq),
        likewise for ``"product"``; edge ``("query","shown","product")`` with
        ``edge_index`` (2, E) int64, ``teacher_score`` (E,) float32, ``label`` (E,)
        float32 (NaN unless in ``label_splits``), ``split`` (E,) int64 (see
        ``SPLIT_CODES``); and the reverse edge ``("product","rev_shown","query")``.

    Raises:
        ValueError: if a required column is missing or a teacher score is NaN.
    """
    need = {"query_id", "query", "product_id", "product_text", "teacher_score", "split", "label"}
    missing = need - set(edges.columns)
    if missing:
        raise ValueError(f"edges lack columns {sorted(missing)}")
    if edges["teacher_score"].isna().any():
        raise ValueError("every edge needs a teacher score")
    queries = edges.drop_duplicates("query_id")[["query_id", "query"]]
    products = edges.drop_duplicates("product_id")[["product_id", "product_text"]]
    q_index = pd.Index(queries["query_id"])
    p_index = pd.Index(products["product_id"])
    data = HeteroData()
    data["query"].node_id = queries["query_id"].tolist()
    data["query"].text = queries["query"].tolist()
    data["query"].num_nodes = len(queries)
    data["product"].node_id = products["product_id"].tolist()
    data["product"].text = products["product_text"].tolist()
    data["product"].num_nodes = len(products)
    src = q_index.get_indexer(edges["query_id"])
    dst = p_index.get_indexer(edges["product_id"])
    edge_index = torch.as_tensor(np.stack([src, dst]), dtype=torch.long)
    label = edges["label"].to_numpy(dtype=np.float32).copy()
    label[~edges["split"].isin(label_splits).to_numpy()] = np.nan
    store = data[EDGE]
    store.edge_index = edge_index
    store.teacher_score = torch.as_tensor(edges["teacher_score"].to_numpy(np.float32))
    store.label = torch.as_tensor(label)
    store.split = torch.as_tensor(edges["split"].map(SPLIT_CODES).to_numpy(np.int64).copy())
    reverse = data[REVERSE_EDGE]
    reverse.edge_index = edge_index.flip(0)
    for key in ("teacher_score", "label", "split"):
        reverse[key] = store[key]
    return data


def _top_neighbours(source: np.ndarray, target: np.ndarray, score: np.ndarray, num_sources: int,
                    width: int) -> tuple[np.ndarray, np.ndarray]:
    """Per source node, its ``width`` best targets by score; an extra last row of padding.

    Returns ids (num_sources + 1, width) int64 with -1 padding and scores of the same
    shape (NaN padding). Row -1 (the last) is all padding, so index -1 = unseen node.
    """
    ids = np.full((num_sources + 1, width), -1, dtype=np.int64)
    scores = np.full((num_sources + 1, width), np.nan, dtype=np.float32)
    order = np.lexsort((-score, source))  # by source, best score first
    source, target, score = source[order], target[order], score[order]
    starts = np.searchsorted(source, source, side="left")
    rank = np.arange(len(source)) - starts
    keep = rank < width
    ids[source[keep], rank[keep]] = target[keep]
    scores[source[keep], rank[keep]] = score[keep]
    return ids, scores


def _best(ids: np.ndarray, scores: np.ndarray, valid: np.ndarray, cap: int):
    """The ``cap`` best-scoring valid entries per row, best first; padding (-1 / NaN) after."""
    key = np.where(valid, -scores, np.inf)
    if key.shape[1] > cap:  # top-cap without sorting every candidate
        top = np.argpartition(key, cap - 1, axis=1)[:, :cap]
        order = np.take_along_axis(top, np.argsort(np.take_along_axis(key, top, 1), axis=1, kind="stable"), 1)
    else:
        order = np.argsort(key, axis=1, kind="stable")
    ids = np.take_along_axis(np.where(valid, ids, -1), order, axis=1)
    scores = np.take_along_axis(np.where(valid, scores, np.nan), order, axis=1)
    if ids.shape[1] < cap:  # fewer candidates than the cap
        pad = cap - ids.shape[1]
        ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=-1)
        scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=np.nan)
    return ids, scores


@dataclass
class Neighbours:
    """Neighbours of a batch of pairs along one metapath.

    ids: (B, cap) int64 node indices (queries for P-Q and Q-P-Q, products otherwise), -1 = none.
    scores: (B, cap) float32 teacher score of the metapath instance in [0, 1], NaN = none.
    """

    ids: np.ndarray
    scores: np.ndarray


class MetapathNeighbours:
    """Capped metapath neighbours of pairs in a query-product graph (see module doc).

    Args:
        graph: from :func:`build_graph`.
        cap: neighbours kept per metapath and pair (BERM-style cap, e.g. 8).
    """

    def __init__(self, graph: HeteroData, cap: int = 8) -> None:
        if cap < 1:
            raise ValueError(f"cap must be >= 1, got {cap}")
        self.cap = cap
        store = graph[EDGE]
        q, p = store.edge_index.numpy()
        s = store.teacher_score.numpy()
        nq, np_ = graph["query"].num_nodes, graph["product"].num_nodes
        # cap + 1: one slot may be the pair's own edge, removed at look-up.
        self.query_products = _top_neighbours(q, p, s, nq, cap + 1)
        self.product_queries = _top_neighbours(p, q, s, np_, cap + 1)
        self.query_index = pd.Index(graph["query"].node_id)
        self.product_index = pd.Index(graph["product"].node_id)
        # id -> node row: a dict look-up per id took 0.006 ms for 100 str ids against 0.11 ms
        # through pandas' get_indexer (a request's query and product ids, as Arrow strings: 0.12
        # ms against 0.51 ms), and 0.05 s against 0.29 s for a million
        self._rows = {kind: dict(zip(index.tolist(), range(len(index))))
                      for kind, index in (("query", self.query_index), ("product", self.product_index))}
        # Uncapped first-order statistics: score sum and degree per node (last slot: unseen node),
        # and every edge's score by key q * Np + p, to take the pair's own edge out.
        self._score_sum = {kind: np.bincount(index, weights=s, minlength=n + 1)
                           for kind, index, n in (("query", q, nq), ("product", p, np_))}
        self._degree = {kind: np.bincount(index, minlength=n + 1).astype(np.float64)
                        for kind, index, n in (("query", q, nq), ("product", p, np_))}
        self._num_products = np_
        keys = q.astype(np.int64) * np_ + p
        order = np.argsort(keys, kind="stable")
        self._edge_keys, self._edge_scores = keys[order], s[order].astype(np.float64)

    def node_indices(self, query_ids, product_ids) -> tuple[np.ndarray, np.ndarray]:
        """Graph node indices of query and product ids; -1 where not in the graph. (B,) int64 each."""
        return self.rows_of("query", query_ids), self.rows_of("product", product_ids)

    def rows_of(self, kind: str, ids) -> np.ndarray:
        """(B,) int64 graph node rows of ``ids`` of one node type (``"query"`` or ``"product"``);
        -1 where not in the graph."""
        get = self._rows[kind].get
        return np.fromiter((get(i, -1) for i in ids), dtype=np.int64, count=len(ids))

    def _one_hop(self, table, centre: np.ndarray, exclude: np.ndarray) -> Neighbours:
        ids, scores = table[0][centre], table[1][centre]  # (B, cap + 1), best first, -1 padding last
        # At most one entry (the pair's own edge) is removed: shift the columns after it left.
        hit = ids == exclude[:, None]
        position = np.where(hit.any(1), hit.argmax(1), self.cap)
        columns = np.arange(self.cap)
        columns = columns + (columns >= position[:, None])
        return Neighbours(np.take_along_axis(ids, columns, 1), np.take_along_axis(scores, columns, 1))

    def _two_hop(self, first: Neighbours, table, exclude: np.ndarray) -> Neighbours:
        ids = table[0][first.ids]  # (B, cap, cap + 1); first.ids == -1 hits the padding row
        scores = table[1][first.ids] * first.scores[:, :, None]
        valid = (ids >= 0) & (ids != exclude[:, None, None])
        batch = ids.shape[0]
        return Neighbours(*_best(ids.reshape(batch, -1), scores.reshape(batch, -1), valid.reshape(batch, -1),
                                 self.cap))

    def neighbourhood_statistics(self, query_index: np.ndarray, product_index: np.ndarray,
                                 hide_query: np.ndarray | None = None) -> np.ndarray:
        """Uncapped one-hop statistics of pairs, the pair's own edge left out.

        For the query: mean teacher score over all its other products and log(1 + their
        number); for the product: the same over all its other queries. Unlike the capped
        metapath neighbours these see the whole neighbourhood (its size and average
        relevance), at the cost of two table look-ups.

        Args:
            query_index, product_index: (B,) int64 graph indices, -1 = unseen.
            hide_query: (B,) bool or None: rows whose query counts as unseen (query
                statistics 0, as for index -1); the product's still leave the pair's own edge out.

        Returns:
            (B, 4) float32: [query mean score in [0, 1], log1p(query degree) >= 0,
            product mean score, log1p(product degree)]; 0 where there is no other neighbour.
        """
        query_index = np.asarray(query_index, dtype=np.int64)
        product_index = np.asarray(product_index, dtype=np.int64)
        keys = query_index * self._num_products + product_index
        own, own_score = np.zeros(len(keys), dtype=bool), np.zeros(len(keys))
        if len(self._edge_keys):
            position = np.searchsorted(self._edge_keys, keys).clip(max=len(self._edge_keys) - 1)
            own = (query_index >= 0) & (product_index >= 0) & (self._edge_keys[position] == keys)
            own_score = np.where(own, self._edge_scores[position], 0.0)
        out = np.empty((len(keys), 4), dtype=np.float32)
        for column, (kind, index) in enumerate((("query", query_index), ("product", product_index))):
            count = self._degree[kind][index] - own
            total = self._score_sum[kind][index] - own_score
            out[:, 2 * column] = np.where(count > 0, total / np.maximum(count, 1), 0.0)
            out[:, 2 * column + 1] = np.log1p(count)
        if hide_query is not None:
            out[np.asarray(hide_query, dtype=bool), :2] = 0.0
        return out

    def lookup(self, query_index: np.ndarray, product_index: np.ndarray,
               metapaths: tuple[str, ...] = METAPATHS, hide_query: np.ndarray | None = None) -> dict[str, Neighbours]:
        """Neighbours of pairs (query_index[i], product_index[i]) along ``metapaths``.

        Args:
            query_index: (B,) int64 graph query indices, -1 for unseen queries.
            product_index: (B,) int64 graph product indices, -1 for unseen products.
            metapaths: subset of ``METAPATHS``.
            hide_query: (B,) bool or None: rows whose query counts as unseen: Q-P and
                Q-P-Q empty, while P-Q and P-Q-P still leave the pair's own query out.

        Returns:
            metapath name -> :class:`Neighbours` with (B, cap) arrays.
        """
        query_index = np.asarray(query_index, dtype=np.int64)
        product_index = np.asarray(product_index, dtype=np.int64)
        out: dict[str, Neighbours] = {}
        if not metapaths:
            return out
        qp = self._one_hop(self.query_products, query_index, product_index)
        if hide_query is not None:
            hidden = np.asarray(hide_query, dtype=bool)
            qp = Neighbours(np.where(hidden[:, None], -1, qp.ids), np.where(hidden[:, None], np.nan, qp.scores))
        pq = self._one_hop(self.product_queries, product_index, query_index)
        for name in metapaths:
            if name == "Q-P":
                out[name] = qp
            elif name == "P-Q":
                out[name] = pq
            elif name == "Q-P-Q":
                out[name] = self._two_hop(qp, self.product_queries, query_index)
            elif name == "P-Q-P":
                out[name] = self._two_hop(pq, self.query_products, product_index)
            else:
                raise ValueError(f"unknown metapath {name!r}; choose from {METAPATHS}")
        return out

    def similar_query_paths(self, similar_ids: np.ndarray, similarity: np.ndarray,
                            product_index: np.ndarray) -> tuple[dict[str, Neighbours], np.ndarray]:
        """Metapaths and statistics of pairs through their queries' nearest logged queries.

        Args:
            similar_ids: (B, m) int64 graph query indices of each pair's nearest logged queries
                (:class:`graphrel.data.query_neighbours.NearestLoggedQueries`), -1 = none.
            similarity: (B, m) float32 their text similarity in [0, 1], NaN = none.
            product_index: (B,) int64 graph index of each pair's product, -1 = unseen.

        Returns:
            ``{"Q~Q": Neighbours, "Q~Q-P": Neighbours}`` with (B, cap) arrays: the most similar
            logged queries (score = similarity), and their products ranked by similarity x
            teacher score (the pair's own product included: a similar query's teacher score
            for it is the best evidence there is); and statistics (B, 4) float32:
            [highest similarity, similarity-weighted mean of the similar queries' mean
            teacher scores, best similarity x teacher score of a similar query's edge to
            this product, share of the similar queries with such an edge]; 0 where none.
        """
        similar_ids = np.asarray(similar_ids, dtype=np.int64)
        similarity = np.asarray(similarity, dtype=np.float32)
        product_index = np.asarray(product_index, dtype=np.int64)
        valid = similar_ids >= 0
        weight = np.where(valid, np.nan_to_num(similarity), 0.0).astype(np.float32)
        queries = Neighbours(*_best(similar_ids, weight, valid, self.cap))
        ids = self.query_products[0][similar_ids]  # (B, m, cap + 1); -1 hits the padding row
        scores = self.query_products[1][similar_ids] * weight[:, :, None]
        batch = len(similar_ids)
        products = Neighbours(*_best(ids.reshape(batch, -1), scores.reshape(batch, -1), (ids >= 0).reshape(batch, -1),
                                     self.cap))
        # Uncapped: the similar queries' mean teacher scores, and their edges to this very product.
        degree = self._degree["query"][similar_ids]
        mean = np.where(degree > 0, self._score_sum["query"][similar_ids] / np.maximum(degree, 1), 0.0)
        total = weight.sum(1)
        edge = np.zeros(similar_ids.shape, dtype=np.float64)
        shown = np.zeros(similar_ids.shape, dtype=bool)
        if len(self._edge_keys):
            keys = similar_ids * self._num_products + product_index[:, None]
            position = np.searchsorted(self._edge_keys, keys).clip(max=len(self._edge_keys) - 1)
            shown = valid & (product_index[:, None] >= 0) & (self._edge_keys[position] == keys)
            edge = np.where(shown, self._edge_scores[position], 0.0)
        statistics = np.stack([weight.max(1, initial=0.0),
                               np.where(total > 0, (weight * mean).sum(1) / np.maximum(total, 1e-12), 0.0),
                               (weight * edge).max(1, initial=0.0),
                               shown.sum(1) / similar_ids.shape[1]], axis=1).astype(np.float32)
        return {"Q~Q": queries, "Q~Q-P": products}, statistics
