"""Tests of graphrel.data.datasets: loading by dataset kind, whole or in chunks."""

from __future__ import annotations

import pandas as pd
import pytest

from graphrel.data.datasets import load_dataset
from graphrel.data.sources import load_esci, load_home_depot
from graphrel.errors import GraphrelInputError
from pair_files import assert_user_error, generic_csv, hd_zip, read_in_chunks, write


def test_load_dataset_unknown_kind_and_option(tmp_path):
    path = generic_csv(tmp_path, ["drill,1,Drill,1"])
    with pytest.raises(GraphrelInputError, match="home_depot, esci, generic") as excinfo:
        load_dataset("wands", path)
    assert_user_error(excinfo, path)
    with pytest.raises(GraphrelInputError, match="locale") as excinfo:
        load_dataset("generic", path, locale="us")
    assert_user_error(excinfo, path)
    assert len(load_dataset("home-depot", hd_zip(tmp_path, "1,7,Hammer,hammer,3\n"))) == 1


def test_iter_pairs_home_depot_and_esci_locale(tmp_path):
    hd = hd_zip(tmp_path, "".join(f"{i},{100 + i % 5},Thing {i},term {i % 3},{1 + i % 3}\n" for i in range(12)))
    _, chunked = read_in_chunks("home-depot", hd, 5)
    pd.testing.assert_frame_equal(chunked, load_home_depot(hd, keep_duplicates=True).frame)
    esci = write(tmp_path / "esci.csv", "query,product_id,product_title,esci_label,product_locale\n" + "".join(
        f"q{i},B{i},T{i},{'ESCI'[i % 4]},{'es' if i % 3 == 0 else 'us'}\n" for i in range(10)))
    chunks, chunked = read_in_chunks("esci", esci, 2, locale="es")
    assert [len(c) for c in chunks] == [1, 1, 0, 1, 1]  # a chunk may keep no row
    pd.testing.assert_frame_equal(chunked, load_esci(esci, locale="es").frame)
    with pytest.raises(GraphrelInputError, match="locales found: es, us"):
        read_in_chunks("esci", esci, 2, locale="jp")


def test_iter_pairs_rejects_bad_chunk_size_and_options(tmp_path):
    path = generic_csv(tmp_path, ["drill,1,Drill,1"])
    with pytest.raises(GraphrelInputError, match="chunk size"):
        read_in_chunks("generic", path, 0)
    with pytest.raises(GraphrelInputError, match="keep_duplicates"):
        read_in_chunks("generic", path, 5, keep_duplicates=False)
