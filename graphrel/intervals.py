"""95% intervals by the paired bootstrap over queries.

Queries, not pairs, are the unit: the pairs of one query are not independent (one query's
candidates share its difficulty). Each resample draws the evaluated queries with
replacement and recomputes every model's figure on the same draw, so the interval of a
*difference* between two models (percentiles of the resampled differences) accounts for
their correlation: the paired bootstrap of Efron & Tibshirani (1993), as used for IR
evaluation by Sakai ("Evaluating evaluation metrics based on the bootstrap", SIGIR 2006).

Hand-rolled on numpy (about 60 lines): the IR libraries (ranx, ir-measures) test run
differences with t-tests and randomisation, but give no bootstrap interval of pooled
pair-level figures such as AUC, Spearman or RMSE over queries. AUC and Spearman are
computed from ranks (``scipy.stats.rankdata``, ties averaged), equal to scikit-learn's and
SciPy's on every resample.

Example:
    >>> boot = PairedBootstrap(query_ids, labels, resamples=1000, seed=0)  # doctest: +SKIP
    >>> boot.interval(scores_a, "auc")            # (low, high)              # doctest: +SKIP
    >>> boot.difference(scores_a, scores_b, "auc")  # (low, high) of a - b   # doctest: +SKIP
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.stats import rankdata

__all__ = ["PairedBootstrap", "POOLED_METRICS"]

#: Figures recomputed on every resample's pairs (pooled over the resampled queries' pairs).
POOLED_METRICS = ("auc", "spearman", "rmse")


class PairedBootstrap:
    """Resamples of queries shared by every model compared on the same pairs.

    Args:
        query_ids: (N,) the query of each evaluated pair.
        labels: (N,) float in [0, 1], normalised human labels.
        threshold: normalised label at or above which a pair is relevant (AUC).
        label_range: width of the original label scale (RMSE is reported on it).
        resamples: number of resamples, >= 1 (1,000 or more for a 95% interval).
        seed: seeds the draws; same inputs and seed => same intervals.
        confidence: two-sided level in (0, 1).

    Raises:
        ValueError: ``resamples`` < 1, ``confidence`` outside (0, 1), or lengths that differ.
    """

    def __init__(self, query_ids, labels, *, threshold: float = 0.75, label_range: float = 1.0,
                 resamples: int = 1000, seed: int = 0, confidence: float = 0.95) -> None:
        if isinstance(resamples, bool) or int(resamples) != resamples or resamples < 1:
            raise ValueError(f"resamples must be a whole number >= 1, got {resamples!r}")
        if not 0 < confidence < 1:
            raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
        self.labels = np.asarray(labels, dtype=float)
        if len(self.labels) != len(query_ids):
            raise ValueError("query_ids and labels differ in length")
        self.threshold, self.label_range, self.confidence = threshold, label_range, confidence
        # query codes in sorted-id order (per-query figures are given in that order)
        codes = np.unique(np.asarray(query_ids, dtype=object).astype(str), return_inverse=True)[1]
        order = np.argsort(codes, kind="stable")
        counts = np.bincount(codes)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        draws = np.random.default_rng(seed).integers(len(counts), size=(int(resamples), len(counts)))
        #: the query draws (resamples, Q): to average per-query figures alike
        self.draws = draws
        #: per resample, the indices of its pairs (with repeats), into the evaluated pairs
        self.rows = [order[_expand(starts[d], counts[d])] for d in draws]
        self._label_ranks = [rankdata(self.labels[rows]) for rows in self.rows]
        self._relevant = [self.labels[rows] >= threshold - 1e-9 for rows in self.rows]

    def figures(self, scores: np.ndarray, metric: str) -> np.ndarray:
        """(resamples,) the metric (``auc``, ``spearman``, ``rmse``) of (N,) ``scores`` on
        every resample (NaN where undefined, e.g. one relevance class)."""
        scores = np.asarray(scores, dtype=float)
        out = np.empty(len(self.rows))
        for i, rows in enumerate(self.rows):
            s = scores[rows]
            if metric == "rmse":
                out[i] = np.sqrt(np.mean((s - self.labels[rows]) ** 2)) * self.label_range
            elif metric == "auc":
                relevant = self._relevant[i]
                positives = int(relevant.sum())
                negatives = len(relevant) - positives
                if positives == 0 or negatives == 0:
                    out[i] = np.nan
                    continue
                ranks = rankdata(s)
                out[i] = (ranks[relevant].sum() - positives * (positives + 1) / 2) / (positives * negatives)
            elif metric == "spearman":
                out[i] = _pearson(rankdata(s), self._label_ranks[i])
            else:
                raise ValueError(f"unknown metric {metric!r}; choose from {POOLED_METRICS}")
        return out

    def bounds(self, values: np.ndarray) -> tuple[float, float]:
        """(low, high): the two-sided percentiles of resampled figures (NaN left out)."""
        tail = 100 * (1 - self.confidence) / 2
        low, high = np.nanpercentile(values, [tail, 100 - tail])
        return float(low), float(high)

    def interval(self, scores, metric: str) -> tuple[float, float]:
        """(low, high) of ``metric`` (``auc``, ``spearman``, ``rmse``) of (N,) ``scores``."""
        return self.bounds(self.figures(scores, metric))

    def difference(self, scores, baseline, metric: str) -> tuple[float, float]:
        """(low, high) of ``metric(scores) - metric(baseline)`` on the same resamples."""
        return self.bounds(self.figures(scores, metric) - self.figures(baseline, metric))

    def mean_interval(self, per_query: np.ndarray, baseline: np.ndarray | None = None) -> tuple[float, float]:
        """(low, high) of the mean of a per-query figure, (Q,) in the order of the sorted
        distinct query ids (NaN = undefined for that query, left out), or of the difference
        of two such means on the same resamples."""
        values = np.asarray(per_query, dtype=float)
        if baseline is not None:
            values = values - np.asarray(baseline, dtype=float)
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a resample with no defined query: NaN
            return self.bounds(np.nanmean(values[self.draws], axis=1))


def _expand(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenated ranges ``starts[i] .. starts[i] + counts[i]`` (vectorised)."""
    total = int(counts.sum())
    offsets = np.repeat(starts - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    return np.arange(total) + offsets


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    denominator = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denominator) if denominator > 0 else float("nan")
