"""Tests of graphrel.data.sources: Home Depot, ESCI and generic (synthetic files; one real-data test)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from graphrel.data.datasets import load_dataset
from graphrel.data.schema import PAIR_COLUMNS
from graphrel.data.sources import ESCI_GAINS, load_esci, load_home_depot, load_pairs
from graphrel.data.split import split_by_query
from graphrel.errors import GraphrelInputError
from pair_files import assert_user_error, generic_csv, hd_zip, write


def test_home_depot_zip_happy_path(tmp_path):
    path = hd_zip(tmp_path, "2,100001,Caf\xe9 chair oak,  oak chair ,3\n"
                            "3,100001,Caf\xe9 chair oak,table lamp,1\n"
                            "9,100002,Desk lamp,table lamp,2.33\n")
    pairs = load_home_depot(path)
    f = pairs.frame
    assert list(f.columns) == PAIR_COLUMNS
    assert len(pairs) == 3 and pairs.has_labels
    assert f["row_id"].dtype == np.int64 and f["row_id"].tolist() == [1, 2, 3]
    for col in ("query_id", "query", "product_id", "product_text"):
        assert pd.api.types.is_string_dtype(f[col])
    assert f["query"].tolist() == ["oak chair", "table lamp", "table lamp"]
    assert f["query_id"].tolist() == f["query"].tolist()
    assert f["product_id"].tolist() == ["100001", "100001", "100002"]
    assert f["product_text"].iloc[0] == "Caf\xe9 chair oak"  # latin-1 decoded
    assert (pairs.label_min, pairs.label_max) == (1.0, 3.0)
    assert f["relevance"].dtype == np.float64
    np.testing.assert_allclose(f["label"], [1.0, 0.0, 0.665])
    assert pairs.source == str(path)


def test_home_depot_plain_csv_without_relevance(tmp_path):
    path = write(tmp_path / "test.csv", "id,product_uid,product_title,search_term\n1,7,Hammer,hammer\n",
                 "latin-1")
    pairs = load_home_depot(path)
    assert len(pairs) == 1 and not pairs.has_labels
    assert pairs.frame["label"].isna().all()


def test_home_depot_missing_column(tmp_path):
    path = write(tmp_path / "train.csv", "id,product_uid,product_title,query\n1,7,Hammer,hammer\n")
    with pytest.raises(GraphrelInputError) as excinfo:
        load_home_depot(path)
    assert_user_error(excinfo, path)
    msg = str(excinfo.value)
    assert "'search_term'" in msg and "columns found: id, product_uid, product_title, query" in msg
    assert "generic" in msg


def test_home_depot_relevance_out_of_range(tmp_path):
    path = hd_zip(tmp_path, "1,7,Hammer,hammer,3\n2,8,Saw,saw,4\n")
    with pytest.raises(GraphrelInputError, match="outside") as excinfo:
        load_home_depot(path)
    assert_user_error(excinfo, path, row=2)


def test_esci_csv_mapping_and_derived_query_id(tmp_path):
    path = write(tmp_path / "esci.csv", "query,product_id,product_title,esci_label\n"
                                        "red shoes ,B1,Red shoe,E\n"
                                        "red shoes,B2,Blue shoe,S\n"
                                        "red shoes,B3,Shoe polish,C\n"
                                        "red shoes,B4,Garden hose,I\n"
                                        "blue hat,B5,Blue hat,Exact\n")
    pairs = load_esci(path)
    f = pairs.frame
    assert f["relevance"].tolist() == [1.0, 0.1, 0.01, 0.0, 1.0]
    assert f["label"].tolist() == f["relevance"].tolist()
    assert f["query_id"].tolist() == ["red shoes"] * 4 + ["blue hat"]
    assert (pairs.label_min, pairs.label_max) == (0.0, 1.0)
    assert ESCI_GAINS == {"E": 1.0, "S": 0.1, "C": 0.01, "I": 0.0}


def test_esci_parquet_locale_filter_keeps_row_ids(tmp_path):
    path = tmp_path / "examples.parquet"
    pd.DataFrame({
        "example_id": [0, 1, 2, 3],
        "query": ["lamp", "lampara", "lamp", "lampara"],
        "query_id": [10, 20, 10, 20],
        "product_id": ["B1", "B2", "B3", "B4"],
        "product_locale": ["us", "es", "us", "es"],
        "esci_label": ["E", "I", "S", "C"],
        "product_title": ["Lamp", "Lampara", "Desk lamp", "Bombilla"],
    }).to_parquet(path)
    pairs = load_esci(path, locale="es")
    f = pairs.frame
    assert f["row_id"].tolist() == [2, 4]
    assert f["query_id"].tolist() == ["20", "20"]
    assert f["relevance"].tolist() == [0.0, 0.01]
    assert len(load_dataset("esci", path)) == 4


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_esci_empty_query_id_column_is_derived_from_the_query(tmp_path, suffix):
    """A query_id column that holds no value at all counts as absent: ids from the query text."""
    frame = pd.DataFrame({"query_id": [None, None, None], "query": ["red shoes ", "red shoes", "blue hat"],
                          "product_id": ["B1", "B2", "B3"], "product_title": ["Red shoe", "Blue shoe", "Hat"],
                          "esci_label": ["E", "S", "I"]})
    path = tmp_path / f"esci.{suffix}"
    if suffix == "csv":
        frame.to_csv(path, index=False)  # an empty column: "query_id,query,...\n,red shoes ,..."
    else:
        frame.to_parquet(path)
    f = load_esci(path).frame
    assert f["query_id"].tolist() == ["red shoes", "red shoes", "blue hat"]
    # a column with some ids is still checked row by row
    frame.loc[0, "query_id"] = "q1"
    frame.to_csv(tmp_path / "partial.csv", index=False)
    with pytest.raises(GraphrelInputError, match="empty query id") as excinfo:
        load_esci(tmp_path / "partial.csv")
    assert_user_error(excinfo, tmp_path / "partial.csv", row=2)


def test_esci_unknown_label_and_unknown_locale(tmp_path):
    path = write(tmp_path / "esci.csv", "query,product_id,product_title,esci_label,product_locale\n"
                                        "lamp,B1,Lamp,E,us\nlamp,B2,Desk lamp,X,us\n")
    with pytest.raises(GraphrelInputError, match="esci_label") as excinfo:
        load_esci(path)
    assert_user_error(excinfo, path, row=2)
    with pytest.raises(GraphrelInputError, match="locales found: us") as excinfo:
        load_esci(path, locale="jp")
    assert_user_error(excinfo, path)


def test_esci_missing_column_points_to_merge(tmp_path):
    path = write(tmp_path / "examples.csv", "query,product_id,esci_label\nlamp,B1,E\n")
    with pytest.raises(GraphrelInputError, match="'product_title'") as excinfo:
        load_esci(path)
    assert_user_error(excinfo, path)
    assert "merge" in str(excinfo.value)


def test_generic_csv_with_label_scale(tmp_path):
    path = generic_csv(tmp_path, ["drill,1,Cordless drill,5", "drill,2,Drill bits,3", "saw,3,Hand saw,"])
    pairs = load_pairs(path, label_column="grade", label_min=1, label_max=5)
    f = pairs.frame
    assert f["relevance"].tolist()[:2] == [5.0, 3.0] and np.isnan(f["relevance"].iloc[2])
    assert f["label"].tolist()[:2] == [1.0, 0.5] and np.isnan(f["label"].iloc[2])
    assert f["product_id"].tolist() == ["1", "2", "3"]
    assert (pairs.label_min, pairs.label_max) == (1.0, 5.0)


def test_generic_labels_in_unit_interval_need_no_scale(tmp_path):
    path = generic_csv(tmp_path, ["drill,1,Cordless drill,0.75", "saw,3,Hand saw,0"])
    pairs = load_pairs(path, label_column="grade")
    assert pairs.frame["label"].tolist() == [0.75, 0.0]
    assert (pairs.label_min, pairs.label_max) == (0.0, 1.0)


def test_generic_labels_outside_unit_interval_need_scale(tmp_path):
    path = generic_csv(tmp_path, ["drill,1,Cordless drill,4", "saw,3,Hand saw,2"])
    with pytest.raises(GraphrelInputError, match="--label-min") as excinfo:
        load_pairs(path, label_column="grade")
    assert_user_error(excinfo, path)
    with pytest.raises(GraphrelInputError, match="only one") as excinfo:
        load_pairs(path, label_column="grade", label_min=1)
    assert_user_error(excinfo, path)


def test_generic_without_labels_and_query_id_column(tmp_path):
    path = write(tmp_path / "pairs.csv", "qid,query,product_id,product_text\n"
                                         "7,drill,1,Cordless drill\n8,drill,1,Cordless drill\n")
    pairs = load_pairs(path, query_id_column="qid")
    assert not pairs.has_labels
    assert pairs.frame["query_id"].tolist() == ["7", "8"]
    assert pairs.frame["relevance"].isna().all()


@pytest.mark.real_data
def test_real_home_depot(home_depot_path):
    pairs = load_home_depot(home_depot_path)
    f = pairs.frame
    assert len(pairs) == 74_067
    assert f["query_id"].nunique() == 11_795
    assert f["row_id"].tolist() == list(range(1, 74_068))
    assert f["label"].between(0.0, 1.0).all()
    assert (pairs.label_min, pairs.label_max) == (1.0, 3.0)
    splits = split_by_query(pairs, val_fraction=0.1, test_fraction=0.1, seed=0)
    ids = {name: set(s.frame["query_id"]) for name, s in splits.items()}
    assert not ids["train"] & ids["val"] and not ids["train"] & ids["test"] and not ids["val"] & ids["test"]
    assert sum(len(s) for s in splits.values()) == len(pairs)
    assert abs(len(ids["test"]) / 11_795 - 0.1) < 0.001
