"""Transfer set: unlabelled query-product pairs that a search log would contain.

For each query: the products a lexical retriever would show (TF-IDF cosine top-k over
the product catalogue, word unigrams and bigrams) plus a few random products, excluding
products already judged for it. The teacher scores them; students learn from those
scores and the graph gains their edges (BERT2DNN, arXiv 2010.10442, and BERM, arXiv
2210.01701, both distil on a transfer set far larger than the labelled set).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.neighbors import NearestNeighbors


def transfer_candidates(pairs: pd.DataFrame, *, tfidf_per_query: int = 2, random_per_query: int = 1,
                        seed: int = 0, for_queries=None, extra_queries: pd.DataFrame | None = None) -> pd.DataFrame:
    """Unlabelled candidate pairs for every query in ``pairs`` (or those named).

    Args:
        pairs: labelled pairs, columns ``query_id, query, product_id, product_text``; their
            products are the catalogue.
        tfidf_per_query: lexical top-k products per query (not already judged for it).
        random_per_query: random catalogue products per query.
        seed: random-product seed.
        for_queries: ids of the queries of ``pairs`` to mine for (None: all of them).
        extra_queries: ``query_id, query`` of more queries to mine for (e.g.
            :func:`generated_queries`), ids not in ``pairs``.

    Returns:
        DataFrame ``query_id, query, product_id, product_text, source`` (``"tfidf"`` or
        ``"random"``); no pair of ``pairs`` and no duplicate appears; at most
        ``tfidf_per_query + random_per_query`` rows per query. Lexical candidates share at
        least one term with the query (a query with no known term gets random ones only).
    """
    columns = ["query_id", "query", "product_id", "product_text", "source"]
    if tfidf_per_query + random_per_query <= 0 or pairs.empty:
        return pd.DataFrame(columns=columns)
    queries = pairs.drop_duplicates("query_id")[["query_id", "query"]]
    if for_queries is not None:
        queries = queries[queries["query_id"].isin(set(for_queries))]
    if extra_queries is not None:
        queries = pd.concat([queries, extra_queries[["query_id", "query"]]])
    queries = queries.reset_index(drop=True)
    if queries.empty:
        return pd.DataFrame(columns=columns)
    products = pairs.drop_duplicates("product_id")[["product_id", "product_text"]].reset_index(drop=True)
    judged = set(zip(pairs["query_id"], pairs["product_id"]))
    rows: list[tuple] = []
    product_ids = products["product_id"].to_numpy()
    if tfidf_per_query > 0:
        vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)
        catalogue = vectorizer.fit_transform(products["product_text"])
        max_judged = int(pairs.groupby("query_id").size().max())
        k = min(len(products), tfidf_per_query + max_judged)
        index = NearestNeighbors(n_neighbors=k, metric="cosine", algorithm="brute").fit(catalogue)
        distances, neighbours = index.kneighbors(vectorizer.transform(queries["query"]))
        for qid, found, distance in zip(queries["query_id"], neighbours, distances):
            taken = 0
            # cosine distance 1 = no shared term: a tie among all products, not a candidate
            for pid in product_ids[found[distance < 1 - 1e-9]]:
                if taken == tfidf_per_query:
                    break
                if (qid, pid) not in judged:
                    judged.add((qid, pid))
                    rows.append((qid, pid, "tfidf"))
                    taken += 1
    rng = np.random.default_rng(seed)
    for qid in queries["query_id"]:
        for _ in range(random_per_query):
            for _attempt in range(10):
                pid = product_ids[rng.integers(len(product_ids))]
                if (qid, pid) not in judged:
                    judged.add((qid, pid))
                    rows.append((qid, pid, "random"))
                    break
    out = pd.DataFrame(rows, columns=["query_id", "product_id", "source"])
    out = out.merge(queries, on="query_id").merge(products, on="product_id")
    return out[columns].reset_index(drop=True)


def generated_queries(pairs: pd.DataFrame, count: int, *, seed: int = 0, max_words: int = 4) -> pd.DataFrame:
    """Queries the log never held, cut from the catalogue's product titles
    (:func:`graphrel.data.query_generation.generate_queries`), for a transfer set of many
    queries: a student judged on queries new to the log needs to have seen many queries.

    None has the text key (:func:`graphrel.data.text_keys.text_keys`) of a query of ``pairs``,
    so no evaluated query enters the log under another id.

    Args:
        pairs: labelled pairs with ``query`` and ``product_text`` (their products are the catalogue).
        count: queries wanted, >= 0 (fewer when the titles give fewer distinct ones).
        seed: draws the titles and the spans.
        max_words: longest query in words.

    Returns:
        ``query_id, query``: ids ``generated:0``, ``generated:1``, ...

    Raises:
        ValueError: ``count`` < 0.
    """
    from graphrel.data.query_generation import generate_queries
    from graphrel.data.text_keys import text_keys

    if isinstance(count, bool) or int(count) != count or count < 0:
        raise ValueError(f"count must be a whole number >= 0, got {count!r}")
    titles = pairs["product_text"].drop_duplicates().to_numpy(dtype=object)
    titles = titles[np.random.default_rng(seed).permutation(len(titles))]
    per_product = max(1, -(-int(count) // max(len(titles), 1)))
    found = generate_queries(titles, per_product=per_product, max_words=max_words, seed=seed) if count else []
    taken = set(text_keys(pairs["query"]))
    keys = text_keys(found).tolist() if found else []
    kept = [query for query, key in zip(found, keys) if key not in taken][:int(count)]
    return pd.DataFrame({"query_id": [f"generated:{i}" for i in range(len(kept))], "query": kept})
