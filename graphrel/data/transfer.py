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
                        seed: int = 0) -> pd.DataFrame:
    """Unlabelled candidate pairs for every query in ``pairs``.

    Args:
        pairs: labelled pairs, columns ``query_id, query, product_id, product_text``.
        tfidf_per_query: lexical top-k products per query (not already judged for it).
        random_per_query: random catalogue products per query.
        seed: random-product seed.

    Returns:
        DataFrame ``query_id, query, product_id, product_text, source`` (``"tfidf"`` or
        ``"random"``); no pair of ``pairs`` and no duplicate appears; at most
        ``tfidf_per_query + random_per_query`` rows per query. Lexical candidates share at
        least one term with the query (a query with no known term gets random ones only).
    """
    columns = ["query_id", "query", "product_id", "product_text", "source"]
    if tfidf_per_query + random_per_query <= 0 or pairs.empty:
        return pd.DataFrame(columns=columns)
    queries = pairs.drop_duplicates("query_id")[["query_id", "query"]].reset_index(drop=True)
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
