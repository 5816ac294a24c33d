"""Cross-encoder calls, the cost unit of CE k-NN search: every path scores pairs through a counter.

A *pair scorer* is a function ``(query_rows (N,), item_rows (N,)) -> (N,) scores`` over a fixed
list of queries and a fixed list of items (rows index those lists). Three kinds:

- :func:`teacher_pair_scores`: the cross-encoder teacher itself (its logits, length-sorted
  batches via :func:`graphrel.scoring.teacher_labelling.teacher_logits`);
- :func:`matrix_pair_scores`: a look-up in a dense matrix of cached CE scores (the evaluation's
  ground truth serves the test queries' calls without re-running the teacher);
- any function of the same shape (tests: a synthetic low-rank matrix).

:class:`CrossEncoderCalls` wraps one and counts every pair it scores, whatever serves it: a call
served from a cache costs the same as a fresh one, so each method is charged its own calls.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

PairScorer = Callable[[np.ndarray, np.ndarray], np.ndarray]


class CrossEncoderCalls:
    """A pair scorer that counts its calls (one call = one (query, item) pair scored).

    Args:
        score_pairs: the pair scorer wrapped.
        name: label for logs and reports.

    Attributes:
        calls: pairs scored so far (int, >= 0).
    """

    def __init__(self, score_pairs: PairScorer, name: str = "") -> None:
        self.score_pairs = score_pairs
        self.name = name
        self.calls = 0

    def __call__(self, query_rows, item_rows) -> np.ndarray:
        """Scores of the pairs ``(query_rows[j], item_rows[j])``.

        Args:
            query_rows, item_rows: (N,) int rows (a scalar query row is repeated N times).

        Returns:
            (N,) float64 scores (teacher: logits).

        Raises:
            ValueError: the rows differ in length, or the scorer returns another shape.
        """
        items = np.asarray(item_rows, dtype=np.int64).ravel()
        queries = np.asarray(query_rows, dtype=np.int64)
        queries = np.full(len(items), int(queries), dtype=np.int64) if queries.ndim == 0 else queries.ravel()
        if queries.shape != items.shape:
            raise ValueError(f"{len(queries)} query rows but {len(items)} item rows")
        if len(items) == 0:
            return np.zeros(0, dtype=np.float64)
        scores = np.asarray(self.score_pairs(queries, items), dtype=np.float64).ravel()
        if scores.shape != items.shape:
            raise ValueError(f"the pair scorer returned {scores.shape[0]} scores for {len(items)} pairs")
        self.calls += len(items)
        return scores

    def fork(self, name: str = "") -> "CrossEncoderCalls":
        """A new counter (at 0) over the same pair scorer: one per method, charged separately."""
        return CrossEncoderCalls(self.score_pairs, name)


def teacher_pair_scores(teacher, query_texts, item_texts, *, batch_size: int = 128) -> PairScorer:
    """A pair scorer running the cross-encoder teacher.

    Args:
        teacher: a :class:`graphrel.models.teacher.CrossEncoderTeacher`.
        query_texts: (Q,) query texts (query rows index them).
        item_texts: (N,) product texts (item rows index them).
        batch_size: pairs per forward pass (>= 1).

    Returns:
        ``score(query_rows, item_rows) -> (n,) float32 logits``.
    """
    from graphrel.scoring.teacher_labelling import teacher_logits

    queries = np.asarray(query_texts, dtype=object)
    items = np.asarray(item_texts, dtype=object)

    def score(query_rows: np.ndarray, item_rows: np.ndarray) -> np.ndarray:
        return teacher_logits(teacher, [str(q) for q in queries[query_rows]], [str(p) for p in items[item_rows]],
                              batch_size=batch_size, progress=False)

    return score


def matrix_pair_scores(scores: np.ndarray) -> PairScorer:
    """A pair scorer reading a dense (Q, N) matrix of scores (e.g. the cached ground truth).

    Raises:
        ValueError: ``scores`` is not 2-D.
    """
    matrix = np.asarray(scores)
    if matrix.ndim != 2:
        raise ValueError(f"scores must be (queries, items), got shape {matrix.shape}")

    def score(query_rows: np.ndarray, item_rows: np.ndarray) -> np.ndarray:
        return matrix[query_rows, item_rows]

    return score
