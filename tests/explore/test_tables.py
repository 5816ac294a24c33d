"""Tests of graphrel.explore.tables: the terminal tables."""

from __future__ import annotations

from explore_run import busy_query, generic_graph, pairs, real_data, rich_pair, run_dir  # noqa: F401 (fixtures)
from graphrel.explore import neighborhood
from graphrel.explore.command import inspect_command
from graphrel.explore.tables import format_table


def test_table_of_generic_graph(generic_graph):
    table = format_table(neighborhood(generic_graph, query="q1", hops=2))
    lines = table.splitlines()
    assert lines[0] == "centre: query 'cordless drill' [id q1] (degree 3)"
    assert any("product p3  garden hose" in line and "transfer" in line for line in lines)
    assert sum("query 'hose'" in line for line in lines) == 1


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
def test_pair_table(run_dir, rich_pair, capsys):
    query, product_id, _ = rich_pair
    inspect_command(["--run-dir", str(run_dir), "--query", query, "--pair-product-id", product_id, "--hops", "1"])
    out = capsys.readouterr().out
    assert "metapath weights: Q-P" in out and "attention" in out and f"x product {product_id}" in out


def test_a_fallback_scored_pair_is_explained_by_the_text_path():
    import pandas as pd

    from graphrel.explore.explain import PairExplanation
    from graphrel.explore.tables import format_explanation

    neighbours = pd.DataFrame({"metapath": ["P-Q"], "rank": [1], "neighbour_type": ["query"], "neighbour_id": ["q9"],
                               "neighbour_text": ["angle bracket"], "via": [None], "built": [False],
                               "teacher_score": [0.7], "attention": [1.0], "metapath_weight": [1.0],
                               "score_without": [0.5], "contribution": [0.0]})
    explanation = PairExplanation(query_id="q1", query="drill", product_id="p1", product_text="Cordless drill",
                                  score=0.6, query_in_graph=False, product_in_graph=True, teacher_score=None,
                                  label=None, split=None, metapath_weights={"P-Q": 1.0}, neighbours=neighbours,
                                  text_fallback=True)
    table = format_explanation(explanation)
    assert "text-only copy read the query and the product text alone" in table
    assert "graph neighbours the fallback did not read: 1" in table
    assert "angle bracket" not in table and "metapath weights" not in table  # no graph explanation of it
    explanation.text_fallback = False
    assert "angle bracket" in format_explanation(explanation)
