"""Bag-of-n-grams text vectors: one embedding table, each bag combined as sum / sqrt(n).

As BERT2DNN (Jiang et al., "BERT2DNN: BERT Distillation with Massive Unlabeled Data for
Online E-Commerce Search", ICDM 2020, arXiv 2010.10442) with TensorFlow's
``combiner="sqrtn"``.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class NgramBag(nn.EmbeddingBag):
    """An n-gram table whose bags are pooled as sum / sqrt(n) (zeros for an empty bag).

    A subclass of ``nn.EmbeddingBag`` (mode ``"sum"``, sparse gradients: a step touches
    only its batch's rows), so its only parameter is ``weight`` (N, D). Rows start from a
    truncated normal with std 1/sqrt(D) cut at two std, as TensorFlow's embedding column.

    Args:
        num_embeddings: N, rows of the table (vocabulary n-grams and hashing buckets).
        embedding_dim: D.

    Shapes:
        - forward(ids, offsets): ids (M,) int64, the bags' n-gram ids back to back;
          offsets (B,) int64, where each bag starts in ``ids`` -> (B, D) float
    """

    def __init__(self, num_embeddings: int, embedding_dim: int) -> None:
        super().__init__(num_embeddings, embedding_dim, mode="sum", sparse=True)
        std = 1.0 / math.sqrt(embedding_dim)
        nn.init.trunc_normal_(self.weight, std=std, a=-2 * std, b=2 * std)

    def forward(self, ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        lengths = torch.diff(offsets, append=offsets.new_tensor([len(ids)]))
        return super().forward(ids, offsets) * lengths.clamp_min(1).to(torch.float32).rsqrt().unsqueeze(1)
