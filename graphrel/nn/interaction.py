"""0-order relevance: kernel pooling over the query x title word-interaction matrix."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class KernelPooling(nn.Module):
    """K-NRM kernel pooling (Xiong et al., "End-to-End Neural Ad-hoc Ranking with Kernel
    Pooling", SIGIR 2017).

    Cosine interaction matrix M[i, j] = cos(query token i, title token j); each RBF
    kernel k soft-counts matches near mu_k: phi_k = sum_i log(1 + sum_j exp(-(M_ij -
    mu_k)^2 / (2 sigma_k^2))), summed over the real query tokens. The first kernel
    (mu=1, tiny sigma) counts exact matches.

    Args:
        num_kernels: K >= 2, kernel means spread evenly over [-1, 1] plus the exact one.
        sigma: width of the soft kernels.
        exact_sigma: width of the exact-match kernel.

    Shapes:
        - query: (B, Lq, D), query_mask: (B, Lq) bool
        - title: (B, Lt, D), title_mask: (B, Lt) bool
        - output: (B, K) float >= 0, divided by the number of query tokens (length-normalised)
    """

    def __init__(self, num_kernels: int = 11, sigma: float = 0.1, exact_sigma: float = 1e-3) -> None:
        super().__init__()
        if num_kernels < 2:
            raise ValueError("num_kernels must be >= 2")
        soft = torch.linspace(-1 + 1 / (num_kernels - 1), 1 - 1 / (num_kernels - 1), num_kernels - 1)
        self.register_buffer("mu", torch.cat([torch.ones(1), soft]).view(1, 1, 1, -1))
        sig = torch.full((num_kernels,), sigma)
        sig[0] = exact_sigma
        self.register_buffer("sigma", sig.view(1, 1, 1, -1))
        self.num_kernels = num_kernels

    def forward(self, query: torch.Tensor, query_mask: torch.Tensor, title: torch.Tensor,
                title_mask: torch.Tensor) -> torch.Tensor:
        sim = torch.bmm(F.normalize(query, dim=-1), F.normalize(title, dim=-1).transpose(1, 2))
        kernels = torch.exp(-((sim.unsqueeze(-1) - self.mu) ** 2) / (2 * self.sigma ** 2))
        kernels = kernels * title_mask[:, None, :, None]
        per_query_token = torch.log1p(kernels.sum(2))  # (B, Lq, K)
        qmask = query_mask.unsqueeze(-1).to(per_query_token.dtype)
        return (per_query_token * qmask).sum(1) / qmask.sum(1).clamp_min(1.0)
