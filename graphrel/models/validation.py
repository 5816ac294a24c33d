"""Validation AUC and Spearman of relevance scores, accumulated over an epoch and across DDP
ranks with torchmetrics: what every LightningModule here logs as ``val_auc`` (the
checkpoint monitor) and ``val_spearman``.

The figures equal :func:`graphrel.metrics.auc` and :func:`graphrel.metrics.spearman` on the
same pairs (to float32 precision, about 1e-7): AUC of the scores against ``label >=
threshold`` (ties counted half, as scikit-learn), Spearman with ties averaged (as SciPy),
NaN where those give NaN (one relevance class only, constant scores or labels).
"""

from __future__ import annotations

import warnings

import torch
from torch import nn
from torchmetrics.classification import BinaryAUROC
from torchmetrics.regression import SpearmanCorrCoef
from torchmetrics.utilities import dim_zero_cat

from graphrel.metrics import RELEVANT_NORMALISED


class _AUROC(BinaryAUROC):
    """``BinaryAUROC`` (exact, no thresholds), NaN when only one class is present."""

    def compute(self) -> torch.Tensor:
        target = dim_zero_cat(self.target)
        if target.numel() == 0 or bool(target.all()) or not bool(target.any()):
            return torch.tensor(float("nan"))
        return super().compute()


class _Spearman(SpearmanCorrCoef):
    """``SpearmanCorrCoef``, NaN (not 0) when scores or labels are constant."""

    def compute(self) -> torch.Tensor:
        preds, target = dim_zero_cat(self.preds), dim_zero_cat(self.target)
        if preds.numel() < 2 or bool((preds == preds[0]).all()) or bool((target == target[0]).all()):
            return torch.tensor(float("nan"))
        return super().compute()


class RelevanceValidation(nn.Module):
    """Epoch figures of relevance scores against human labels, correct across DDP ranks.

    Call :meth:`update` in ``validation_step`` and :meth:`log` in
    ``on_validation_epoch_end``: the states of every rank are gathered before computing, so
    each rank logs the figure of all pairs validated (a pair validated by several ranks
    counts once per rank: AUC and Spearman are unchanged when every pair is repeated alike).

    Args:
        threshold: normalised label at or above which a pair counts as relevant (AUC).

    Shapes:
        - update(scores, labels): (B,) float scores (in [0, 1]: torchmetrics reads values
          outside as logits), (B,) float labels in [0, 1], NaN = unlabelled (skipped)
    """

    def __init__(self, threshold: float = RELEVANT_NORMALISED) -> None:
        super().__init__()
        self.threshold = threshold
        self.auc = _AUROC()
        with warnings.catch_warnings():  # that it keeps every score: the validation split is small
            warnings.filterwarnings("ignore", message=".*will save all targets and predictions.*")
            self.spearman = _Spearman()

    def update(self, scores: torch.Tensor, labels: torch.Tensor) -> None:
        scores, labels = scores.detach().float(), labels.detach().float()
        keep = ~torch.isnan(labels)
        scores, labels = scores[keep], labels[keep]
        self.auc.update(scores, (labels.double() >= self.threshold - 1e-9).long())
        self.spearman.update(scores, labels)

    def log(self, module, prefix: str = "val") -> None:
        """``module.log`` ``{prefix}_auc`` and ``{prefix}_spearman`` (progress bar), then
        reset; nothing when no batch was validated."""
        if self.auc.update_count == 0:
            return
        module.log(f"{prefix}_auc", self.auc.compute(), prog_bar=True)
        module.log(f"{prefix}_spearman", self.spearman.compute(), prog_bar=True)
        self.auc.reset()
        self.spearman.reset()
