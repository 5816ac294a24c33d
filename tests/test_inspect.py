"""Neighbourhood inspection: ego graphs, metapath explanations, exports and bad input.

Most tests read a tiny run built once from a slice of the real Home Depot data
(``configs/tiny_test.yaml``: tiny random models, well under a minute) and check the
inspection against the raw pairs of that run; no real-data text is written here.
"""

from __future__ import annotations

import json
import math

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from graphrel.data.graph import build_graph
from graphrel.errors import GraphrelInputError
from graphrel.inspect import (
    InspectedRun,
    PairExplanation,
    format_table,
    inspect_command,
    metapaths,
    neighborhood,
)
from graphrel.run import load_run_graph, load_run_pairs

real_data = pytest.mark.real_data


# -- a generic graph, no data needed ---------------------------------------------------------
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


# -- a tiny real run ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from conftest import REPO_ROOT, real_data_path

    from graphrel.cli import main

    path = real_data_path()
    if path is None:
        pytest.skip("real Home Depot data not found (see data/README.md)")
    run = tmp_path_factory.mktemp("inspect") / "run"
    assert main(["pipeline", "--config", str(REPO_ROOT / "configs" / "tiny_test.yaml"), "--data.path", str(path),
                 "--run-dir", str(run), "--no-progress"]) == 0
    return run


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
def test_table_lists_products_and_their_other_queries(run_dir, pairs, busy_query, capsys):
    inspect_command(["--run-dir", str(run_dir), "--query", busy_query, "--hops", "2", "--no-student"])
    out = capsys.readouterr().out
    assert out.startswith("centre: query")
    own = pairs[pairs["query_id"] == busy_query]
    for product_id in own["product_id"]:
        assert f"product {product_id} " in out
    others = set(pairs.loc[pairs["product_id"].isin(own["product_id"]), "query"]) - {busy_query}
    assert others
    for query in others:
        if len(query) < 60 and "  " not in query:
            assert f"query {query!r}" in out


@real_data
def test_graph_from_heterodata_matches_run(run_dir, opened, busy_query):
    from_graph = neighborhood(load_run_graph(run_dir), query=busy_query, hops=2)
    from_run = neighborhood(opened, query=busy_query, hops=2, student=False)
    assert set(from_graph.nodes) == set(from_run.nodes) and set(from_graph.edges) == set(from_run.edges)
    assert all(d.get("split") == "train" for _, _, d in from_graph.edges(data=True) if "label" in d)


@pytest.fixture(scope="module")
def rich_pair(pairs):
    """A pair whose query has several other products and whose product has other queries."""
    queries_per_product = pairs.groupby("product_id")["query_id"].nunique()
    products_per_query = pairs.groupby("query_id")["product_id"].nunique()
    ok = pairs[(pairs["product_id"].map(queries_per_product) >= 2) & (pairs["query_id"].map(products_per_query) >= 4)]
    row = ok.sort_values(["query_id", "product_id"]).iloc[0]
    return row["query_id"], row["product_id"], row["product_text"]


@real_data
def test_metapath_attention_and_contributions(opened, pairs, rich_pair):
    query, product_id, product_text = rich_pair
    explanation = metapaths(opened, query, product_id)
    assert isinstance(explanation, PairExplanation)
    assert explanation.query_in_graph and explanation.product_in_graph
    table = explanation.neighbours
    model = opened.student.model
    assert list(explanation.metapath_weights) == list(model.metapaths)
    assert sum(explanation.metapath_weights.values()) == pytest.approx(1.0, abs=1e-5)
    assert {"Q-P", "P-Q", "Q-P-Q", "P-Q-P"} >= set(table["metapath"]) >= {"Q-P", "P-Q"}
    for _, group in table.groupby("metapath"):
        assert group["attention"].sum() == pytest.approx(1.0, abs=1e-5)
        assert list(group["rank"]) == list(range(1, len(group) + 1))
        assert (group["attention"].diff().dropna() <= 1e-9).all()
    # Neighbours are the raw pairs' neighbours, never the pair itself.
    q_p = set(table.loc[table["metapath"] == "Q-P", "neighbour_id"])
    assert q_p <= set(pairs.loc[pairs["query_id"] == query, "product_id"]) - {product_id}
    p_q = set(table.loc[table["metapath"] == "P-Q", "neighbour_id"])
    assert p_q <= set(pairs.loc[pairs["product_id"] == product_id, "query_id"]) - {query}
    # A two-hop instance runs through one of the pair's one-hop neighbours.
    assert set(table.loc[table["metapath"] == "Q-P-Q", "via"]) <= q_p
    assert set(table.loc[table["metapath"] == "P-Q-P", "via"]) <= p_q
    assert table.loc[table["metapath"].isin(["Q-P", "P-Q"]), "via"].isna().all()
    # The explained score is the one `graphrel score` gives.
    scored = opened.student.score([query], [query], [product_id], [product_text])
    assert explanation.score == pytest.approx(float(scored[0]), abs=1e-6)
    # Removing the top neighbour of each metapath changes the student's score.
    top = table[table["rank"] == 1]
    assert (top["contribution"].abs() > 1e-7).all(), top
    assert np.allclose(table["contribution"], explanation.score - table["score_without"], atol=1e-9)
    own = pairs[(pairs["query_id"] == query) & (pairs["product_id"] == product_id)].iloc[0]
    assert explanation.teacher_score == pytest.approx(own["teacher_score"], abs=1e-6)
    assert explanation.split == own["split"]


@real_data
def test_metapaths_for_pairs_outside_the_graph(opened, rich_pair):
    query, product_id, _ = rich_pair
    unseen_query = metapaths(opened, "zqx unseen query words", product_id)
    assert not unseen_query.query_in_graph and unseen_query.product_in_graph
    assert not {"Q-P", "Q-P-Q"} & set(unseen_query.neighbours["metapath"])
    assert 0.0 <= unseen_query.score <= 1.0 and unseen_query.teacher_score is None
    unseen_product = metapaths(opened, query, "no-such-product", product_text="a brand new widget")
    assert unseen_product.query_in_graph and not unseen_product.product_in_graph
    assert not {"P-Q", "P-Q-P"} & set(unseen_product.neighbours["metapath"])
    assert {"Q-P"} <= set(unseen_product.neighbours["metapath"])
    with pytest.raises(GraphrelInputError, match="unknown product id 'no-such-product'.*pair-product-text"):
        metapaths(opened, query, "no-such-product")


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
    inspect_command(["--run-dir", str(run_dir), "--query", busy_query, "--max-per-hop", "3",
                     "--format", "graphml", "--out", str(out)])
    read = nx.read_graphml(out)
    ego = neighborhood(opened, query=busy_query, hops=2, max_per_hop=3)
    _same_graph(read, ego)
    assert any("label" in d for _, _, d in read.edges(data=True))
    assert any("label" not in d for _, _, d in read.edges(data=True))  # absent, not NaN
    assert read.graph["max_per_hop"] == 3 and read.graph["student"] == "student_korder"
    assert not list(tmp_path.glob(".*.tmp"))


@real_data
def test_png_is_drawn(run_dir, busy_query, tmp_path):
    import matplotlib.image

    out = tmp_path / "ego.png"
    inspect_command(["--run-dir", str(run_dir), "--query", busy_query, "--hops", "3", "--format", "png",
                     "--out", str(out), "--no-student"])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 30_000
    height, width = matplotlib.image.imread(out).shape[:2]
    assert height > 600 and width > 600


@real_data
def test_pair_table(run_dir, rich_pair, capsys):
    query, product_id, _ = rich_pair
    inspect_command(["--run-dir", str(run_dir), "--query", query, "--pair-product-id", product_id, "--hops", "1"])
    out = capsys.readouterr().out
    assert "metapath weights: Q-P" in out and "attention" in out and f"x product {product_id}" in out


@real_data
def test_bad_input_on_a_run(run_dir, pairs, busy_query, tmp_path):
    run = str(run_dir)
    known = set(pairs["query_id"])
    typo = next(t for t in (busy_query[:-1], busy_query + "s", busy_query[1:]) if t not in known)
    with pytest.raises(GraphrelInputError) as error:
        inspect_command(["--run-dir", run, "--query", typo])
    message = str(error.value)
    assert f"unknown query {typo!r}" in message and "closest: " in message and repr(busy_query) in message
    assert "\n" not in message and "fix:" in message

    product_id = pairs["product_id"].iloc[0]
    with pytest.raises(GraphrelInputError, match=r"unknown product id '.*x'; closest ids: "):
        inspect_command(["--run-dir", run, "--product-id", product_id + "x"])
    for hops in ("-1", "50"):
        with pytest.raises(GraphrelInputError, match="--hops: must be a whole number from 0 to 4"):
            inspect_command(["--run-dir", run, "--query", busy_query, "--hops", hops])
    with pytest.raises(GraphrelInputError, match="--max-per-hop: must be a whole number >= 1"):
        inspect_command(["--run-dir", run, "--query", busy_query, "--max-per-hop", "0"])
    with pytest.raises(GraphrelInputError, match="--format json needs an output file"):
        inspect_command(["--run-dir", run, "--query", busy_query, "--format", "json"])
    with pytest.raises(GraphrelInputError, match="output folder does not exist"):
        inspect_command(["--run-dir", run, "--query", busy_query, "--format", "png",
                         "--out", str(tmp_path / "missing" / "ego.png")])
    with pytest.raises(GraphrelInputError, match="needs --query"):
        inspect_command(["--run-dir", run, "--product-id", product_id, "--pair-product-id", product_id])
    with pytest.raises(GraphrelInputError, match="one of the arguments --query --product-id is required"):
        inspect_command(["--run-dir", run])  # argparse's own check, one line like every other error


def test_table_of_generic_graph(generic_graph):
    table = format_table(neighborhood(generic_graph, query="q1", hops=2))
    lines = table.splitlines()
    assert lines[0] == "centre: query 'cordless drill' [id q1] (degree 3)"
    assert any("product p3  garden hose" in line and "transfer" in line for line in lines)
    assert sum("query 'hose'" in line for line in lines) == 1


def test_radial_layout_puts_each_hop_on_its_ring(generic_graph):
    from graphrel.inspect import radial_layout

    ego = neighborhood(generic_graph, product_id="p4", hops=4)
    pos = radial_layout(ego, spacing=0.3)
    for name, (x, y) in pos.items():
        assert math.hypot(x, y) == pytest.approx(ego.nodes[name]["hop"])
    ring = [math.atan2(y, x) for n, (x, y) in pos.items() if ego.nodes[n]["hop"] == 2]
    gaps = np.diff(sorted(ring + [ring[0] + 2 * math.pi] if len(ring) == 1 else ring))
    assert (gaps >= 0.3 / 2 - 1e-9).all()


def test_generic_graph_png(generic_graph, tmp_path):
    from graphrel.inspect import draw_png

    draw_png(neighborhood(generic_graph, query="q1", hops=3), tmp_path / "g.png")
    assert (tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG"
    assert [p.name for p in tmp_path.iterdir()] == ["g.png"]
