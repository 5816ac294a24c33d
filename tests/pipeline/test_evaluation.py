"""Evaluation protocols (new_query, new_pairs) and symmetric timing."""

import numpy as np
import pandas as pd
import pytest

from graphrel.pipeline.evaluation import add_ratios
from graphrel.pipeline.timing import median_seconds
from graphrel.pipeline.protocols import deduplication_counts, hold_out_test_pairs, protocol_edges


def labelled_pairs(seed=0, queries=40):
    rng = np.random.default_rng(seed)
    rows = []
    for q in range(queries):
        split = ("train", "val", "test")[q % 3]
        for p in rng.choice(200, size=rng.integers(1, 9), replace=False):
            rows.append((f"q{q}", f"p{p}", split))
    frame = pd.DataFrame(rows, columns=["query_id", "product_id", "split"])
    return frame.assign(query=frame.query_id, product_text="title " + frame.product_id)


def test_half_of_each_test_query_is_context_the_rest_evaluated():
    pairs = labelled_pairs()
    out = hold_out_test_pairs(pairs, context_fraction=0.5, seed=3)
    assert (out.split[pairs.split != "test"] == pairs.split[pairs.split != "test"]).all()  # only test pairs move
    test = out[pairs.split == "test"]
    for query, group in test.groupby("query_id"):
        n = len(group)
        assert (group.split == "test_context").sum() == n // 2, query
        assert (group.split == "test").sum() == n - n // 2, query  # a query with one pair keeps it evaluated
    again = hold_out_test_pairs(pairs, context_fraction=0.5, seed=3)
    other = hold_out_test_pairs(pairs, context_fraction=0.5, seed=4)
    assert (again.split == out.split).all() and (other.split != out.split).any()
    with pytest.raises(ValueError, match="context_fraction"):
        hold_out_test_pairs(pairs, context_fraction=1.0, seed=0)


def test_protocol_graphs_never_hold_an_evaluated_pair():
    pairs = hold_out_test_pairs(labelled_pairs(), context_fraction=0.5, seed=0)
    transfer = pairs.drop_duplicates("query_id").assign(product_id=lambda f: f.query_id + "-t", split="transfer")
    transfer = transfer.assign(product_text="title " + transfer.product_id)
    scored = pd.concat([pairs, transfer], ignore_index=True)
    new_pairs, new_query = protocol_edges(scored, "new_pairs"), protocol_edges(scored, "new_query")
    evaluated = set(zip(*scored[scored.split == "test"][["query_id", "product_id"]].to_numpy().T))
    for edges in (new_pairs, new_query):
        assert not evaluated & set(zip(edges.query_id, edges.product_id))
    # new_pairs keeps every other pair: the test queries' context and transfer candidates included
    assert len(new_pairs) == (scored.split != "test").sum()
    assert (new_pairs.split == "test_context").any()
    # new_query: no edge of a val or test query at all, every edge of a training query
    train_queries = set(scored.query_id[scored.split == "train"])
    assert set(new_query.query_id) == train_queries
    assert len(new_query) == scored.query_id.isin(train_queries).sum()
    with pytest.raises(ValueError, match="unknown protocol"):
        protocol_edges(scored, "old")


def test_an_evaluated_pairs_text_under_other_ids_never_reaches_a_graph():
    # one title under two product ids; the query's second spelling is the same query text
    rows = [("drill", "drill", "p1", "Cordless Drill 18V", "test"),
            ("drill", "drill", "p2", "cordless  drill 18v", "test_context"),   # same title, other id
            ("drill", "drill", "p3", "CORDLESS DRILL 18V", "transfer"),       # and a transfer candidate
            ("drill", "drill", "p4", "Hammer", "test_context"),
            ("saw", "saw", "p2", "cordless  drill 18v", "train"),            # same title, other query: kept
            ("saw", "saw", "p5", "Saw blade", "train")]
    scored = pd.DataFrame(rows, columns=["query_id", "query", "product_id", "product_text", "split"])
    new_pairs = protocol_edges(scored, "new_pairs")
    assert set(zip(new_pairs.query_id, new_pairs.product_id)) == {("drill", "p4"), ("saw", "p2"), ("saw", "p5")}
    new_query = protocol_edges(scored, "new_query")
    assert set(new_query.query_id) == {"saw"}
    counts = deduplication_counts(scored)
    assert counts["edges_removed"] == {"new_query": 0, "new_pairs": 2}
    assert counts["evaluated_pairs_with_a_removed_twin"] == {"new_query": 0, "new_pairs": 1}
    assert counts["product_ids_sharing_a_title"] == 3


def test_every_timed_run_starts_cold_after_a_warm_up_on_other_pairs():
    calls = []
    timed, warmup = pd.DataFrame({"x": range(5)}), pd.DataFrame({"x": range(100, 102)})

    def score(frame):
        calls.append(("score", list(frame.x)))

    seconds = median_seconds(score, timed, warmup=warmup, repeats=3, reset=lambda: calls.append(("reset",)))
    assert calls == [("reset",), ("score", [100, 101]), ("score", list(range(5)))] * 3
    assert seconds >= 0
    with pytest.raises(ValueError, match="repeats"):
        median_seconds(score, timed, warmup=warmup, repeats=0)


def test_ratios_to_the_teacher():
    models = add_ratios({"teacher": {"auc": 0.8, "spearman": 0.5, "ndcg": 0.9, "pairs_per_second": 100},
                         "student": {"auc": 0.72, "spearman": 0.55, "ndcg": 0.9, "pairs_per_second": 5000}})
    assert models["student"]["ratio_to_teacher"] == pytest.approx({"auc": 0.9, "spearman": 1.1, "ndcg": 1.0})
    assert models["student"]["speedup_vs_teacher"] == 50
    assert "ratio_to_teacher" not in models["teacher"]


def test_speed_ups_against_the_teacher_as_it_ran_and_against_eager_fp32():
    from graphrel.pipeline.evaluation import add_ratios
    from graphrel.pipeline.report import metrics_table

    figures = {"rmse": 0.5, "auc": 0.7, "spearman": 0.4, "ndcg": 0.9}
    models = {"teacher": {**figures, "pairs_per_second": 400.0, "backend": "bf16", "fp32_pairs_per_second": 200.0},
              "student": {**figures, "pairs_per_second": 80_000.0}}
    add_ratios(models)
    assert models["student"]["speedup_vs_teacher"] == 200.0
    assert models["student"]["speedup_vs_teacher_fp32"] == 400.0
    table = metrics_table(models)
    assert "teacher (bf16; eager fp32: 200 pairs/s)" in table
    assert "x eager fp32 teacher" in table and "400.0x" in table and "2.00x" in table  # the teacher: 2x fp32
    plain = {"teacher": {**figures, "pairs_per_second": 200.0}, "student": {**figures, "pairs_per_second": 80_000.0}}
    add_ratios(plain)
    assert "speedup_vs_teacher_fp32" not in plain["student"] and "eager fp32" not in metrics_table(plain)
