"""Tests of graphrel.explore.egograph: the ego graph on a generic graph and on a tiny run."""

from __future__ import annotations

import networkx as nx
import pandas as pd
import pytest

from explore_run import busy_query, generic_graph, opened, pairs, real_data, run_dir  # noqa: F401 (fixtures)
from graphrel.errors import GraphrelInputError
from graphrel.explore import neighborhood
from graphrel.explore.command import inspect_command
from graphrel.run import load_run_graph


def test_generic_graph_two_hops_by_query_text(generic_graph):
    ego = neighborhood(generic_graph, query="cordless drill", hops=2)
    assert ego.graph["centre"] == "query:q1"
    hop = nx.get_node_attributes(ego, "hop")
    assert {n for n, h in hop.items() if h == 1} == {"product:p1", "product:p2", "product:p3"}
    assert {n for n, h in hop.items() if h == 2} == {"query:q2", "query:q3"}
    assert ego.nodes["query:q1"] == {"type": "query", "node_id": "q1", "text": "cordless drill", "degree": 3, "hop": 0}
    assert ego.nodes["product:p2"]["degree"] == 2
    edge = ego.edges["query:q1", "product:p1"]
    assert edge == pytest.approx({"teacher_score": 0.9, "split": "train", "label": 1.0})
    assert "label" not in ego.edges["query:q1", "product:p2"]  # the graph keeps train labels only
    assert ego.edges["query:q2", "product:p2"]["split"] == "test"
    assert all("student_score" not in d for _, _, d in ego.edges(data=True))


def test_generic_graph_by_product_hops_and_cap(generic_graph):
    assert set(neighborhood(generic_graph, product_id="p4", hops=1)) == {"product:p4", "query:q3", "query:q4"}
    assert set(neighborhood(generic_graph, product_id="p4", hops=0)) == {"product:p4"}
    three = neighborhood(generic_graph, product_id="p4", hops=3)
    assert set(three) == {"product:p4", "query:q3", "query:q4", "product:p3", "query:q1"}
    capped = neighborhood(generic_graph, query="q1", hops=1, max_per_hop=2)
    assert set(capped) == {"query:q1", "product:p1", "product:p2"}  # the two best teacher scores


@pytest.mark.parametrize("hops", [-1, 5, 1000])
def test_hops_out_of_range(generic_graph, hops):
    with pytest.raises(GraphrelInputError, match="hops must be an integer from 0 to 4") as error:
        neighborhood(generic_graph, query="q1", hops=hops)
    assert "fix:" in str(error.value)


def test_unknown_centre_suggests_close_ones(generic_graph):
    with pytest.raises(GraphrelInputError, match=r"unknown query 'cordles drill'; closest: 'cordless drill'"):
        neighborhood(generic_graph, query="cordles drill")
    with pytest.raises(GraphrelInputError, match=r"unknown product id 'p44'.*closest ids: 'p4'"):
        neighborhood(generic_graph, product_id="p44")
    with pytest.raises(GraphrelInputError, match=r"products whose text is close: 'p4' \(hose reel\)"):
        neighborhood(generic_graph, product_id="hose reels")
    with pytest.raises(GraphrelInputError, match="exactly one centre"):
        neighborhood(generic_graph, query="q1", product_id="p1")


def test_missing_run_dir(tmp_path):
    with pytest.raises(GraphrelInputError, match="run directory not found") as error:
        neighborhood(tmp_path / "no-run", query="anything")
    assert "no-run" in str(error.value) and "fix:" in str(error.value)
    with pytest.raises(GraphrelInputError, match="run directory not found"):
        inspect_command(["--run-dir", str(tmp_path / "no-run"), "--query", "anything"])
    with pytest.raises(GraphrelInputError, match="graph not found"):  # a directory that is not a run
        neighborhood(tmp_path, query="anything")


@real_data
def test_two_hops_match_the_raw_pairs(opened, pairs, busy_query):
    ego = neighborhood(opened, query=busy_query, hops=2)
    own = pairs[pairs["query_id"] == busy_query]
    products = {f"product:{p}" for p in own["product_id"]}
    centre = f"query:{busy_query}"
    assert set(ego.neighbors(centre)) == products
    assert {n for n, d in ego.nodes(data=True) if d["hop"] == 1} == products
    expected_two_hop = set()
    for product_id in own["product_id"]:
        others = set(pairs.loc[pairs["product_id"] == product_id, "query_id"]) - {busy_query}
        assert set(ego.neighbors(f"product:{product_id}")) - {centre} == {f"query:{q}" for q in others}
        expected_two_hop |= {f"query:{q}" for q in others}
    assert {n for n, d in ego.nodes(data=True) if d["hop"] == 2} == expected_two_hop
    assert len(expected_two_hop) > 0

    # Attributes against the raw pairs: degree, teacher score, split, labels (test hidden), student.
    query_names, product_names = "query:" + pairs["query_id"], "product:" + pairs["product_id"]
    degree = pd.concat([query_names, product_names]).value_counts()
    for name, data in ego.nodes(data=True):
        assert data["degree"] == degree[name]
    rows = pairs.set_index([query_names, product_names])
    splits = set()
    for a, b, data in ego.edges(data=True):
        key = (a, b) if a.startswith("query:") else (b, a)
        row = rows.loc[key]
        splits.add(row["split"])
        assert data["teacher_score"] == pytest.approx(row["teacher_score"], abs=1e-6)
        assert data["split"] == row["split"]
        assert 0.0 <= data["student_score"] <= 1.0
        if row["split"] in ("train", "val"):
            assert data["label"] == pytest.approx(row["label"])
        else:
            assert "label" not in data
    assert "train" in splits

    with_test = neighborhood(opened, query=busy_query, hops=2, label_splits=("train", "val", "test"), student=False)
    test_edges = [d for _, _, d in with_test.edges(data=True) if d["split"] == "test"]
    assert all("label" in d for d in test_edges)
    assert all("student_score" not in d for _, _, d in with_test.edges(data=True))


@real_data
def test_graph_from_heterodata_matches_run(run_dir, opened, busy_query):
    from_graph = neighborhood(load_run_graph(run_dir), query=busy_query, hops=2)
    from_run = neighborhood(opened, query=busy_query, hops=2, student=False)
    assert set(from_graph.nodes) == set(from_run.nodes) and set(from_graph.edges) == set(from_run.edges)
    assert all(d.get("split") == "train" for _, _, d in from_graph.edges(data=True) if "label" in d)
