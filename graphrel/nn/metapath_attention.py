"""Higher-order relevance, node level: attention over the neighbours of each metapath.

Reconstruction of BERM's graph part (Liu et al., EMNLP 2022 Industry, arXiv 2210.01701):
the paper states only that metapath neighbours are combined with graph attention. Here
node-level attention is GATv2-style (Brody et al., ICLR 2022) within one metapath; the
metapaths' summaries are then combined by :class:`graphrel.nn.semantic_attention.SemanticAttention`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

#: Summary statistics per metapath fed to the head next to the attention output.
NUM_STATS = 4


def _linear_weights(count: int, fan_in: int, fan_out: int) -> tuple[nn.Parameter, nn.Parameter]:
    """Stacked weights (count, fan_in, fan_out) and biases (count, fan_out), nn.Linear's init."""
    bound = 1.0 / math.sqrt(fan_in)
    return (nn.Parameter(torch.empty(count, fan_in, fan_out).uniform_(-bound, bound)),
            nn.Parameter(torch.empty(count, fan_out).uniform_(-bound, bound)))


class MetapathAttention(nn.Module):
    """Attention over the neighbours of each of M metapaths.

    Neighbour j of metapath m carries its text vector x_j and the teacher score s_j of
    its metapath instance; c is the centre text (the pair's product for product
    neighbours, its query for query neighbours); P is the projection of the neighbours'
    node type (one for queries, one for products, shared by the metapaths that reach
    that type). Then

    - h_j = P x_j, similarity cos_j = cos(h_j, P c);
    - message m_j = ReLU(h_j + F_m [s_j; cos_j] + b_m);
    - attention a_j = softmax_j(v_m^T LeakyReLU(A_m P c + m_j)) over real neighbours (GATv2-style);
    - summary z_m = ReLU(W_m sum_j a_j m_j + d_m), a learned vector when there is no neighbour.

    The M metapaths run as one batched computation (parameters stacked). Only the
    per-node table P x depends on the neighbour, so scoring gathers H floats per neighbour
    (:meth:`project` builds the table) and the per-neighbour work is a few H-vectors.

    Args:
        node_dim: D, dimension of text vectors.
        hidden: H, message dimension.
        num_metapaths: M.
        num_node_types: number of neighbour node types (projections P).

    Shapes:
        - neighbours: (B, M, C, H) projected neighbour vectors P x_j; scores: (B, M, C)
          in [0, 1] (NaN = no neighbour); centres: (B, M, H) projected centres P c
        - returns: summaries (B, M, H), attention (B, M, C) (each row sums to 1, or 0
          with no neighbour), stats (B, M, 4) = [attention-weighted score, mean score,
          max score, log(1 + count)]
    """

    def __init__(self, node_dim: int, hidden: int = 32, num_metapaths: int = 1, num_node_types: int = 1) -> None:
        super().__init__()
        m = num_metapaths
        self.projections = nn.ModuleList(nn.Linear(node_dim, hidden) for _ in range(num_node_types))
        features_weight, self.features_bias = _linear_weights(m, 2, hidden)
        # F_m [s; cos] as two contiguous (M, H) rows: broadcasting slices of one tensor was 3x slower
        self.score_weight = nn.Parameter(features_weight.data[:, 0].clone())
        self.similarity_weight = nn.Parameter(features_weight.data[:, 1].clone())
        self.centre_weight, self.centre_bias = _linear_weights(m, hidden, hidden)
        self.attend_weight = nn.Parameter(torch.empty(m, hidden).uniform_(-1 / math.sqrt(hidden), 1 / math.sqrt(hidden)))
        self.output_weight, self.output_bias = _linear_weights(m, hidden, hidden)
        self.empty = nn.Parameter(torch.zeros(m, hidden))

    def project(self, vectors: torch.Tensor, node_type: int = 0) -> torch.Tensor:
        """P x for a node type: (..., D) -> (..., H)."""
        return self.projections[node_type](vectors)

    def forward(self, neighbours: torch.Tensor, scores: torch.Tensor, centres: torch.Tensor):
        mask = ~torch.isnan(scores)
        score = torch.nan_to_num(scores, nan=0.0)
        # Broadcast products, not einsum: these are batches of tiny matrices, slow as GEMMs on CPU.
        centre_unit = F.normalize(centres, dim=-1).unsqueeze(2)  # (B, M, 1, H)
        cosine = (neighbours * centre_unit).sum(-1) / neighbours.norm(dim=-1).clamp_min(1e-8)
        message = torch.addcmul(neighbours + self.features_bias[None, :, None, :], score.unsqueeze(-1),
                                self.score_weight[None, :, None, :])
        message = torch.addcmul(message, cosine.unsqueeze(-1), self.similarity_weight[None, :, None, :]).relu()
        centre = torch.einsum("bmh,mhk->bmk", centres, self.centre_weight) + self.centre_bias
        logits = (F.leaky_relu(centre.unsqueeze(2) + message, 0.2) * self.attend_weight[:, None, :]).sum(-1)
        logits = logits.masked_fill(~mask, float("-inf"))
        has_any = mask.any(-1, keepdim=True)
        attention = torch.where(has_any, torch.softmax(torch.where(has_any, logits, 0.0), -1), 0.0) * mask
        pooled = (attention.unsqueeze(-1) * message).sum(2)
        summary = F.relu(torch.einsum("bmh,mhk->bmk", pooled, self.output_weight) + self.output_bias)
        summary = torch.where(has_any, summary, self.empty.expand_as(summary))
        count = mask.sum(-1, keepdim=True).to(score.dtype)
        stats = torch.cat([
            (attention * score).sum(-1, keepdim=True),
            score.sum(-1, keepdim=True) / count.clamp_min(1.0),
            torch.where(mask, score, -1.0).max(-1, keepdim=True).values.clamp_min(0.0),
            torch.log1p(count),
        ], dim=-1)
        return summary, attention, stats
