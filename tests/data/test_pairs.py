"""Tests for graphrel.data.pairs (synthetic files; one real-data test)."""

from __future__ import annotations

import gzip
import json
import zipfile

import numpy as np
import pandas as pd
import pytest

from graphrel.data import (
    ESCI_GAINS,
    PAIR_COLUMNS,
    RelevancePairs,
    load_dataset,
    load_esci,
    load_home_depot,
    load_pairs,
    split_by_query,
)
from graphrel.errors import GraphrelInputError

HD_HEADER = "id,product_uid,product_title,search_term,relevance\n"


def write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


def assert_user_error(excinfo, path, row=None):
    """The error names the file, the row (when given) and a fix."""
    msg = str(excinfo.value)
    assert path.name in msg
    assert "fix" in msg
    assert excinfo.value.fix
    if row is not None:
        assert f"row {row}" in msg
        assert excinfo.value.row == row


def generic_csv(tmp_path, rows, name="pairs.csv", header="query,product_id,product_text,grade"):
    return write(tmp_path / name, header + "\n" + "\n".join(rows) + "\n")


def synthetic_pairs(n_queries=50, per_query=3):
    rows = []
    for q in range(n_queries):
        for k in range(per_query):
            rows.append({"row_id": len(rows) + 1, "query_id": f"q{q}", "query": f"query {q}",
                         "product_id": f"p{q}-{k}", "product_text": f"product {k}",
                         "relevance": float(k % 3), "label": (k % 3) / 2})
    frame = pd.DataFrame(rows)[PAIR_COLUMNS]
    for col in ("query_id", "query", "product_id", "product_text"):
        frame[col] = frame[col].astype("str")
    return RelevancePairs(frame, label_min=0.0, label_max=2.0, source="synthetic")


# ----------------------------------------------------------------------------- Home Depot


def hd_zip(tmp_path, body, name="train.csv.zip"):
    path = tmp_path / name
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("train.csv", (HD_HEADER + body).encode("latin-1"))
    return path


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


# ----------------------------------------------------------------------------- ESCI


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


# ----------------------------------------------------------------------------- generic


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


def write_frame(frame, path, *, jsonl_blank_line_at=None, row_group_size=None):
    """Write ``frame`` in the format its name says (JSONL / NDJSON, Parquet, gzip or zip CSV,
    else CSV); optionally one blank JSONL line before record ``jsonl_blank_line_at``."""
    name = path.name
    if name.endswith(("jsonl", "ndjson")):
        lines = [json.dumps(r) for r in frame.to_dict("records")]
        if jsonl_blank_line_at is not None:
            lines.insert(jsonl_blank_line_at, "")
        path.write_text("".join(line + "\n" for line in lines))
    elif name.endswith(".parquet"):
        frame.to_parquet(path, row_group_size=row_group_size)
    elif name.endswith(".gz"):
        path.write_bytes(gzip.compress(frame.to_csv(index=False).encode()))
    elif name.endswith(".zip"):
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("pairs.csv", frame.to_csv(index=False))
    else:
        path.write_text(frame.to_csv(index=False))
    return path


@pytest.mark.parametrize("name", ["pairs.jsonl", "pairs.ndjson", "pairs.parquet", "pairs.csv.gz",
                                  "pairs.csv.zip", "pairs.data"])
def test_generic_formats(tmp_path, name):
    frame = pd.DataFrame({"q": ["drill", "saw"], "pid": [11, 12], "title": ["Drill", "Saw"],
                          "y": [1.0, 0.0]})
    path = write_frame(frame, tmp_path / name)
    file_format = "csv" if name.endswith(".data") else None
    pairs = load_dataset("generic", path, query_column="q", product_id_column="pid",
                         product_text_column="title", label_column="y", file_format=file_format)
    f = pairs.frame
    assert f["row_id"].tolist() == [1, 2]
    assert f["product_id"].tolist() == ["11", "12"]
    assert f["query"].tolist() == ["drill", "saw"]
    assert f["label"].tolist() == [1.0, 0.0]


def test_jsonl_row_is_line_and_bad_json(tmp_path):
    path = write(tmp_path / "pairs.jsonl", '{"query": "a", "product_id": "1", "product_text": "A"}\n'
                                           '{"query": "b", "product_id": 2, "product_text": null}\n')
    with pytest.raises(GraphrelInputError, match="empty product text") as excinfo:
        load_pairs(path)
    assert_user_error(excinfo, path, row=2)
    write(path, '{"query": "a", "product_id": "1", "product_text": "A"}\n{"query": \n')
    with pytest.raises(GraphrelInputError, match="not valid JSON") as excinfo:
        load_pairs(path)
    assert_user_error(excinfo, path, row=2)


def test_unknown_suffix(tmp_path):
    path = write(tmp_path / "pairs.txt", "query,product_id,product_text\na,1,A\n")
    with pytest.raises(GraphrelInputError, match="file format") as excinfo:
        load_pairs(path)
    assert_user_error(excinfo, path)


# ----------------------------------------------------------------------------- file errors


def test_missing_file_and_directory(tmp_path):
    path = tmp_path / "nope.csv"
    with pytest.raises(GraphrelInputError, match="not found") as excinfo:
        load_pairs(path)
    assert_user_error(excinfo, path)
    with pytest.raises(GraphrelInputError, match="directory") as excinfo:
        load_home_depot(tmp_path)
    assert_user_error(excinfo, tmp_path)


@pytest.mark.parametrize("text,match", [("", "empty"), ("\n\n", "empty"),
                                        ("query,product_id,product_text\n", "no data rows")])
def test_empty_and_header_only(tmp_path, text, match):
    path = write(tmp_path / "pairs.csv", text)
    with pytest.raises(GraphrelInputError, match=match) as excinfo:
        load_pairs(path)
    assert_user_error(excinfo, path)


def test_header_only_parquet(tmp_path):
    path = tmp_path / "pairs.parquet"
    pd.DataFrame({"query": pd.Series([], dtype=str)}).to_parquet(path)
    with pytest.raises(GraphrelInputError, match="no data rows") as excinfo:
        load_pairs(path)
    assert_user_error(excinfo, path)


def test_missing_column_names_found_columns_and_flag(tmp_path):
    path = generic_csv(tmp_path, ["drill,1,Cordless drill,1"], header="search,product_id,product_text,grade")
    with pytest.raises(GraphrelInputError) as excinfo:
        load_pairs(path)
    assert_user_error(excinfo, path)
    msg = str(excinfo.value)
    assert "'query'" in msg and "search, product_id, product_text, grade" in msg
    assert "--query-column" in msg and "query_column" in msg


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


def test_non_utf8_detected_with_line_and_row(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_bytes(b"query,product_id,product_text\nsaw,1,Saw\ncaf\xe9 table,2,Table\n")
    with pytest.raises(GraphrelInputError, match="line 3") as excinfo:
        load_pairs(path)
    assert_user_error(excinfo, path, row=2)
    assert "--encoding latin-1" in str(excinfo.value)
    pairs = load_pairs(path, encoding="latin-1")
    assert pairs.frame["query"].iloc[1] == "caf\xe9 table"


def test_utf8_bom_is_accepted(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_bytes(b"\xef\xbb\xbfquery,product_id,product_text\nsaw,1,Saw\n")
    assert load_pairs(path).frame["query"].tolist() == ["saw"]


def test_duplicates_warn_and_keep_first(tmp_path):
    path = generic_csv(tmp_path, ["drill,1,Drill,1", "drill ,1,Drill v2,0", "saw,2,Saw,0", "drill,1,Drill,0"])
    with pytest.warns(UserWarning, match="2 duplicated") as record:
        pairs = load_pairs(path, label_column="grade")
    assert "row 2" in str(record[0].message)
    assert pairs.frame["row_id"].tolist() == [1, 3]
    assert pairs.frame["product_text"].iloc[0] == "Drill"


def test_load_dataset_unknown_kind_and_option(tmp_path):
    path = generic_csv(tmp_path, ["drill,1,Drill,1"])
    with pytest.raises(GraphrelInputError, match="home_depot, esci, generic") as excinfo:
        load_dataset("wands", path)
    assert_user_error(excinfo, path)
    with pytest.raises(GraphrelInputError, match="locale") as excinfo:
        load_dataset("generic", path, locale="us")
    assert_user_error(excinfo, path)
    assert len(load_dataset("home-depot", hd_zip(tmp_path, "1,7,Hammer,hammer,3\n"))) == 1


# ----------------------------------------------------------------------------- schema + split


def test_subset_mask_and_positions():
    pairs = synthetic_pairs(n_queries=4, per_query=2)
    by_mask = pairs.subset(pairs.frame["query_id"] == "q1")
    assert by_mask.frame["row_id"].tolist() == [3, 4]
    assert by_mask.frame.index.tolist() == [0, 1]
    assert (by_mask.label_min, by_mask.label_max, by_mask.source) == (0.0, 2.0, "synthetic")
    assert pairs.subset([7, 0]).frame["row_id"].tolist() == [8, 1]
    with pytest.raises(ValueError):
        RelevancePairs(pairs.frame.drop(columns="label"))


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


# ----------------------------------------------------------------------------- real data


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


def test_keep_duplicates_keeps_every_row(tmp_path):
    import warnings as _warnings

    from graphrel.data import load_pairs

    path = tmp_path / "dup.csv"
    path.write_text("query,product_id,product_text\ndrill,1,drill bit\ndrill,1,drill bit\nhose,2,garden hose\n")
    with _warnings.catch_warnings():
        _warnings.simplefilter("error")  # no duplicate warning when duplicates are wanted
        kept = load_pairs(path, keep_duplicates=True)
    assert list(kept.frame.row_id) == [1, 2, 3]
    assert len(load_pairs(path)) == 2


# ----------------------------------------------------------------------------- chunked reading


def _chunked(kind, path, chunk_size, **options):
    from graphrel.data.pairs import iter_pairs

    chunks = list(iter_pairs(kind, path, chunk_size=chunk_size, **options))
    return chunks, pd.concat([c.frame for c in chunks], ignore_index=True)


@pytest.mark.parametrize("name", ["pairs.csv", "pairs.csv.gz", "pairs.csv.zip", "pairs.parquet", "pairs.jsonl"])
def test_iter_pairs_equals_the_whole_file_loader(tmp_path, name):
    frame = pd.DataFrame({"q": [f"query {i % 4}" for i in range(23)], "pid": list(range(23)),
                          "title": [f"Product {i}" for i in range(23)], "y": [i % 3 for i in range(23)]})
    frame.loc[5, "pid"] = 4  # a repeated pair: kept by both
    frame.loc[5, "q"] = "query 0"
    # a blank JSONL line (row ids are line numbers) and small Parquet row groups (chunks cut them)
    path = write_frame(frame, tmp_path / name, jsonl_blank_line_at=3, row_group_size=4)
    options = dict(query_column="q", product_id_column="pid", product_text_column="title", label_column="y",
                   label_min=0, label_max=2)
    whole = load_dataset("generic", path, keep_duplicates=True, **options)
    chunks, chunked = _chunked("generic", path, 5, **options)
    assert [len(c) for c in chunks] == [5, 5, 5, 5, 3]
    assert all((c.label_min, c.label_max) == (0.0, 2.0) for c in chunks)
    pd.testing.assert_frame_equal(chunked, whole.frame)


def test_iter_pairs_home_depot_and_esci_locale(tmp_path):
    hd = hd_zip(tmp_path, "".join(f"{i},{100 + i % 5},Thing {i},term {i % 3},{1 + i % 3}\n" for i in range(12)))
    _, chunked = _chunked("home-depot", hd, 5)
    pd.testing.assert_frame_equal(chunked, load_home_depot(hd, keep_duplicates=True).frame)
    esci = write(tmp_path / "esci.csv", "query,product_id,product_title,esci_label,product_locale\n" + "".join(
        f"q{i},B{i},T{i},{'ESCI'[i % 4]},{'es' if i % 3 == 0 else 'us'}\n" for i in range(10)))
    chunks, chunked = _chunked("esci", esci, 2, locale="es")
    assert [len(c) for c in chunks] == [1, 1, 0, 1, 1]  # a chunk may keep no row
    pd.testing.assert_frame_equal(chunked, load_esci(esci, locale="es").frame)
    with pytest.raises(GraphrelInputError, match="locales found: es, us"):
        _chunked("esci", esci, 2, locale="jp")


@pytest.mark.parametrize("content,needle,row", [
    (b"query,product_id,product_text\n" + b"q,1,t\n" * 11 + b"q,2,\n", "empty product text", 12),
    (b"query,product_id,product_text\n" + b"q,1,t\n" * 11 + b"caf\xe9,2,t\n", "line 13", 12),
    (b"query,product_id,product_text\n" + b"q,1,t\n" * 11 + b"q,2,t,extra\n", "malformed CSV", 12),
])
def test_iter_pairs_errors_name_the_true_row(tmp_path, content, needle, row):
    path = tmp_path / "pairs.csv"
    path.write_bytes(content)
    with pytest.raises(GraphrelInputError, match=needle) as whole:
        load_pairs(path)
    with pytest.raises(GraphrelInputError, match=needle) as chunked:
        _chunked("generic", path, 5)
    assert chunked.value.row == whole.value.row == row
    assert str(chunked.value) == str(whole.value)


def test_iter_pairs_rejects_bad_chunk_size_and_options(tmp_path):
    path = generic_csv(tmp_path, ["drill,1,Drill,1"])
    with pytest.raises(GraphrelInputError, match="chunk size"):
        _chunked("generic", path, 0)
    with pytest.raises(GraphrelInputError, match="keep_duplicates"):
        _chunked("generic", path, 5, keep_duplicates=False)


def test_missing_column_suggests_the_closest_name(tmp_path):
    path = generic_csv(tmp_path, ["drill,1,Drill,1"], header="query,product_id,product_title,grade")
    with pytest.raises(GraphrelInputError, match=r"missing column 'product_text' \(did you mean 'product_title'\?\)"):
        load_pairs(path)
