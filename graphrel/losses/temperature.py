"""Temperature-rescaled soft targets of a teacher, and their inverse.

Hinton et al., "Distilling the Knowledge in a Neural Network" (NIPS 2014 Deep Learning
Workshop, arXiv 1503.02531): a student learns the teacher's outputs softened by a
temperature T. For one relevance logit z (a sigmoid, not a softmax) the soft target is

    t = sigmoid(z / T)

as in BERT2DNN (Jiang et al., ICDM 2020, arXiv 2010.10442; T=2 on the authors' data).
T > 1 pulls targets towards 0.5; T = 1 keeps the teacher's scores.
"""

from __future__ import annotations

import torch


def temperature_targets(teacher_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Temperature-rescaled soft targets ``sigmoid(teacher_logit / T)``.

    Args:
        teacher_logits: (N,) float, the teacher's raw logits.
        temperature: T > 0; T > 1 softens the targets towards 0.5.

    Returns:
        (N,) float in (0, 1).

    Raises:
        ValueError: if ``temperature <= 0``.

    Example:
        >>> import torch
        >>> temperature_targets(torch.tensor([-2.0, 0.0, 2.0]), temperature=2.0)
        tensor([0.2689, 0.5000, 0.7311])
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return torch.sigmoid(teacher_logits / temperature)


def logits_for_targets(scores: torch.Tensor, temperature: float = 1.0, eps: float = 1e-6) -> torch.Tensor:
    """Inverse of :func:`temperature_targets`: logits whose targets at temperature T are ``scores``.

    ``z = T * logit(s)``, so that ``sigmoid(z / T) = s``. A student distilled from another
    student's scores (BERM-O from the graph student) must learn those scores themselves,
    not a second temperature applied to them.

    Args:
        scores: (N,) float in [0, 1], clipped to [eps, 1 - eps].
        temperature: T > 0 of the student that will learn them.

    Returns:
        (N,) float: ``T * logit(scores)``, so ``temperature_targets(result, T) == scores``.

    Raises:
        ValueError: if ``temperature <= 0``.

    Example:
        >>> import torch
        >>> logits = logits_for_targets(torch.tensor([0.2, 0.5, 0.9]), temperature=2.0)
        >>> logits
        tensor([-2.7726,  0.0000,  4.3944])
        >>> temperature_targets(logits, temperature=2.0)
        tensor([0.2000, 0.5000, 0.9000])
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return torch.logit(scores.double().clamp(eps, 1 - eps)).to(scores.dtype) * temperature
