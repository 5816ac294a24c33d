"""Tests of graphrel.explore.export: node-link JSON and GraphML round trips."""

from __future__ import annotations

import json

import networkx as nx
import pytest

from explore_run import busy_query, opened, pairs, real_data, rich_pair, run_dir  # noqa: F401 (fixtures)
from graphrel.explore import neighborhood
from graphrel.explore.command import inspect_command


def _same_graph(read: nx.Graph, ego: nx.Graph) -> None:
    assert set(read.nodes) == set(ego.nodes)
    for name, data in ego.nodes(data=True):
        assert read.nodes[name] == data, name
    assert {frozenset(e) for e in read.edges} == {frozenset(e) for e in ego.edges}
    for a, b, data in ego.edges(data=True):
        assert read.edges[a, b] == pytest.approx(data), (a, b)


@real_data
def test_json_round_trip(run_dir, opened, busy_query, rich_pair, tmp_path):
    out = tmp_path / "ego.json"
    query, product_id, _ = rich_pair
    inspect_command(["--run-dir", str(run_dir), "--query", query, "--pair-product-id", product_id,
                     "--format", "json", "--out", str(out)])
    read = nx.node_link_graph(json.loads(out.read_text()), edges="edges")
    _same_graph(read, neighborhood(opened, query=query, hops=2))
    assert read.graph["centre"] == f"query:{query}" and read.graph["hops"] == 2
    pair = read.graph["pair"]
    assert pair["product_id"] == product_id and 0 <= pair["score"] <= 1
    assert {"metapath", "attention", "contribution"} <= set(pair["neighbours"][0])


@real_data
def test_graphml_round_trip(run_dir, opened, busy_query, tmp_path):
    out = tmp_path / "ego.graphml"
    inspect_command(["--run-dir", str(run_dir), "--query", busy_query, "--max-per-hop", "8",
                     "--format", "graphml", "--out", str(out)])
    read = nx.read_graphml(out)
    ego = neighborhood(opened, query=busy_query, hops=2, max_per_hop=8)
    _same_graph(read, ego)
    assert any("label" in d for _, _, d in read.edges(data=True))
    assert any("label" not in d for _, _, d in read.edges(data=True))  # absent, not NaN
    assert read.graph["max_per_hop"] == 8 and read.graph["student"] == "student_korder"
    assert not list(tmp_path.glob(".*.tmp"))
