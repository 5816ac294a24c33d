import math

import numpy as np
import pytest

from graphrel.metrics import auc, ndcg_at_k, recall_at_k, relevance_metrics, rmse, spearman


def test_rmse_is_reported_on_the_original_scale():
    assert math.isclose(rmse([0.5, 0.5], [0.0, 1.0], label_range=2.0), 1.0)


def test_auc_uses_the_relevance_threshold():
    labels = np.array([1.0, 0.8, 0.5, 0.0])  # relevant: >= 0.75
    assert auc([0.9, 0.8, 0.1, 0.0], labels) == 1.0
    assert auc([0.0, 0.1, 0.8, 0.9], labels) == 0.0
    assert math.isnan(auc([0.1, 0.2], [0.0, 0.1]))


def test_ndcg_is_one_for_perfect_order_and_lower_otherwise():
    labels = [1.0, 0.5, 0.0, 1.0, 0.0]
    queries = ["a", "a", "a", "b", "b"]
    assert math.isclose(ndcg_at_k([3, 2, 1, 2, 1], labels, queries), 1.0)
    assert ndcg_at_k([1, 2, 3, 1, 2], labels, queries) < 1.0


def test_spearman_and_recall_and_bundle():
    assert math.isclose(spearman([1, 2, 3], [0.1, 0.2, 0.9]), 1.0)
    assert recall_at_k([["x", "y", "z"]], [{"y", "w"}], k=2) == 0.5
    report = relevance_metrics([0.9, 0.1, 0.8, 0.2], [1.0, 0.0, 1.0, 0.0], ["a", "a", "b", "b"], label_range=2.0)
    assert set(report) == {"rmse", "auc", "spearman", "ndcg@10"} and report["auc"] == 1.0


def test_per_query_ndcg_counts_only_queries_with_enough_pairs_and_a_random_floor():
    import numpy as np

    from graphrel.metrics import per_query_ndcg, random_order_ndcg

    query_ids = ["a"] * 5 + ["b"] * 5 + ["c"] * 2 + ["d"] * 5
    labels = np.array([1, 0.5, 0, 0, 0] + [0, 0.25, 0.5, 0.75, 1] + [1, 0] + [0] * 5)
    perfect = labels.copy()
    ids, values = per_query_ndcg(perfect, labels, query_ids, min_pairs=5)
    assert list(ids) == ["a", "b", "c", "d"]
    assert values[:2] == pytest.approx([1, 1])
    assert np.isnan(values[2]) and np.isnan(values[3])  # too few pairs; no gain at all
    reverse = per_query_ndcg(-labels, labels, query_ids, min_pairs=5)[1]
    floor = random_order_ndcg(labels, query_ids, min_pairs=5, shuffles=200, seed=0)
    assert np.nanmean(reverse) < floor < 1
