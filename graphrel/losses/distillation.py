"""Distillation loss of the students: the teacher's soft targets plus, optionally, human labels.

BERM (Liu et al., "Knowledge Distillation based Contextual Relevance Matching for E-commerce
Product Search", EMNLP 2022 Industry Track, arXiv 2210.01701) trains its student on teacher
labels; BERT2DNN (Jiang et al., ICDM 2020, arXiv 2010.10442) likewise on the teacher's soft
targets. The human-label term is an addition of this package's reconstruction. With t the
(temperature-rescaled) teacher target, y the human label where there is one and lambda the
label weight:

    loss = BCE(x, t) + lambda * BCE(x, y)

each term a :func:`graphrel.losses.soft_target_bce.soft_target_bce`, the second over the
pairs whose label is not NaN.
"""

from __future__ import annotations

import torch

from graphrel.losses.soft_target_bce import soft_target_bce


def distillation_loss(student_logits: torch.Tensor, teacher_scores: torch.Tensor,
                      labels: torch.Tensor | None = None, *, label_weight: float = 0.0) -> torch.Tensor:
    """Teacher soft-target BCE plus, optionally, BCE on human labels where present.

    ``loss = BCE(student, teacher) + label_weight * BCE(student, label)``, the second
    term over pairs whose label is not NaN.

    Args:
        student_logits: (N,) float.
        teacher_scores: (N,) float in [0, 1] (already temperature-rescaled).
        labels: (N,) float in [0, 1] or NaN for unlabelled pairs.
        label_weight: weight >= 0 of the human-label term.

    Returns:
        scalar tensor.

    Example:
        >>> import torch
        >>> logits, teacher = torch.tensor([1.0, -1.0]), torch.tensor([0.7, 0.2])
        >>> distillation_loss(logits, teacher)
        tensor(0.5633)
        >>> distillation_loss(logits, teacher, torch.tensor([1.0, float("nan")]), label_weight=0.5)  # + 0.5 * 0.3133
        tensor(0.7199)
    """
    loss = soft_target_bce(student_logits, teacher_scores)
    if labels is not None and label_weight > 0:
        loss = loss + label_weight * soft_target_bce(student_logits, labels)
    return loss
