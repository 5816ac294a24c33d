"""Tests of graphrel.data.readers: the one chunked reader (whole file = one chunk)."""

from __future__ import annotations

import zipfile

import pandas as pd
import pytest

from graphrel.data.datasets import load_dataset
from graphrel.data.sources import load_pairs
from graphrel.errors import GraphrelInputError
from pair_files import assert_user_error, read_in_chunks, write, write_frame


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
    chunks, chunked = read_in_chunks("generic", path, 5, **options)
    assert [len(c) for c in chunks] == [5, 5, 5, 5, 3]
    assert all((c.label_min, c.label_max) == (0.0, 2.0) for c in chunks)
    pd.testing.assert_frame_equal(chunked, whole.frame)


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
        read_in_chunks("generic", path, 5)
    assert chunked.value.row == whole.value.row == row
    assert str(chunked.value) == str(whole.value)


def test_whole_file_reports_a_bad_byte_before_an_earlier_malformed_row(tmp_path):
    """The one difference of a whole-file load: its text is decoded before any row is parsed."""
    path = tmp_path / "pairs.csv"
    path.write_bytes(b"query,product_id,product_text\n" + b"q,1,t\n" * 3 + b"q,2,t,extra,more\n"
                     + b"q,1,t\n" * 300_000 + b"caf\xe9,2,t\n")  # the bad byte ~2 MB in
    with pytest.raises(GraphrelInputError, match="byte 0xE9 at line 300006") as whole:
        load_pairs(path)
    assert whole.value.row == 300_005
    with pytest.raises(GraphrelInputError, match="malformed CSV") as chunked:
        read_in_chunks("generic", path, 5)
    assert chunked.value.row == 4


def test_header_only_says_so_before_a_missing_column(tmp_path):
    path = write(tmp_path / "pairs.csv", "query,title\n")
    for read in (lambda: load_pairs(path), lambda: read_in_chunks("generic", path, 5)):
        with pytest.raises(GraphrelInputError, match="no data rows") as excinfo:
            read()
        assert_user_error(excinfo, path)


@pytest.mark.parametrize("name", ["pairs.csv.zip", "pairs.parquet.zip"])
def test_bad_zip_checksum_is_a_one_line_error(tmp_path, name):
    frame = pd.DataFrame({"query": ["drill", "saw"] * 50, "product_id": range(100), "product_text": ["t"] * 100})
    data = frame.to_csv(index=False).encode() if name.startswith("pairs.csv") else frame.to_parquet()
    path = tmp_path / name
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(name[:-len(".zip")], data)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 3] ^= 0x01  # inside the stored member: its CRC no longer matches
    path.write_bytes(bytes(raw))
    for read in (lambda: load_pairs(path), lambda: read_in_chunks("generic", path, 5)):
        with pytest.raises(GraphrelInputError, match="not a valid zip archive .*Bad CRC-32") as excinfo:
            read()
        assert_user_error(excinfo, path)
