"""Student inputs of pairs: wordpiece ids of their texts and their metapath neighbours."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch_geometric.data import HeteroData

from graphrel.data.graph import METAPATHS, MetapathNeighbours
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

    Attributes:
        query_node_tokens: (Nq, Lq) int64, wordpieces of every graph query.
        product_node_tokens: (Np, Lp) int64, wordpieces of every graph product.

    A batch is a dict: ``query_tokens`` (B, Lq) int64, ``product_tokens`` (B, Lp) int64,
    and per metapath m ``"{m}/ids"`` (B, cap) int64 node indices (-1 = none) and
    ``"{m}/scores"`` (B, cap) float32 teacher scores (NaN = none), and (option)
    ``neighbourhood`` (B, 4) float32 uncapped one-hop statistics
    (:meth:`graphrel.data.graph.MetapathNeighbours.neighbourhood_statistics`).
    """

    def __init__(self, graph: HeteroData, tokens: WordpieceCache, *, cap: int = 8,
                 query_length: int = 16, product_length: int = 48,
                 metapaths: tuple[str, ...] = METAPATHS, neighbourhood_statistics: bool = True) -> None:
        self.graph = graph
        self.metapaths = tuple(metapaths)
        self.neighbourhood_statistics = neighbourhood_statistics
        self.tokens = tokens
        self.query_length = query_length
        self.product_length = product_length
        self.neighbours = MetapathNeighbours(graph, cap=cap)
        self.query_node_tokens = torch.from_numpy(tokens.encode(graph["query"].text, query_length))
        self.product_node_tokens = torch.from_numpy(tokens.encode(graph["product"].text, product_length))

    def _with_neighbours(self, batch: dict, query_index: np.ndarray, product_index: np.ndarray,
                         hide_query: np.ndarray | None = None) -> dict:
        for name, found in self.neighbours.lookup(query_index, product_index, self.metapaths,
                                                  hide_query=hide_query).items():
            batch[f"{name}/ids"] = torch.from_numpy(found.ids)
            batch[f"{name}/scores"] = torch.from_numpy(found.scores)
        if self.neighbourhood_statistics:
            batch["neighbourhood"] = torch.from_numpy(self.neighbours.neighbourhood_statistics(
                query_index, product_index, hide_query=hide_query))
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
        return trim_padding(self._with_neighbours(batch, query_index, product_index, hide_query), self.tokens.pad_id)

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
        return self._with_neighbours(batch, query_index, product_index)
