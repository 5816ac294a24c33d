"""Higher-order relevance, metapath level: HAN's semantic attention over metapath summaries
(Wang et al., "Heterogeneous Graph Attention Network", WWW 2019), as the reconstruction of
BERM's graph part combines its metapaths (Liu et al., EMNLP 2022 Industry, arXiv 2210.01701).
"""

from __future__ import annotations

import torch
from torch import nn


class SemanticAttention(nn.Module):
    """HAN metapath-level attention: beta_m = softmax_m(q^T tanh(W z_m + b)) per pair, the
    combined summary sum_m beta_m z_m.

    Args:
        hidden: H, width of the metapath summaries z_m.
        attention_dim: width of W z_m + b.

    Shapes:
        - summaries: (B, M, H) -> combined (B, H), weights (B, M) summing to 1.
    """

    def __init__(self, hidden: int = 64, attention_dim: int = 64) -> None:
        super().__init__()
        self.project = nn.Linear(hidden, attention_dim)
        self.query = nn.Linear(attention_dim, 1, bias=False)

    def forward(self, summaries: torch.Tensor):
        weights = torch.softmax(self.query(torch.tanh(self.project(summaries))).squeeze(-1), dim=1)
        return (weights.unsqueeze(-1) * summaries).sum(1), weights
