import math

import numpy as np

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
