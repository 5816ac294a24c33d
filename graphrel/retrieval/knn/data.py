"""The queries and the item set of a CE k-NN evaluation, and the first-stage rankings over it.

Item set (the searched "catalogue", capped so the exact CE top-k of every test query is
affordable): every product judged for one of the evaluated test queries, plus a seeded sample of
the rest of the catalogue, up to ``n_items`` (None or 0: the whole catalogue); kept in catalogue
order (product id order), so an item's row ranks ties as everywhere else in graphrel. A capped
item set is enriched in judged products, which favours a method that finds them (a retriever
trained on the judgements) against a catalogue-scale search: :meth:`KnnData.item_set` holds the
counts every table states. Test queries: a seeded sample of the run's
unseen test queries (splits ``test`` / ``test_context``). Training queries of the index: a
seeded sample of the ``train`` split's queries (distinct from every test query).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from graphrel.errors import GraphrelInputError
from graphrel.retrieval.search.catalogue import TEST_SPLITS, Catalogue
from graphrel.retrieval.search.topk import top_k


@dataclass(frozen=True)
class KnnData:
    """Queries and items of a CE k-NN evaluation.

    Attributes:
        items: (N,) catalogue rows of the item set, ascending.
        item_ids, item_texts: (N,) their product ids and texts.
        test_query_ids, test_queries: (Q_test,) evaluated queries.
        train_query_ids, train_queries: (Q_train,) the index's training queries (the first k_q
            are also the CUR anchor queries).
        judged: (N,) bool, True where the item is a judged product of a test query (always in
            the item set); the rest were sampled at random from the catalogue.
        catalogue_size: products in the whole catalogue (>= N).
    """

    items: np.ndarray
    item_ids: np.ndarray
    item_texts: np.ndarray
    test_query_ids: np.ndarray
    test_queries: np.ndarray
    train_query_ids: np.ndarray
    train_queries: np.ndarray
    judged: np.ndarray
    catalogue_size: int

    def item_set(self) -> dict:
        """The item set's counts: ``{"items": N, "catalogue", "judged", "sampled" (= N - judged),
        "test_queries": Q_test, "whole_catalogue": N == catalogue}`` (plain ints and a bool)."""
        judged = int(np.count_nonzero(self.judged))
        return {"items": int(len(self.items)), "catalogue": int(self.catalogue_size), "judged": judged,
                "sampled": int(len(self.items)) - judged, "test_queries": int(len(self.test_queries)),
                "whole_catalogue": bool(len(self.items) == self.catalogue_size)}

    @property
    def query_texts(self) -> np.ndarray:
        """Every query, test queries first: query row r < Q_test is a test query, the rest training."""
        return np.concatenate([self.test_queries, self.train_queries])


def _sample_queries(pairs: pd.DataFrame, splits, count: int, rng) -> tuple[np.ndarray, np.ndarray]:
    frame = pairs[pairs["split"].isin(list(splits))].drop_duplicates("query_id")
    frame = frame.assign(query_id=frame["query_id"].astype(str)).sort_values("query_id", kind="stable")
    if frame.empty:
        raise GraphrelInputError(f"the run has no query of split {'/'.join(splits)}",
                                 fix="pass a run directory written by graphrel pipeline")
    keep = np.sort(rng.choice(len(frame), size=min(count, len(frame)), replace=False))
    return frame["query_id"].to_numpy(dtype=object)[keep], frame["query"].astype(str).to_numpy(dtype=object)[keep]


def knn_data(pairs: pd.DataFrame, catalogue: Catalogue, *, n_items: int | None, test_queries: int,
             train_queries: int, seed: int) -> KnnData:
    """Sample the test queries, the training queries and the item set.

    Args:
        pairs: the run's pairs (``query_id, query, product_id, split``).
        catalogue: the products (the dual encoder's catalogue: its rows index its embeddings).
        n_items: item set size (>= 1; the judged products of the test queries are always in,
            so it may exceed ``n_items`` if they alone do; capped at the catalogue); None or 0:
            the whole catalogue.
        test_queries, train_queries: how many of each (capped at what the run has).
        seed: sampling seed.

    Raises:
        GraphrelInputError: the run has no test or no training query.
    """
    rng = np.random.default_rng(seed)
    test_ids, test_texts = _sample_queries(pairs, TEST_SPLITS, test_queries, rng)
    train_ids, train_texts = _sample_queries(pairs, ("train",), train_queries, rng)
    rows = {p: i for i, p in enumerate(catalogue.product_ids)}
    judged = pairs[pairs["query_id"].astype(str).isin(set(test_ids))]["product_id"].astype(str)
    chosen = np.unique(np.array([rows[p] for p in judged.unique() if p in rows], dtype=np.int64))
    size = len(catalogue) if not n_items else min(int(n_items), len(catalogue))
    rest = np.setdiff1d(np.arange(len(catalogue), dtype=np.int64), chosen)
    extra = max(0, size - len(chosen))
    items = np.sort(np.concatenate([chosen, rng.choice(rest, size=extra, replace=False)]))
    return KnnData(items, catalogue.product_ids[items], catalogue.texts[items], test_ids, test_texts,
                   train_ids, train_texts, np.isin(items, chosen), len(catalogue))


def ranking(scores: np.ndarray) -> np.ndarray:
    """Every column of each row, best score first, ties by column: (Q, N) int64."""
    return top_k(np.asarray(scores), np.asarray(scores).shape[1])[0]


def dual_encoder_scores(retriever, queries, items: np.ndarray, product_embeddings: np.ndarray,
                        *, batch_size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """Dual-encoder cosines of queries against the item set.

    Args:
        retriever: a dense :class:`~graphrel.retrieval.serving.retriever.Retriever` (its query encoder).
        queries: Q texts; items: (N,) catalogue rows; product_embeddings: (catalogue, d) unit rows.

    Returns:
        scores (Q, N) float32 and the query embeddings (Q, d) float32.
    """
    embeddings = retriever.encode_queries([str(q) for q in queries], batch_size=batch_size)
    return embeddings @ product_embeddings[items].T, embeddings


def bm25_scores(bm25, queries, items: np.ndarray) -> np.ndarray:
    """BM25 scores (Q, N) of queries against the item set (a :class:`~graphrel.retrieval.search.bm25.BM25Index`
    of the whole catalogue: the catalogue's term statistics)."""
    return bm25.scores([str(q) for q in queries])[:, items]
