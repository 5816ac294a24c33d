"""Tests of graphrel.explore.explain: metapath attention and contributions on a tiny run."""

from __future__ import annotations

import numpy as np
import pytest

from explore_run import opened, pairs, real_data, rich_pair, run_dir  # noqa: F401 (fixtures)
from graphrel.errors import GraphrelInputError
from graphrel.explore import PairExplanation, metapaths


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
    assert {"Q-P", "P-Q", "Q-P-Q", "P-Q-P", "Q~Q", "Q~Q-P"} >= set(table["metapath"]) >= {"Q-P", "P-Q"}
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


@real_data
def test_a_new_query_shows_its_built_neighbourhood_marked_as_built(opened, rich_pair):
    from graphrel.explore.tables import format_explanation

    query, product_id, _ = rich_pair
    assert "Q~Q" in opened.student.model.metapaths  # the default student reads nearest logged queries
    new = metapaths(opened, query + "s", product_id)  # a spelling the log does not hold
    assert not new.query_in_graph
    table = new.neighbours
    built = table[table["built"]]
    assert set(built["metapath"]) == {"Q~Q", "Q~Q-P"} and not table.loc[~table["built"], "metapath"].isin(
        ["Q~Q", "Q~Q-P"]).any()
    similar = set(built.loc[built["metapath"] == "Q~Q", "neighbour_id"])
    assert query in similar  # the logged spelling is its nearest logged query
    assert set(built.loc[built["metapath"] == "Q~Q-P", "via"]) <= similar
    assert not new.text_fallback
    text = format_explanation(new)
    assert "[built: nearest logged query]" in text and "[built: via a nearest logged query]" in text
