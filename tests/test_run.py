"""graphrel.run's atomic writes: all or nothing, and the mode the umask gives a new file."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest

from graphrel.run import atomic_path, write_json, write_npy


class Crash(Exception):
    pass


def test_a_crash_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "scores.json"
    write_json({"a": 1}, path)
    with pytest.raises(Crash):
        with atomic_path(path) as tmp:
            tmp.write_text("half")
            raise Crash
    assert json.loads(path.read_text()) == {"a": 1} and os.listdir(tmp_path) == ["scores.json"]


def test_npy_is_written_to_the_name_given(tmp_path):
    write_npy(np.arange(3, dtype=np.float32), tmp_path / "chunk-00000.npy")
    write_npy(np.arange(2, dtype=np.uint64), tmp_path / "part-00000.pairs.npy")
    assert sorted(os.listdir(tmp_path)) == ["chunk-00000.npy", "part-00000.pairs.npy"]
    assert np.array_equal(np.load(tmp_path / "part-00000.pairs.npy"), np.arange(2, dtype=np.uint64))


def test_a_folder_replaces_an_existing_one_only_once_complete(tmp_path):
    target = tmp_path / "teacher"
    with atomic_path(target, directory=True) as tmp:
        (tmp / "config.json").write_text("{}")
    assert os.listdir(target) == ["config.json"]
    with pytest.raises(Crash):
        with atomic_path(target, directory=True) as tmp:
            (tmp / "half.bin").write_text("x")
            raise Crash
    assert os.listdir(target) == ["config.json"] and os.listdir(tmp_path) == ["teacher"]
    with atomic_path(target, directory=True) as tmp:
        (tmp / "model.ckpt").write_text("new")
    assert os.listdir(target) == ["model.ckpt"] and os.listdir(tmp_path) == ["teacher"]


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002])
def test_files_and_folders_get_the_mode_the_umask_gives(tmp_path, umask):
    old = os.umask(umask)
    try:
        write_npy(np.zeros(1), tmp_path / "a.npy")
        with atomic_path(tmp_path / "folder", directory=True) as tmp:
            (tmp / "inner").mkdir(mode=0o700)
            private = os.open(tmp / "inner" / "model.safetensors", os.O_WRONLY | os.O_CREAT, 0o600)
            os.close(private)  # as safetensors writes its file: private, whatever the umask
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.npy").stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE((tmp_path / "folder").stat().st_mode) == 0o777 & ~umask
    assert stat.S_IMODE((tmp_path / "folder" / "inner").stat().st_mode) == 0o777 & ~umask
    assert stat.S_IMODE((tmp_path / "folder" / "inner" / "model.safetensors").stat().st_mode) == 0o666 & ~umask


def test_test_labels_are_joined_back_only_on_request(tmp_path):
    import pandas as pd

    from graphrel.errors import GraphrelInputError
    from graphrel.run import TEST_LABELS, with_test_labels

    pairs = pd.DataFrame({"query_id": ["a", "a", "b"], "product_id": ["1", "2", "1"],
                          "split": ["train", "test", "test_context"], "relevance": [3.0, None, None],
                          "label": [1.0, None, None]})
    with pytest.raises(GraphrelInputError, match="test labels"):
        with_test_labels(pairs, tmp_path)
    pd.DataFrame({"query_id": ["b", "a"], "product_id": ["1", "2"], "relevance": [1.0, 2.0],
                  "label": [0.0, 0.5]}).to_parquet(tmp_path / TEST_LABELS)
    out = with_test_labels(pairs, tmp_path)
    assert out["label"].tolist() == [1.0, 0.5, 0.0] and out["relevance"].tolist() == [3.0, 2.0, 1.0]
    assert pairs["label"].isna().sum() == 2  # the input is not changed
