"""Sigmoid cross-entropy against soft targets: the distillation loss of a relevance student.

Hinton et al., "Distilling the Knowledge in a Neural Network" (2015) train a student on the
cross-entropy against the teacher's soft targets; with one relevance logit per pair this is
the sigmoid (binary) cross-entropy, as in BERT2DNN (Jiang et al., ICDM 2020, arXiv
2010.10442) and BERM (Liu et al., EMNLP 2022 Industry, arXiv 2210.01701). For student
logit x and target t in [0, 1]:

    BCE(x, t) = -(t log sigmoid(x) + (1 - t) log(1 - sigmoid(x)))

minimal at sigmoid(x) = t, averaged over the pairs that have a target (optionally weighted).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_target_bce(student_logits: torch.Tensor, targets: torch.Tensor,
                    weights: torch.Tensor | None = None) -> torch.Tensor:
    """Sigmoid cross-entropy of student logits against soft targets in [0, 1].

    Args:
        student_logits: (N,) float.
        targets: (N,) float in [0, 1]; NaN entries are ignored (no target).
        weights: optional (N,) float >= 0, per-pair weights.

    Returns:
        scalar: mean loss over the non-NaN targets (0 when there are none), or with
        ``weights`` their weighted mean sum(w BCE) / sum(w).

    Example:
        >>> import torch
        >>> logits = torch.tensor([0.0, 2.0, -1.0])
        >>> soft_target_bce(logits, torch.tensor([0.5, 0.9, float("nan")]))  # the NaN target is skipped
        tensor(0.5100)
        >>> soft_target_bce(logits, torch.full((3,), float("nan")))  # no target at all
        tensor(0.)
    """
    mask = ~torch.isnan(targets)
    if not mask.any():
        return student_logits.sum() * 0.0
    loss = F.binary_cross_entropy_with_logits(student_logits[mask], targets[mask], reduction="none")
    if weights is not None:
        w = weights[mask]
        return (loss * w).sum() / w.sum().clamp_min(1e-12)
    return loss.mean()
