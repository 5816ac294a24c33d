"""Tests of graphrel.data.files: path, format, compression and text encoding (through the loaders)."""

from __future__ import annotations

import pandas as pd
import pytest

from graphrel.data.datasets import load_dataset
from graphrel.data.sources import load_home_depot, load_pairs
from graphrel.errors import GraphrelInputError
from pair_files import assert_user_error, write, write_frame


def test_missing_file_and_directory(tmp_path):
    path = tmp_path / "nope.csv"
    with pytest.raises(GraphrelInputError, match="not found") as excinfo:
        load_pairs(path)
    assert_user_error(excinfo, path)
    with pytest.raises(GraphrelInputError, match="directory") as excinfo:
        load_home_depot(tmp_path)
    assert_user_error(excinfo, tmp_path)


def test_unknown_suffix(tmp_path):
    path = write(tmp_path / "pairs.txt", "query,product_id,product_text\na,1,A\n")
    with pytest.raises(GraphrelInputError, match="file format") as excinfo:
        load_pairs(path)
    assert_user_error(excinfo, path)


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
