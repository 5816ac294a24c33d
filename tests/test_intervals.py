"""The paired bootstrap over queries: intervals of figures and of their differences."""

import numpy as np
import pytest

from graphrel.intervals import PairedBootstrap
from graphrel.metrics import auc, rmse, spearman


def pairs(seed=0, queries=300, per_query=4):
    rng = np.random.default_rng(seed)
    query_ids = np.repeat([f"q{i}" for i in range(queries)], per_query)
    labels = rng.choice([0.0, 0.25, 0.5, 0.75, 1.0], len(query_ids))
    return query_ids, labels, rng


def test_every_resample_recomputes_the_libraries_figures_on_whole_queries():
    query_ids, labels, rng = pairs()
    scores = labels + rng.normal(0, 0.5, len(labels))
    boot = PairedBootstrap(query_ids, labels, threshold=0.75, label_range=2.0, resamples=20, seed=1)
    for i in (0, 7, 19):
        rows = boot.rows[i]
        drawn = query_ids[rows]
        # a drawn query brings all of its pairs, as often as it was drawn
        assert all((drawn == q).sum() % 4 == 0 for q in set(drawn))
        assert boot.figures(scores, "auc")[i] == pytest.approx(auc(scores[rows], labels[rows], threshold=0.75))
        assert boot.figures(scores, "spearman")[i] == pytest.approx(spearman(scores[rows], labels[rows]))
        assert boot.figures(scores, "rmse")[i] == pytest.approx(rmse(scores[rows], labels[rows], label_range=2.0))


def test_interval_holds_the_figure_and_shrinks_with_more_queries():
    widths = []
    for queries in (100, 1600):
        query_ids, labels, rng = pairs(queries=queries)
        scores = labels + rng.normal(0, 0.5, len(labels))
        low, high = PairedBootstrap(query_ids, labels, resamples=400, seed=0).interval(scores, "auc")
        assert low < auc(scores, labels) < high
        widths.append(high - low)
    assert widths[1] < widths[0] / 2  # about 1/sqrt(16)


def test_a_real_difference_excludes_zero_and_noise_does_not():
    query_ids, labels, rng = pairs(queries=600)
    good = labels + rng.normal(0, 0.3, len(labels))
    bad = labels + rng.normal(0, 1.5, len(labels))
    same = good + rng.normal(0, 1e-3, len(labels))
    boot = PairedBootstrap(query_ids, labels, resamples=500, seed=0)
    low, high = boot.difference(good, bad, "auc")
    assert low > 0
    low, high = boot.difference(good, same, "spearman")
    assert low <= 0 <= high
    # paired: a model against itself differs by exactly 0 on every resample
    assert boot.difference(good, good, "rmse") == (0.0, 0.0)


def test_same_seed_same_interval_and_per_query_means():
    query_ids, labels, rng = pairs()
    scores = rng.random(len(labels))
    a = PairedBootstrap(query_ids, labels, resamples=100, seed=3)
    b = PairedBootstrap(query_ids, labels, resamples=100, seed=3)
    assert a.interval(scores, "spearman") == b.interval(scores, "spearman")
    per_query = rng.random(300)
    per_query[::7] = np.nan  # undefined for some queries: left out
    low, high = a.mean_interval(per_query)
    assert low < np.nanmean(per_query) < high


def test_bad_arguments():
    with pytest.raises(ValueError, match="resamples"):
        PairedBootstrap(["a"], [1.0], resamples=0)
    with pytest.raises(ValueError, match="confidence"):
        PairedBootstrap(["a"], [1.0], confidence=1.5)
    with pytest.raises(ValueError, match="length"):
        PairedBootstrap(["a", "b"], [1.0])
    with pytest.raises(ValueError, match="unknown metric"):
        PairedBootstrap(["a", "b"], [1.0, 0.0], resamples=2).interval(np.array([0.1, 0.2]), "ndcg@10")
