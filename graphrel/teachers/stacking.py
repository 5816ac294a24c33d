"""Teacher stacking: several teachers' logits combined by a logistic regression fitted on
the labelled validation split: a reconstruction of BERT2DNN's teacher ensemble (Jiang et
al., "BERT2DNN: BERT Distillation with Massive Unlabeled Data for Online E-Commerce
Search", ICDM 2020, arXiv 2010.10442); the combiner below is this package's choice.

The stacked logit ``w . [logit_1, ..., logit_T] + b`` is what students learn from (then
temperature-rescaled like any teacher logit). The regression is fitted on *soft* labels:
each pair enters twice, as relevant with weight y and as irrelevant with weight 1 - y
(y the normalised label in [0, 1]), which is exactly sigmoid cross-entropy against y.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold


def _soft_fit(logits: np.ndarray, labels: np.ndarray, regularisation: float) -> LogisticRegression:
    n = len(labels)
    features = np.concatenate([logits, logits])
    targets = np.concatenate([np.ones(n), np.zeros(n)])
    weights = np.concatenate([labels, 1 - labels])
    return LogisticRegression(C=regularisation).fit(features, targets, sample_weight=weights)


class TeacherStack:
    """Logistic-regression stack of T teachers.

    Args:
        names: T teacher names (for reports).
        regularisation: inverse L2 strength C of the logistic regression.

    Attributes (after :meth:`fit`):
        weights: (T,) float, one per teacher; bias: float.
    """

    def __init__(self, names: list[str], regularisation: float = 1.0) -> None:
        if len(names) < 2:
            raise ValueError("stacking needs at least two teachers")
        self.names = list(names)
        self.regularisation = regularisation
        self.weights: np.ndarray | None = None
        self.bias = 0.0

    def _check(self, logits: np.ndarray) -> np.ndarray:
        logits = np.asarray(logits, dtype=np.float64)
        if logits.ndim != 2 or logits.shape[1] != len(self.names):
            raise ValueError(f"logits must be (N, {len(self.names)}) for teachers {self.names}, got {logits.shape}")
        return logits

    def fit(self, logits: np.ndarray, labels: np.ndarray) -> "TeacherStack":
        """Fit on labelled pairs.

        Args:
            logits: (N, T) float, teacher logits of the validation pairs.
            labels: (N,) float normalised human labels in [0, 1].

        Raises:
            ValueError: on a wrong shape, or labels outside [0, 1] / NaN.
        """
        logits, labels = self._check(logits), np.asarray(labels, dtype=np.float64)
        if len(labels) != len(logits) or np.isnan(labels).any() or (labels < 0).any() or (labels > 1).any():
            raise ValueError("labels must be N finite values in [0, 1]")
        model = _soft_fit(logits, labels, self.regularisation)
        self.weights, self.bias = model.coef_[0].copy(), float(model.intercept_[0])
        return self

    def logits(self, logits: np.ndarray) -> np.ndarray:
        """Stacked logits (N,) float32 from teacher logits (N, T)."""
        if self.weights is None:
            raise RuntimeError("fit() the stack first")
        return (self._check(logits) @ self.weights + self.bias).astype(np.float32)

    def cross_validated_logits(self, logits: np.ndarray, labels: np.ndarray, groups: np.ndarray,
                               folds: int = 5) -> np.ndarray:
        """Out-of-fold stacked logits (N,) float32 of labelled pairs, folds grouped by query.

        For an honest validation score of the stack: each pair is scored by a stack fitted
        without its query.
        """
        logits, labels = self._check(logits), np.asarray(labels, dtype=np.float64)
        out = np.empty(len(labels), dtype=np.float32)
        for train, held_out in GroupKFold(n_splits=folds).split(logits, labels, groups):
            model = _soft_fit(logits[train], labels[train], self.regularisation)
            out[held_out] = model.decision_function(logits[held_out])
        return out

    def to_dict(self) -> dict:
        return {"teachers": self.names, "weights": None if self.weights is None else self.weights.tolist(),
                "bias": self.bias, "regularisation": self.regularisation}

    @classmethod
    def from_dict(cls, state: dict) -> "TeacherStack":
        """The stack saved by :meth:`to_dict` (e.g. a run's ``stack/stack.json``)."""
        stack = cls(state["teachers"], regularisation=state.get("regularisation", 1.0))
        if state.get("weights") is not None:
            stack.weights, stack.bias = np.asarray(state["weights"], dtype=np.float64), float(state["bias"])
        return stack
