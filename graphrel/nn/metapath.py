"""Higher-order relevance: attention over metapath neighbours, then over metapaths.

Reconstruction of BERM's graph part (Liu et al., EMNLP 2022 Industry, arXiv 2210.01701):
the paper states only that metapath neighbours are combined with graph attention. Here
node-level attention is GATv2-style (Brody et al., ICLR 2022) within one metapath, and
metapath-level attention is HAN's semantic attention (Wang et al., WWW 2019).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: Summary statistics per metapath fed to the head next to the attention output.
NUM_STATS = 4


class MetapathAttention(nn.Module):
    """Attention over the neighbours of one metapath.

    Each neighbour j carries its text vector x_j and the teacher score s_j of its
    metapath instance. Message m_j = MLP([W x_j; s_j; cos(x_j, c)]) with c the centre
    text (the pair's product for product neighbours, its query for query neighbours);
    attention a_j = softmax_j(v^T LeakyReLU(U c + m_j)) over real neighbours.

    Args:
        node_dim: D, dimension of text vectors.
        hidden: H, message dimension.

    Shapes:
        - neighbours: (B, C, D); scores: (B, C) in [0, 1] (NaN = no neighbour);
          centre: (B, D)
        - returns: summary (B, H), attention (B, C) (rows sum to 1, or 0 with no
          neighbour), stats (B, 4) = [attention-weighted score, mean score, max score,
          log(1 + count)]
    """

    def __init__(self, node_dim: int, hidden: int = 64) -> None:
        super().__init__()
        self.neighbour = nn.Linear(node_dim, hidden)
        self.features = nn.Linear(2, hidden)
        self.message = nn.Sequential(nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.centre = nn.Linear(node_dim, hidden)
        self.attend = nn.Linear(hidden, 1, bias=False)
        self.empty = nn.Parameter(torch.zeros(hidden))

    def forward(self, neighbours: torch.Tensor, scores: torch.Tensor, centre: torch.Tensor,
                neighbour_projected: torch.Tensor | None = None):
        mask = ~torch.isnan(scores)
        score = torch.nan_to_num(scores, nan=0.0)
        cosine = F.cosine_similarity(neighbours, centre.unsqueeze(1), dim=-1)
        projected = self.neighbour(neighbours) if neighbour_projected is None else neighbour_projected
        message = self.message(projected + self.features(torch.stack([score, cosine], -1)))
        logits = self.attend(F.leaky_relu(self.centre(centre).unsqueeze(1) + message, 0.2)).squeeze(-1)
        logits = logits.masked_fill(~mask, float("-inf"))
        has_any = mask.any(1, keepdim=True)
        attention = torch.where(has_any, torch.softmax(torch.where(has_any, logits, 0.0), 1), 0.0)
        attention = attention * mask
        summary = (attention.unsqueeze(-1) * message).sum(1)
        summary = torch.where(has_any, summary, self.empty.expand_as(summary))
        count = mask.sum(1, keepdim=True).to(score.dtype)
        stats = torch.cat([
            (attention * score).sum(1, keepdim=True),
            score.sum(1, keepdim=True) / count.clamp_min(1.0),
            torch.where(mask, score, -1.0).max(1, keepdim=True).values.clamp_min(0.0),
            torch.log1p(count),
        ], dim=1)
        return summary, attention, stats


class SemanticAttention(nn.Module):
    """HAN metapath-level attention: beta_m = softmax_m(q^T tanh(W z_m + b)) per pair.

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
