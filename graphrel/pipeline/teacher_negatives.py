"""Catalogue negatives for the cross-encoder teacher: products nobody judged for a query, added
to its fine-tuning pairs at the bottom of the label scale.

Every judged pair of a search log is a product the shop's own search returned for the query,
so a teacher fine-tuned on judged pairs alone never sees an unrelated product, and re-ranking a
retriever's top 100 from the whole catalogue it lifts unrelated products (the failure hard
negatives address in RocketQA, Qu et al., NAACL 2021, and in the cross-encoder training of
Nogueira & Cho, arXiv 1901.04085). Two kinds per training query:

- **random**: products drawn uniformly from the training products;
- **mined**: drawn uniformly from BM25's top ``mined_depth`` training products for the query
  (:class:`graphrel.retrieval.search.bm25.BM25Index`), harder than random but, deeper in the
  list, less often an unjudged relevant product than the very top hits.

Neither ever is a product judged for the query, nor one with the same text as a judged product
(the same text under another id). Products are drawn from the training split only, so no
product text the teacher learns from comes from validation or test pairs alone.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Columns of a negatives frame (those of the judged pairs it joins, plus its kind).
COLUMNS = ("query_id", "query", "product_id", "product_text", "label", "negative")


def catalogue_negatives(judged: pd.DataFrame, catalogue: pd.DataFrame, *, random_per_query: int,
                        mined_per_query: int, mined_depth: int, seed: int) -> pd.DataFrame:
    """Negatives for every query of ``judged``, labelled 0 (the bottom of the normalised scale).

    Args:
        judged: judged pairs (columns ``query_id``, ``query``, ``product_id``, ``product_text``).
        catalogue: the products to draw from (``product_id``, ``product_text``; repeated ids
            are read once).
        random_per_query: random negatives per query (>= 0).
        mined_per_query: BM25-mined negatives per query (>= 0).
        mined_depth: BM25 hits per query the mined negatives are drawn from (>= 1).
        seed: the draw's seed (the same inputs and seed give the same frame).

    Returns:
        one row per negative, columns :data:`COLUMNS` (``label`` 0.0, ``negative``
        ``"random"`` or ``"mined"``); a query gets fewer when the catalogue holds fewer
        eligible products. No (query, product) appears twice.

    Raises:
        ValueError: a count < 0 or ``mined_depth`` < 1.
    """
    if random_per_query < 0 or mined_per_query < 0 or mined_depth < 1:
        raise ValueError(f"need random_per_query >= 0, mined_per_query >= 0, mined_depth >= 1; got "
                         f"{random_per_query}, {mined_per_query}, {mined_depth}")
    products = catalogue.drop_duplicates("product_id")
    ids = products["product_id"].astype(str).to_numpy()
    texts = products["product_text"].astype(str).to_numpy()
    queries = judged.drop_duplicates("query_id")[["query_id", "query"]]
    banned = judged.assign(product_text=judged["product_text"].astype(str)).groupby("query_id")["product_text"] \
        .agg(set).to_dict()
    rng = np.random.default_rng(seed)
    chosen: dict = {q: [] for q in queries["query_id"]}
    kinds: dict = {q: [] for q in queries["query_id"]}

    def take(query_id, rows, count: int, kind: str) -> None:
        for row in rows:
            if count == 0:
                return
            if texts[row] in banned[query_id] or row in chosen[query_id]:
                continue
            chosen[query_id].append(int(row))
            kinds[query_id].append(kind)
            count -= 1

    if mined_per_query:
        from graphrel.retrieval.search.bm25 import BM25Index

        hits, _ = BM25Index(texts).search(list(queries["query"].astype(str)), mined_depth)
        for query_id, row in zip(queries["query_id"], hits):
            take(query_id, rng.permutation(row), mined_per_query, "mined")
    if random_per_query:
        for query_id in queries["query_id"]:
            # more draws than needed: a few may be judged, repeated or already mined
            take(query_id, rng.integers(0, len(ids), size=4 * random_per_query + 8), random_per_query, "random")
    text_of = dict(zip(queries["query_id"], queries["query"]))
    rows = [(q, text_of[q], ids[r], texts[r], 0.0, kind)
            for q in chosen for r, kind in zip(chosen[q], kinds[q])]
    return pd.DataFrame(rows, columns=list(COLUMNS))
