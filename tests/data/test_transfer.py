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


def test_candidates_for_named_and_extra_queries_only():
    from graphrel.data.transfer import transfer_candidates

    pairs = catalogue()
    extra = pd.DataFrame({"query_id": ["generated:0"], "query": ["garden hose reel"]})
    out = transfer_candidates(pairs, tfidf_per_query=2, random_per_query=0, for_queries=["door"], extra_queries=extra)
    assert set(out.query_id) == {"door", "generated:0"}
    assert set(out.loc[out.query_id == "generated:0", "product_text"]) <= {"garden hose 50 ft", "green garden hose"}
    assert transfer_candidates(pairs, for_queries=[]).empty


def test_generated_queries_never_repeat_a_labelled_query_text():
    from graphrel.data.transfer import generated_queries

    pairs = catalogue()
    pairs.loc[0, "query"] = "Red Brick"  # a labelled query a title yields too
    out = generated_queries(pairs, 40, seed=0)
    assert 0 < len(out) <= 40 and out.query_id.is_unique and out["query"].is_unique
    assert out.query_id.str.startswith("generated:").all()
    assert "red brick" not in set(out["query"])
    assert len(generated_queries(pairs, 3, seed=0)) == 3
    assert generated_queries(pairs, 0).empty


def test_transfer_pairs_of_generated_queries_train_and_those_of_held_out_queries_do_not():
    from graphrel.data.split import training_pairs

    pairs = pd.DataFrame({"query_id": ["a", "a", "v", "v", "t", "t", "g"],
                          "split": ["train", "transfer", "val", "transfer", "test_context", "transfer", "transfer"]})
    assert training_pairs(pairs).tolist() == [True, True, False, False, False, False, True]
