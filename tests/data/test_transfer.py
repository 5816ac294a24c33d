import pandas as pd

from graphrel.data.transfer import transfer_candidates


def catalogue():
    titles = ["red brick wall", "blue brick path", "garden hose 50 ft", "green garden hose",
              "wall paint white", "oak door", "steel door hinge", "brick mortar mix"]
    pairs = pd.DataFrame({"query_id": ["brick", "brick", "hose", "door"],
                          "product_id": ["0", "1", "2", "5"]})
    products = pd.DataFrame({"product_id": [str(i) for i in range(len(titles))], "product_text": titles})
    # every product appears in some pair so it is in the catalogue
    extra = pd.DataFrame({"query_id": ["misc"] * 4, "product_id": ["3", "4", "6", "7"]})
    pairs = pd.concat([pairs, extra]).merge(products, on="product_id")
    pairs["query"] = pairs["query_id"]
    return pairs


def test_lexical_candidates_are_new_and_relevant_looking():
    pairs = catalogue()
    out = transfer_candidates(pairs, tfidf_per_query=1, random_per_query=0)
    judged = set(zip(pairs.query_id, pairs.product_id))
    assert not judged & set(zip(out.query_id, out.product_id))
    best = dict(zip(out.query_id, out.product_text))
    assert best["brick"] == "brick mortar mix"
    assert best["hose"] == "green garden hose"
    assert best["door"] == "steel door hinge"


def test_sizes_and_no_duplicates():
    pairs = catalogue()
    out = transfer_candidates(pairs, tfidf_per_query=2, random_per_query=1, seed=3)
    assert out.groupby("query_id").size().max() <= 3
    assert not out.duplicated(["query_id", "product_id"]).any()
    assert set(out.source) <= {"tfidf", "random"}
    again = transfer_candidates(pairs, tfidf_per_query=2, random_per_query=1, seed=3)
    pd.testing.assert_frame_equal(out, again)


def test_queries_without_shared_terms_get_no_lexical_candidates():
    pairs = catalogue()
    extra = pairs.iloc[:1].assign(query_id="zzqx", query="zzqx")
    out = transfer_candidates(pd.concat([pairs, extra]), tfidf_per_query=2, random_per_query=0)
    assert "zzqx" not in set(out.query_id)
