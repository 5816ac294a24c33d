"""AXN's offline index: product embeddings from a sparse matrix of CE scores by matrix factorisation.

Yadav et al., "Adaptive Retrieval and Scalable Indexing for k-NN Search with Cross-Encoders"
(ICLR 2024, arXiv 2405.03651), section 3.1. G is a sparse |Q_train| x |I| matrix: CE scores of
k_d items per training query. Both models predict G[q, i] = u_q . v_i and minimise the squared
error on the observed entries only, with AdamW:

- :class:`TransductiveFactorisation` (MF-Trns): free query and item embeddings U, V initialised
  from the dual encoder's. Items no training query observed keep their initial embedding.
- :class:`InductiveFactorisation` (MF-Ind): the dual encoder frozen; each side adds a 2-layer
  MLP with a gated skip, :class:`GatedResidualMLP`: x' = b2 + W2^T gelu(b1 + W1^T x), output
  sigmoid(w) x' + (1 - sigmoid(w)) x, W1 in R^{d x 2d}, the gate w initialised at -5 (the paper:
  without the skip it generalised poorly). It embeds any product the dual encoder embeds.

Two choices of ours (a reconstruction; the paper's dual encoder scores are unnormalised inner
products, ours are cosines in [-1, 1] while CE logits span about +-10): targets are standardised
(``(g - offset) / scale``, offset and scale the mean and standard deviation of the observed
entries; a monotone map, the k-NN are the same), and the dual-encoder embeddings enter both
models multiplied by sqrt(s), s the least-squares slope of standardised targets on dual-encoder
cosines (1 when not positive), so the initial model already predicts on the targets' scale.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class GatedResidualMLP(nn.Module):
    """x -> sigmoid(w) (b2 + W2^T gelu(b1 + W1^T x)) + (1 - sigmoid(w)) x.

    Args:
        dim: d, input and output width (>= 1); the hidden layer is 2d wide.
        gate_init: the gate w before the sigmoid (-5: the output starts as ~0.7% MLP).

    Shapes:
        (..., d) -> (..., d).
    """

    def __init__(self, dim: int, *, gate_init: float = -5.0) -> None:
        super().__init__()
        self.hidden = nn.Linear(dim, 2 * dim)
        self.output = nn.Linear(2 * dim, dim)
        self.gate = nn.Parameter(torch.tensor(float(gate_init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mixed = torch.sigmoid(self.gate)
        return mixed * self.output(nn.functional.gelu(self.hidden(x))) + (1 - mixed) * x


class InductiveFactorisation(nn.Module):
    """MF-Ind: frozen dual-encoder embeddings, a trained :class:`GatedResidualMLP` per side.

    Args:
        query_embeddings: (Q_train, d) dual-encoder embeddings of the training queries (frozen).
        item_embeddings: (N, d) dual-encoder embeddings of the items (frozen).
        input_scale: sqrt(s) multiplying both sides' inputs (> 0).
        gate_init: the gates' initial value.
    """

    def __init__(self, query_embeddings, item_embeddings, *, input_scale: float = 1.0, gate_init: float = -5.0) -> None:
        super().__init__()
        self.register_buffer("query_inputs", torch.as_tensor(np.asarray(query_embeddings), dtype=torch.float32))
        self.register_buffer("item_inputs", torch.as_tensor(np.asarray(item_embeddings), dtype=torch.float32))
        self.register_buffer("input_scale", torch.tensor(float(input_scale)))
        dim = self.item_inputs.shape[1]
        self.query_side = GatedResidualMLP(dim, gate_init=gate_init)
        self.item_side = GatedResidualMLP(dim, gate_init=gate_init)

    def embed_queries(self, vectors) -> torch.Tensor:
        """(n, d) dual-encoder query embeddings -> (n, d) index query embeddings (the parametric u)."""
        return self.query_side(torch.as_tensor(vectors, dtype=torch.float32) * self.input_scale)

    def embed_items(self, vectors) -> torch.Tensor:
        """(n, d) dual-encoder product embeddings -> (n, d) index product embeddings V."""
        return self.item_side(torch.as_tensor(vectors, dtype=torch.float32) * self.input_scale)

    def forward(self, query_rows: torch.Tensor, item_rows: torch.Tensor) -> torch.Tensor:
        """Predicted standardised scores (n,) of entries (query_rows[j], item_rows[j])."""
        queries, query_at = torch.unique(query_rows, return_inverse=True)  # each row's MLP once per batch
        items, item_at = torch.unique(item_rows, return_inverse=True)
        u = self.embed_queries(self.query_inputs[queries])[query_at]
        v = self.embed_items(self.item_inputs[items])[item_at]
        return (u * v).sum(-1)

    @torch.no_grad()
    def item_embeddings(self) -> torch.Tensor:
        """(N, d) index embeddings of the items it was built on."""
        return self.embed_items(self.item_inputs)


class TransductiveFactorisation(nn.Module):
    """MF-Trns: free U (Q_train, d) and V (N, d), initialised as sqrt(s) x the dual encoder's.

    Args:
        query_embeddings: (Q_train, d) initial query embeddings.
        item_embeddings: (N, d) initial item embeddings.
        input_scale: sqrt(s) (> 0).
    """

    def __init__(self, query_embeddings, item_embeddings, *, input_scale: float = 1.0) -> None:
        super().__init__()
        scale = float(input_scale)
        self.queries = nn.Parameter(torch.as_tensor(np.asarray(query_embeddings), dtype=torch.float32) * scale)
        self.items = nn.Parameter(torch.as_tensor(np.asarray(item_embeddings), dtype=torch.float32) * scale)
        self.register_buffer("input_scale", torch.tensor(scale))

    def embed_queries(self, vectors) -> torch.Tensor:
        """The parametric u of an unseen query: its dual-encoder embedding x sqrt(s) (no trained query side)."""
        return torch.as_tensor(vectors, dtype=torch.float32) * self.input_scale

    def forward(self, query_rows: torch.Tensor, item_rows: torch.Tensor) -> torch.Tensor:
        return (self.queries[query_rows] * self.items[item_rows]).sum(-1)

    @torch.no_grad()
    def item_embeddings(self) -> torch.Tensor:
        return self.items.detach().clone()


def standardisation(targets: np.ndarray) -> tuple[float, float]:
    """(offset, scale): mean and standard deviation of the observed scores (scale 1 when 0)."""
    targets = np.asarray(targets, dtype=np.float64)
    scale = float(targets.std())
    return float(targets.mean()), scale if scale > 0 else 1.0


def input_scale(query_embeddings, item_embeddings, query_rows, item_rows, targets) -> float:
    """sqrt(s), s = least-squares slope of ``targets`` on the entries' dual-encoder inner products
    (with an intercept); 1.0 when s is not positive (the dual encoder disagrees with the CE)."""
    q = np.asarray(query_embeddings, dtype=np.float64)[np.asarray(query_rows)]
    v = np.asarray(item_embeddings, dtype=np.float64)[np.asarray(item_rows)]
    cosine = (q * v).sum(1)
    targets = np.asarray(targets, dtype=np.float64)
    spread = cosine.var()
    slope = float(np.mean((cosine - cosine.mean()) * (targets - targets.mean())) / spread) if spread > 0 else 0.0
    return float(np.sqrt(slope)) if slope > 0 else 1.0


def fit_factorisation(model: nn.Module, query_rows, item_rows, targets, *, epochs: int = 10,
                      learning_rate: float = 5e-3, batch_size: int = 1024, weight_decay: float = 0.01,
                      seed: int = 0) -> list[float]:
    """Fit ``model`` to the observed entries by AdamW on the squared error.

    Args:
        model: :class:`InductiveFactorisation` or :class:`TransductiveFactorisation`.
        query_rows, item_rows: (E,) int rows of the observed entries.
        targets: (E,) standardised CE scores.
        epochs: passes over the entries (>= 1), shuffled each epoch (seeded).
        learning_rate, batch_size, weight_decay: AdamW settings (> 0, >= 1, >= 0).

    Returns:
        Mean squared error of each epoch (on its batches, while training).

    Raises:
        ValueError: no entry, rows and targets of different lengths, or a bad setting.
    """
    queries = torch.as_tensor(np.asarray(query_rows), dtype=torch.long)
    items = torch.as_tensor(np.asarray(item_rows), dtype=torch.long)
    values = torch.as_tensor(np.asarray(targets), dtype=torch.float32)
    if not len(values) or not len(queries) == len(items) == len(values):
        raise ValueError(f"need as many query rows, item rows and targets (>= 1), got {len(queries)}, {len(items)}, "
                         f"{len(values)}")
    if epochs < 1 or batch_size < 1 or not learning_rate > 0 or weight_decay < 0:
        raise ValueError(f"bad settings: epochs={epochs}, batch_size={batch_size}, learning_rate={learning_rate}, "
                         f"weight_decay={weight_decay}")
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=learning_rate,
                                  weight_decay=weight_decay)
    model.train()
    losses = []
    for _ in range(epochs):
        order = torch.randperm(len(values), generator=generator)
        total = 0.0
        for start in range(0, len(values), batch_size):
            batch = order[start:start + batch_size]
            loss = nn.functional.mse_loss(model(queries[batch], items[batch]), values[batch])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(batch)
        losses.append(total / len(values))
    model.eval()
    return losses
