"""val_auc / val_spearman from torchmetrics equal graphrel.metrics on the same pairs (so the
checkpoint the trainers keep does not change)."""

import math

import numpy as np
import pytest
import torch

from graphrel.metrics import auc, spearman
from graphrel.models.validation import RelevanceValidation


class _Logged:
    """Stands in for a LightningModule: records what ``log`` is given."""

    def __init__(self):
        self.values = {}

    def log(self, name, value, **kwargs):
        self.values[name] = float(value)


def _epoch(scores, labels, batch_size=97, prefix="val"):
    metrics, logged = RelevanceValidation(), _Logged()
    for start in range(0, len(scores), batch_size):
        metrics.update(torch.from_numpy(scores[start:start + batch_size]),
                       torch.from_numpy(labels[start:start + batch_size]))
    metrics.log(logged, prefix)
    return logged.values


def _random_pairs(seed):
    """Scores with many ties (rounded, some saturated), labels on Home Depot's 1-3 scale with NaN."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 6000))
    labels = ((rng.choice([1.0, 1.33, 1.67, 2.0, 2.33, 2.5, 2.67, 3.0], n) - 1) / 2).astype(np.float32)
    scores = 1 / (1 + np.exp(-(6 * labels + rng.normal(0, 3, n))))
    scores = np.round(scores, int(rng.integers(1, 4))).astype(np.float32)
    labels[rng.random(n) < 0.2] = np.nan  # unlabelled (transfer) pairs: skipped
    return scores, labels


@pytest.mark.parametrize("seed", range(12))
def test_equal_to_the_metrics_module_on_random_pairs_with_ties(seed):
    scores, labels = _random_pairs(seed)
    keep = ~np.isnan(labels)
    logged = _epoch(scores, labels)
    assert abs(logged["val_auc"] - auc(scores[keep], labels[keep])) < 1e-6
    assert abs(logged["val_spearman"] - spearman(scores[keep], labels[keep])) < 1e-6


def test_threshold_counts_labels_at_it_as_relevant():
    scores = np.array([0.1, 0.2, 0.3, 0.4], np.float32)
    labels = np.array([0.0, 0.75, 0.5, 1.0], np.float32)  # 0.75 = 2.5 on 1-3: relevant
    assert _epoch(scores, labels)["val_auc"] == auc(scores, labels) == 0.75


def test_nan_where_the_metrics_module_gives_nan():
    scores = np.array([0.1, 0.2, 0.3, 0.4], np.float32)
    one_class = _epoch(scores, np.array([1.0, 0.9, 0.8, float("nan")], np.float32))
    assert math.isnan(one_class["val_auc"])
    constant = _epoch(np.full(4, 0.5, np.float32), np.array([0.0, 1.0, 0.5, 1.0], np.float32))
    assert constant["val_auc"] == 0.5 and math.isnan(constant["val_spearman"])
    nothing_labelled = _epoch(scores, np.full(4, np.nan, np.float32))
    assert math.isnan(nothing_labelled["val_auc"]) and math.isnan(nothing_labelled["val_spearman"])


def test_nothing_logged_without_batches_and_states_reset_after_logging():
    metrics, logged = RelevanceValidation(), _Logged()
    metrics.log(logged)
    assert logged.values == {}
    scores, labels = _random_pairs(0)
    first = _epoch(scores, labels)
    metrics.update(torch.from_numpy(scores), torch.from_numpy(labels))
    metrics.log(logged)
    metrics.update(torch.from_numpy(scores[:50]), torch.from_numpy(labels[:50]))  # a new epoch: only these
    again = _Logged()
    metrics.log(again)
    keep = ~np.isnan(labels[:50])
    assert logged.values == pytest.approx(first, abs=1e-6)
    assert again.values["val_auc"] == pytest.approx(auc(scores[:50][keep], labels[:50][keep]), abs=1e-6)


def test_prefix_and_no_checkpoint_state():
    scores, labels = _random_pairs(1)
    assert set(_epoch(scores, labels, prefix="test")) == {"test_auc", "test_spearman"}
    assert RelevanceValidation().state_dict() == {}  # checkpoints keep the keys they had
