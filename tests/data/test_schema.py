"""Tests of graphrel.data.schema: the table, the columns read, value validation (through the loaders)."""

from __future__ import annotations

import pytest

from graphrel.data.schema import RelevancePairs
from graphrel.data.sources import load_pairs
from graphrel.errors import GraphrelInputError
from pair_files import assert_user_error, generic_csv, synthetic_pairs


def test_subset_mask_and_positions():
    pairs = synthetic_pairs(n_queries=4, per_query=2)
    by_mask = pairs.subset(pairs.frame["query_id"] == "q1")
    assert by_mask.frame["row_id"].tolist() == [3, 4]
    assert by_mask.frame.index.tolist() == [0, 1]
    assert (by_mask.label_min, by_mask.label_max, by_mask.source) == (0.0, 2.0, "synthetic")
    assert pairs.subset([7, 0]).frame["row_id"].tolist() == [8, 1]
    with pytest.raises(ValueError):
        RelevancePairs(pairs.frame.drop(columns="label"))


def test_missing_column_names_found_columns_and_flag(tmp_path):
    path = generic_csv(tmp_path, ["drill,1,Cordless drill,1"], header="search,product_id,product_text,grade")
    with pytest.raises(GraphrelInputError) as excinfo:
        load_pairs(path)
    assert_user_error(excinfo, path)
    msg = str(excinfo.value)
    assert "'query'" in msg and "search, product_id, product_text, grade" in msg
    assert "--query-column" in msg and "query_column" in msg


def test_missing_column_suggests_the_closest_name(tmp_path):
    path = generic_csv(tmp_path, ["drill,1,Drill,1"], header="query,product_id,product_title,grade")
    with pytest.raises(GraphrelInputError, match=r"missing column 'product_text' \(did you mean 'product_title'\?\)"):
        load_pairs(path)


@pytest.mark.parametrize("row,what", [
    ("  ,1,Drill", "empty query text"),
    (",1,Drill", "empty query text"),
    ("drill,,Drill", "empty product id"),
    ("drill,1,", "empty product text"),
    ("drill,1, ", "empty product text"),
])
def test_empty_fields(tmp_path, row, what):
    path = generic_csv(tmp_path, ["saw,9,Saw", "hammer,8,Hammer", row], header="query,product_id,product_text")
    with pytest.raises(GraphrelInputError, match=what) as excinfo:
        load_pairs(path)
    assert_user_error(excinfo, path, row=3)


def test_label_not_numeric(tmp_path):
    path = generic_csv(tmp_path, ["drill,1,Drill,1", "saw,2,Saw,good"])
    with pytest.raises(GraphrelInputError, match="not a number") as excinfo:
        load_pairs(path, label_column="grade", label_min=0, label_max=3)
    assert_user_error(excinfo, path, row=2)


def test_label_out_of_range(tmp_path):
    path = generic_csv(tmp_path, ["drill,1,Drill,1", "saw,2,Saw,2", "axe,3,Axe,-1"])
    with pytest.raises(GraphrelInputError, match=r"outside \[0, 3\]") as excinfo:
        load_pairs(path, label_column="grade", label_min=0, label_max=3)
    assert_user_error(excinfo, path, row=3)


def test_duplicates_warn_and_keep_first(tmp_path):
    path = generic_csv(tmp_path, ["drill,1,Drill,1", "drill ,1,Drill v2,0", "saw,2,Saw,0", "drill,1,Drill,0"])
    with pytest.warns(UserWarning, match="2 duplicated") as record:
        pairs = load_pairs(path, label_column="grade")
    assert "row 2" in str(record[0].message)
    assert pairs.frame["row_id"].tolist() == [1, 3]
    assert pairs.frame["product_text"].iloc[0] == "Drill"


def test_keep_duplicates_keeps_every_row(tmp_path):
    import warnings as _warnings

    path = tmp_path / "dup.csv"
    path.write_text("query,product_id,product_text\ndrill,1,drill bit\ndrill,1,drill bit\nhose,2,garden hose\n")
    with _warnings.catch_warnings():
        _warnings.simplefilter("error")  # no duplicate warning when duplicates are wanted
        kept = load_pairs(path, keep_duplicates=True)
    assert list(kept.frame.row_id) == [1, 2, 3]
    assert len(load_pairs(path)) == 2


def test_ids_as_text_keep_their_digits_whatever_the_column_type():
    """One id-to-text rule for every loader and both retrieval engines: whole floats and
    decimals (Parquet / Spark decimal columns) as their digits, other decimals in plain notation."""
    from decimal import Decimal

    import pandas as pd

    from graphrel.data.schema import as_text

    values = pd.Series([12300000000.0, Decimal("7.00"), Decimal("2.50"), Decimal("1E+3"), "q-7", None], dtype=object)
    assert as_text(values).tolist()[:5] == ["12300000000", "7", "2.50", "1000", "q-7"]
    assert pd.isna(as_text(values).iloc[5])
