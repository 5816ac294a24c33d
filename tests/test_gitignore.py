"""The repository's .gitignore keeps datasets out of git, however they are put in data/."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from conftest import REPO_ROOT


@pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
def test_dataset_folder_and_symlink_are_ignored_but_the_data_readme_is_not(tmp_path):
    """.ci/run links data/home-depot to a shared folder: a symlink is a file to git, so the
    pattern must not need a trailing slash."""
    repo = tmp_path / "repo"
    (repo / "data" / "esci").mkdir(parents=True)
    shutil.copy(REPO_ROOT / ".gitignore", repo / ".gitignore")
    (repo / "data" / "README.md").write_text("how to get the data\n")
    (repo / "data" / "esci" / "examples.parquet").write_bytes(b"x")
    (tmp_path / "shared").mkdir()
    (repo / "data" / "home-depot").symlink_to(tmp_path / "shared", target_is_directory=True)
    (repo / "data" / "train.csv.zip").write_bytes(b"x")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    status = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=all"],
                            check=True, capture_output=True, text=True).stdout.splitlines()
    untracked = sorted(line[3:] for line in status)
    assert untracked == [".gitignore", "data/README.md"]
