"""Distillation losses, one per file: the paper, the formula and a runnable example in each.

- :mod:`graphrel.losses.temperature`: soft targets ``sigmoid(teacher_logit / T)`` and
  their inverse (Hinton et al., 2015);
- :mod:`graphrel.losses.soft_target_bce`: sigmoid cross-entropy against soft targets;
- :mod:`graphrel.losses.distillation`: teacher term plus an optional human-label term;
- :mod:`graphrel.losses.listwise_kl`: per-query KL between teacher and student softmaxes
  (Rank-DistiLLM, Schlatt et al., 2024);
- :mod:`graphrel.losses.margin_mse`: MSE between student and teacher score margins within a
  query (MarginMSE, Hofstätter et al., 2020).
"""

from graphrel.losses.distillation import distillation_loss
from graphrel.losses.listwise_kl import listwise_kl
from graphrel.losses.margin_mse import margin_mse
from graphrel.losses.soft_target_bce import soft_target_bce
from graphrel.losses.temperature import logits_for_targets, temperature_targets

__all__ = ["distillation_loss", "listwise_kl", "logits_for_targets", "margin_mse", "soft_target_bce",
           "temperature_targets"]
