"""Distillation losses, one per file: the paper, the formula and a runnable example in each.

- :mod:`graphrel.losses.temperature`: soft targets ``sigmoid(teacher_logit / T)`` and
  their inverse (Hinton et al., 2015);
- :mod:`graphrel.losses.soft_target_bce`: sigmoid cross-entropy against soft targets;
- :mod:`graphrel.losses.distillation`: teacher term plus an optional human-label term.
"""

from graphrel.losses.distillation import distillation_loss
from graphrel.losses.soft_target_bce import soft_target_bce
from graphrel.losses.temperature import logits_for_targets, temperature_targets

__all__ = ["distillation_loss", "logits_for_targets", "soft_target_bce", "temperature_targets"]
