"""Student inputs of pairs: wordpiece ids of their texts and their metapath neighbours."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch_geometric.data import HeteroData

from graphrel.data.graph import METAPATHS, SIMILAR_QUERY_METAPATHS, MetapathNeighbours
from graphrel.data.query_neighbours import NearestLoggedQueries, check_settings
from graphrel.data.tokens import WordpieceCache


def trim_padding(batch: dict, pad_id: int = 0) -> dict:
    """Drop token columns that are padding in every row (tokens are left-aligned)."""
    for key in ("query_tokens", "product_tokens"):
        tokens = batch[key]
        width = int((tokens != pad_id).sum(1).max()) if len(tokens) else 1
        batch[key] = tokens[:, : max(width, 1)]
    return batch


def select_rows(batch: dict, rows, pad_id: int = 0) -> dict:
    """The rows ``rows`` of every tensor of a batch, padding trimmed."""
    return trim_padding({key: value[rows] for key, value in batch.items()}, pad_id)


class PairFeaturizer:
    """Turns pairs into the tensors a student reads.

    Args:
        graph: query-product graph (:func:`graphrel.data.graph.build_graph`).
        tokens: wordpiece cache of the teacher's tokenizer.
        cap: neighbours per metapath.
        query_length: Lq, wordpieces kept per query.
        product_length: Lp, wordpieces kept per product text.
        metapaths: metapaths whose neighbours are looked up (a k=0 student needs none).
        neighbourhood_statistics: add the uncapped one-hop statistics (``neighbourhood``).
        similar_queries: m > 0 adds each pair's m nearest logged queries
            (:class:`graphrel.data.query_neighbours.NearestLoggedQueries`, never the query's own
            text): the metapaths ``Q~Q`` and ``Q~Q-P`` and their statistics, which a query new to
            the log has too. 0: none.
        min_similarity: text similarity in [0, 1) below which a logged query is not a neighbour.

    Attributes:
        query_node_tokens: (Nq, Lq) int64, wordpieces of every graph query.
        product_node_tokens: (Np, Lp) int64, wordpieces of every graph product.

    A batch is a dict: ``query_tokens`` (B, Lq) int64, ``product_tokens`` (B, Lp) int64,
    and per metapath m ``"{m}/ids"`` (B, cap) int64 node indices (-1 = none) and
    ``"{m}/scores"`` (B, cap) float32 teacher scores (NaN = none), and (option)
    ``neighbourhood`` (B, 4) float32 uncapped one-hop statistics
    (:meth:`graphrel.data.graph.MetapathNeighbours.neighbourhood_statistics`). With
    ``similar_queries``: ``"Q~Q/..."`` and ``"Q~Q-P/..."`` like the other metapaths and
    ``similar_queries`` (B, 4) float32
    (:meth:`graphrel.data.graph.MetapathNeighbours.similar_query_paths`).

    Raises:
        ValueError: ``similar_queries`` < 0 or ``min_similarity`` outside [0, 1).
    """

    def __init__(self, graph: HeteroData, tokens: WordpieceCache, *, cap: int = 8,
                 query_length: int = 16, product_length: int = 48,
                 metapaths: tuple[str, ...] = METAPATHS, neighbourhood_statistics: bool = True,
                 similar_queries: int = 0, min_similarity: float = 0.5) -> None:
        check_settings(similar_queries, min_similarity)
        self.graph = graph
        self.metapaths = tuple(name for name in metapaths if name not in SIMILAR_QUERY_METAPATHS)
        self.neighbourhood_statistics = neighbourhood_statistics
        self.tokens = tokens
        self.query_length = query_length
        self.product_length = product_length
        self.neighbours = MetapathNeighbours(graph, cap=cap)
        self.query_node_tokens = torch.from_numpy(tokens.encode(graph["query"].text, query_length))
        self.product_node_tokens = torch.from_numpy(tokens.encode(graph["product"].text, product_length))
        self.similar_queries = None
        if similar_queries > 0:
            # Built once from the graph's queries, for training and scoring alike; a graph query's
            # own neighbours are those it would have if it were new (its own text excluded).
            self.similar_queries = NearestLoggedQueries(graph["query"].text, m=similar_queries,
                                                        min_similarity=min_similarity)
        self._node_similar = None  # the graph queries' own, searched at the first from_nodes (training only)

    def _with_neighbours(self, batch: dict, query_index: np.ndarray, product_index: np.ndarray,
                         hide_query: np.ndarray | None = None, similar=None) -> dict:
        for name, found in self.neighbours.lookup(query_index, product_index, self.metapaths,
                                                  hide_query=hide_query).items():
            batch[f"{name}/ids"] = torch.from_numpy(found.ids)
            batch[f"{name}/scores"] = torch.from_numpy(found.scores)
        if self.neighbourhood_statistics:
            batch["neighbourhood"] = torch.from_numpy(self.neighbours.neighbourhood_statistics(
                query_index, product_index, hide_query=hide_query))
        if similar is not None:
            paths, statistics = self.neighbours.similar_query_paths(*similar, product_index)
            for name, found in paths.items():
                batch[f"{name}/ids"] = torch.from_numpy(found.ids)
                batch[f"{name}/scores"] = torch.from_numpy(found.scores)
            batch["similar_queries"] = torch.from_numpy(statistics)
        return batch

    def from_nodes(self, query_index: np.ndarray, product_index: np.ndarray,
                   hide_query: np.ndarray | None = None) -> dict:
        """Batch for pairs whose query and product are graph nodes (training).

        Args:
            query_index, product_index: (B,) int64 graph node indices.
            hide_query: (B,) bool or None: rows read as if their query were new to the log
                (no query-side neighbours or statistics; see ``MetapathNeighbours.lookup``).
        """
        query_index = np.asarray(query_index, dtype=np.int64)
        product_index = np.asarray(product_index, dtype=np.int64)
        batch = {"query_tokens": self.query_node_tokens[query_index],
                 "product_tokens": self.product_node_tokens[product_index]}
        similar = None
        if self.similar_queries is not None:
            if self._node_similar is None:
                ids, similarity = self.similar_queries.search(self.graph["query"].text)
                pad = ids.shape[1]  # a last row for index -1 (a query not in the graph): no neighbour
                self._node_similar = (np.concatenate([ids, np.full((1, pad), -1)]),
                                      np.concatenate([similarity, np.full((1, pad), np.nan, np.float32)]))
            similar = (self._node_similar[0][query_index], self._node_similar[1][query_index])
        return trim_padding(self._with_neighbours(batch, query_index, product_index, hide_query, similar),
                            self.tokens.pad_id)

    def from_texts(self, query_ids, queries, product_ids, product_texts) -> dict:
        """Batch for any pairs, from their texts; unseen queries/products get no neighbours there.

        Args:
            query_ids, product_ids: (B,) str ids, matched against the graph's nodes.
            queries, product_texts: (B,) str texts, tokenised here.
        """
        query_index, product_index = self.neighbours.node_indices(query_ids, product_ids)
        codes, unique_queries = pd.factorize(np.asarray(queries, dtype=object))  # queries repeat: encode once
        batch = {"query_tokens": torch.from_numpy(self.tokens.encode(list(unique_queries), self.query_length)[codes]),
                 "product_tokens": torch.from_numpy(self.tokens.encode(list(product_texts), self.product_length))}
        similar = self._similar_of(codes, unique_queries) if self.similar_queries is not None else None
        return self._with_neighbours(batch, query_index, product_index, similar=similar)

    def _similar_of(self, codes: np.ndarray, unique_queries) -> tuple[np.ndarray, np.ndarray]:
        """Nearest logged queries (ids, similarity), (B, m) each, of pairs whose query is
        ``unique_queries[codes]``: each distinct text is searched once."""
        ids, similarity = self.similar_queries.search(unique_queries)
        return ids[codes], similarity[codes]

    def similar_query_statistics(self, queries, product_ids) -> np.ndarray:
        """(B, 4) float32 statistics of pairs through their queries' nearest logged queries
        (:meth:`graphrel.data.graph.MetapathNeighbours.similar_query_paths`), from texts and ids
        alone (no tokenising): what decides whether a pair has a built neighbourhood.

        Raises:
            ValueError: this featuriser has no ``similar_queries``.
        """
        if self.similar_queries is None:
            raise ValueError("this featuriser was built without similar_queries")
        product_index = self.neighbours.rows_of("product", product_ids)
        similar = self._similar_of(*pd.factorize(np.asarray(queries, dtype=object)))
        return self.neighbours.similar_query_paths(*similar, product_index)[1]
