"""Catalogue negatives of the teacher's fine-tuning pairs: never a judged product (nor its text
under another id), mined ones from BM25's top hits, reproducible, counted."""

import pandas as pd
import pytest

from graphrel.pipeline.config import PipelineConfig
from graphrel.pipeline.teacher_negatives import catalogue_negatives
from graphrel.pipeline.teacher_stages import fine_tuning_pairs

WORDS = ["drill", "paint", "hammer", "faucet", "ladder", "shelf", "lamp", "saw", "tile", "door"]


def _catalogue(n: int = 200) -> pd.DataFrame:
    # product i: two words, so BM25 has something to rank
    return pd.DataFrame({"product_id": [f"p{i}" for i in range(n)],
                         "product_text": [f"{WORDS[i % 10]} {WORDS[(i // 10) % 10]} model {i}" for i in range(n)]})


def _judged(catalogue: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for q, word in enumerate(WORDS[:5]):
        for p in range(3):  # three judged products per query, all with the query's word
            i = q + 10 * p
            rows.append((f"q{q}", f"{word}", f"p{i}", catalogue.product_text[i], 1.0))
    return pd.DataFrame(rows, columns=["query_id", "query", "product_id", "product_text", "label"])


def test_negatives_are_never_judged_products_nor_their_text_under_another_id():
    catalogue = _catalogue()
    judged = _judged(catalogue)
    # the same text as a judged product under another id must not be drawn either
    twin = pd.DataFrame({"product_id": ["twin"], "product_text": [judged.product_text[0]]})
    catalogue = pd.concat([catalogue, twin], ignore_index=True)
    negatives = catalogue_negatives(judged, catalogue, random_per_query=20, mined_per_query=5, mined_depth=40, seed=0)
    for q, rows in negatives.groupby("query_id"):
        banned = set(judged[judged.query_id == q].product_text)
        assert not set(rows.product_text) & banned
        assert not set(rows.product_id) & set(judged[judged.query_id == q].product_id)
        assert rows.product_id.is_unique
    assert (negatives.label == 0.0).all()
    assert negatives.groupby("query_id").negative.value_counts().unstack().to_dict() == {
        "mined": {f"q{q}": 5 for q in range(5)}, "random": {f"q{q}": 20 for q in range(5)}}


def test_mined_negatives_come_from_the_bm25_hits_of_the_query():
    catalogue = _catalogue()
    judged = _judged(catalogue)
    negatives = catalogue_negatives(judged, catalogue, random_per_query=0, mined_per_query=4, mined_depth=15, seed=3)
    queries = dict(zip(judged.query_id, judged["query"]))
    # every mined product shares the query's word: 38 of the 200 products hold it, more than
    # the 15 hits the negatives are drawn from
    assert all(queries[q] in text.split() for q, text in zip(negatives.query_id, negatives.product_text))


def test_the_same_seed_gives_the_same_negatives_and_another_seed_others():
    catalogue, judged = _catalogue(), _judged(_catalogue())
    draw = lambda seed: catalogue_negatives(judged, catalogue, random_per_query=3, mined_per_query=2,  # noqa: E731
                                            mined_depth=10, seed=seed)
    pd.testing.assert_frame_equal(draw(1), draw(1))
    assert not draw(1).equals(draw(2))


def test_a_small_catalogue_gives_fewer_negatives_never_a_judged_one():
    catalogue = _catalogue(12)
    judged = _judged(_catalogue()).query("query_id == 'q0'")
    judged = judged[judged.product_id.isin(catalogue.product_id)]  # p0 and p10 judged, 10 eligible
    negatives = catalogue_negatives(judged, catalogue, random_per_query=50, mined_per_query=0, mined_depth=1, seed=0)
    assert set(negatives.product_id) <= set(catalogue.product_id) - set(judged.product_id)


@pytest.mark.parametrize("kwargs", [{"random_per_query": -1}, {"mined_per_query": -1}, {"mined_depth": 0}])
def test_counts_below_their_range_raise(kwargs):
    arguments = {"random_per_query": 1, "mined_per_query": 1, "mined_depth": 5, "seed": 0, **kwargs}
    catalogue = _catalogue()
    with pytest.raises(ValueError):
        catalogue_negatives(_judged(catalogue), catalogue, **arguments)


def test_fine_tuning_pairs_add_the_negatives_of_the_sampled_queries_only_when_asked():
    catalogue = _catalogue()
    judged = _judged(catalogue).assign(split="train")
    held = judged.assign(split="val", query_id=lambda f: "v" + f.query_id)
    pairs = pd.concat([judged, held, catalogue.assign(query_id="t", query="x", label=None, split="transfer")],
                      ignore_index=True)
    config = PipelineConfig()
    config.teacher.random_negatives = 0
    assert len(fine_tuning_pairs(config, pairs)) == len(judged)
    config.teacher.random_negatives, config.teacher.mined_negatives = 2, 1
    out = fine_tuning_pairs(config, pairs)
    assert list(out.columns) == ["query", "product_text", "label"]
    assert len(out) == len(judged) + 5 * 3
    negatives = out.iloc[len(judged):]
    assert (negatives.label == 0).all() and set(negatives["query"]) == set(judged["query"])
    # drawn from the training products only: validation and transfer rows add no product
    assert set(negatives.product_text) <= set(judged.product_text)
