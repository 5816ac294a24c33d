"""Distillation losses, one function each.

Sources:
- Soft-target (sigmoid) cross-entropy against temperature-rescaled teacher scores:
  Hinton et al., "Distilling the Knowledge in a Neural Network" (2015); for relevance
  students as in BERT2DNN (Jiang et al., ICDM 2020, arXiv 2010.10442) and BERM
  (Liu et al., EMNLP 2022 Industry, arXiv 2210.01701).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def temperature_targets(teacher_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Temperature-rescaled soft targets ``sigmoid(teacher_logit / T)``.

    Args:
        teacher_logits: (N,) float, the teacher's raw logits.
        temperature: T > 0; T > 1 softens the targets towards 0.5.

    Returns:
        (N,) float in (0, 1).

    Raises:
        ValueError: if ``temperature <= 0``.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return torch.sigmoid(teacher_logits / temperature)


def logits_for_targets(scores: torch.Tensor, temperature: float = 1.0, eps: float = 1e-6) -> torch.Tensor:
    """Inverse of :func:`temperature_targets`: logits whose targets at temperature T are ``scores``.

    A student distilled from another student's scores (BERM-O from the graph student) must
    learn those scores themselves, not a second temperature applied to them.

    Args:
        scores: (N,) float in [0, 1], clipped to [eps, 1 - eps].
        temperature: T > 0 of the student that will learn them.

    Returns:
        (N,) float: ``T * logit(scores)``, so ``temperature_targets(result, T) == scores``.

    Raises:
        ValueError: if ``temperature <= 0``.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return torch.logit(scores.double().clamp(eps, 1 - eps)).to(scores.dtype) * temperature


def soft_target_bce(student_logits: torch.Tensor, targets: torch.Tensor,
                    weights: torch.Tensor | None = None) -> torch.Tensor:
    """Sigmoid cross-entropy of student logits against soft targets in [0, 1].

    Args:
        student_logits: (N,) float.
        targets: (N,) float in [0, 1]; NaN entries are ignored (no target).
        weights: optional (N,) float >= 0, per-pair weights.

    Returns:
        scalar: mean loss over the non-NaN targets (0 when there are none).
    """
    mask = ~torch.isnan(targets)
    if not mask.any():
        return student_logits.sum() * 0.0
    loss = F.binary_cross_entropy_with_logits(student_logits[mask], targets[mask], reduction="none")
    if weights is not None:
        w = weights[mask]
        return (loss * w).sum() / w.sum().clamp_min(1e-12)
    return loss.mean()


def distillation_loss(student_logits: torch.Tensor, teacher_scores: torch.Tensor,
                      labels: torch.Tensor | None = None, *, label_weight: float = 0.0) -> torch.Tensor:
    """Teacher soft-target BCE plus, optionally, BCE on human labels where present.

    ``loss = BCE(student, teacher) + label_weight * BCE(student, label)``, the second
    term over pairs whose label is not NaN (BERM, Liu et al., EMNLP 2022 Industry Track,
    arXiv 2210.01701, trains on teacher labels; the human-label term is an addition of
    this package's reconstruction).

    Args:
        student_logits: (N,) float.
        teacher_scores: (N,) float in [0, 1] (already temperature-rescaled).
        labels: (N,) float in [0, 1] or NaN for unlabelled pairs.
        label_weight: weight >= 0 of the human-label term.
    """
    loss = soft_target_bce(student_logits, teacher_scores)
    if labels is not None and label_weight > 0:
        loss = loss + label_weight * soft_target_bce(student_logits, labels)
    return loss
