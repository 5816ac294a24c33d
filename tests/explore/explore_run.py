"""Helpers of the graphrel.explore tests: a generic graph (no data needed) and a tiny run.

The tiny run is built once per test session from a slice of the real Home Depot data
(``configs/tiny_test.yaml``: tiny random models, well under a minute), however many test
modules use it; the fixtures below are imported by each module that needs them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from graphrel.data.graph import build_graph
from graphrel.explore import InspectedRun
from graphrel.run import load_run_pairs

real_data = pytest.mark.real_data

_RUNS: dict[str, object] = {}  # the tiny run of this session, built by the first module that asks


def generic_edges() -> pd.DataFrame:
    rows = [  # query_id, query, product_id, product_text, teacher_score, split, label
        ("q1", "cordless drill", "p1", "18V cordless drill kit", 0.9, "train", 1.0),
        ("q1", "cordless drill", "p2", "drill bit set", 0.6, "val", 0.5),
        ("q1", "cordless drill", "p3", "garden hose", 0.1, "transfer", np.nan),
        ("q2", "drill bits", "p2", "drill bit set", 0.95, "test", 1.0),
        ("q3", "hose", "p3", "garden hose", 0.8, "train", 0.75),
        ("q3", "hose", "p4", "hose reel", 0.7, "train", 0.5),
        ("q4", "reel", "p4", "hose reel", 0.5, "train", 0.5),
    ]
    return pd.DataFrame(rows, columns=["query_id", "query", "product_id", "product_text", "teacher_score",
                                       "split", "label"])


@pytest.fixture
def generic_graph():
    return build_graph(generic_edges(), label_splits=("train",))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from conftest import REPO_ROOT, real_data_path

    from graphrel.cli import main

    path = real_data_path()
    if path is None:
        pytest.skip("real Home Depot data not found (see data/README.md)")
    if "tiny" not in _RUNS:
        run = tmp_path_factory.mktemp("inspect") / "run"
        assert main(["pipeline", "--config", str(REPO_ROOT / "configs" / "tiny_test.yaml"), "--data.path", str(path),
                     "--run-dir", str(run), "--no-progress"]) == 0
        _RUNS["tiny"] = run
    return _RUNS["tiny"]


@pytest.fixture(scope="module")
def opened(run_dir):
    return InspectedRun(run_dir)


@pytest.fixture(scope="module")
def pairs(run_dir):
    """The run's pairs that are edges of its graph: every pair but the evaluated test pairs."""
    pairs = load_run_pairs(run_dir)
    return pairs[pairs["split"] != "test"]


@pytest.fixture(scope="module")
def busy_query(pairs):
    """A query whose products have other queries (a real 2-hop neighbourhood)."""
    per_product = pairs.groupby("product_id")["query_id"].nunique()
    shared = pairs[pairs["product_id"].map(per_product) > 1]
    return shared["query_id"].value_counts().index[0]


@pytest.fixture(scope="module")
def rich_pair(pairs):
    """A pair whose query has several other products and whose product has other queries."""
    queries_per_product = pairs.groupby("product_id")["query_id"].nunique()
    products_per_query = pairs.groupby("query_id")["product_id"].nunique()
    ok = pairs[(pairs["product_id"].map(queries_per_product) >= 2) & (pairs["query_id"].map(products_per_query) >= 4)]
    row = ok.sort_values(["query_id", "product_id"]).iloc[0]
    return row["query_id"], row["product_id"], row["product_text"]
