"""Tests of graphrel.data.split: the query-disjoint split."""

from __future__ import annotations

import pandas as pd
import pytest

from graphrel.data.split import split_by_query
from graphrel.errors import GraphrelInputError
from pair_files import synthetic_pairs


def test_split_is_query_disjoint_and_sized():
    pairs = synthetic_pairs(n_queries=200)
    splits = split_by_query(pairs, val_fraction=0.1, test_fraction=0.2, seed=3)
    ids = {name: set(s.frame["query_id"]) for name, s in splits.items()}
    assert not ids["train"] & ids["val"] and not ids["train"] & ids["test"] and not ids["val"] & ids["test"]
    assert ids["train"] | ids["val"] | ids["test"] == set(pairs.frame["query_id"])
    assert (len(ids["train"]), len(ids["val"]), len(ids["test"])) == (140, 20, 40)
    assert sum(len(s) for s in splits.values()) == len(pairs)


def test_split_is_seeded():
    pairs = synthetic_pairs(n_queries=100)
    a = split_by_query(pairs, seed=1)
    b = split_by_query(pairs, seed=1)
    c = split_by_query(pairs, seed=2)
    for name in ("train", "val", "test"):
        pd.testing.assert_frame_equal(a[name].frame, b[name].frame)
    assert set(a["test"].frame["query_id"]) != set(c["test"].frame["query_id"])


@pytest.mark.parametrize("val,test", [(-0.1, 0.1), (0.5, 0.5), (0.7, 0.4), (float("nan"), 0.1)])
def test_split_rejects_bad_fractions(val, test):
    with pytest.raises(GraphrelInputError, match="fix"):
        split_by_query(synthetic_pairs(n_queries=10), val_fraction=val, test_fraction=test)


def test_one_query_text_under_two_ids_stays_in_one_split():
    from graphrel.data.schema import RelevancePairs

    rows = []
    for q in range(100):
        for spelling in (f"Angle  Bracket {q}", f"angle bracket {q}", f"ＡＮＧＬＥ bracket {q}"):  # NFKC, case, spaces
            rows.append({"row_id": len(rows) + 1, "query_id": spelling, "query": spelling,
                         "product_id": f"p{len(rows)}", "product_text": "t", "relevance": 2.0, "label": 0.5})
    pairs = RelevancePairs(pd.DataFrame(rows), label_min=1, label_max=3)
    splits = split_by_query(pairs, val_fraction=0.2, test_fraction=0.2, seed=0)
    split_of = {qid: name for name, s in splits.items() for qid in s.frame["query_id"]}
    for q in range(100):
        assert len({split_of[f"Angle  Bracket {q}"], split_of[f"angle bracket {q}"],
                    split_of[f"ＡＮＧＬＥ bracket {q}"]}) == 1
    assert {len(set(s.frame["query_id"])) for s in splits.values()} == {60, 120, 60} or \
        sorted(len(set(s.frame["query_id"])) // 3 for s in splits.values()) == [20, 20, 60]
