"""Tensor helpers shared by the modules (functions, no parameters)."""

from __future__ import annotations

import torch


def gather_rows(table: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Rows of ``table`` (N, D) at ``ids`` (any shape, -1 = last row) -> (*ids.shape, D).

    ``index_select`` on flat ids: several times faster than advanced indexing on CPU.
    """
    flat = ids.reshape(-1)
    if (flat < 0).any():
        flat = flat.remainder(len(table))
    return table.index_select(0, flat).view(*ids.shape, table.shape[-1])


def masked_mean(vectors: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over positions where ``mask`` is true: (B, L, D), (B, L) -> (B, D); zeros if none."""
    weights = mask.to(vectors.dtype)
    weights = weights / weights.sum(1, keepdim=True).clamp_min(1.0)
    return torch.bmm(weights.unsqueeze(1), vectors).squeeze(1)


def top_right_singular_vectors(matrix: torch.Tensor, dim: int) -> torch.Tensor:
    """The top-``dim`` right singular vectors of ``matrix`` (N, E) as rows: (dim, E).

    ``x @ result.T`` projects rows of width E onto the ``dim`` directions that keep most of
    the matrix's dot products (used to shrink wordpiece embeddings to a student's width).
    """
    _, _, right = torch.linalg.svd(matrix, full_matrices=False)
    return right[:dim]
