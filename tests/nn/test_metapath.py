import math

import torch

from graphrel.nn.metapath import MetapathAttention, SemanticAttention


def _inputs():
    g = torch.Generator().manual_seed(0)
    neighbours = torch.randn(3, 4, 16, generator=g)
    scores = torch.tensor([[0.9, 0.1, float("nan"), float("nan")],
                           [float("nan")] * 4,
                           [0.2, 0.4, 0.6, 0.8]])
    return neighbours, scores, torch.randn(3, 16, generator=g)


def test_attention_sums_to_one_over_real_neighbours_and_zero_without():
    layer = MetapathAttention(16, hidden=8)
    summary, attention, stats = layer(*_inputs())
    assert summary.shape == (3, 8) and attention.shape == (3, 4) and stats.shape == (3, 4)
    assert torch.allclose(attention.sum(1), torch.tensor([1.0, 0.0, 1.0]))
    assert (attention[0, 2:] == 0).all()
    # without neighbours the summary is the learned "empty" vector
    assert torch.allclose(summary[1], layer.empty)


def test_statistics_of_scores():
    layer = MetapathAttention(16, hidden=8)
    _, attention, stats = layer(*_inputs())
    assert math.isclose(stats[0, 1].item(), 0.5, rel_tol=1e-5)  # mean score
    assert math.isclose(stats[0, 2].item(), 0.9, rel_tol=1e-5)  # max score
    assert math.isclose(stats[2, 3].item(), math.log(5), rel_tol=1e-5)  # log(1 + count)
    assert stats[1].abs().sum() == 0
    assert torch.isclose(stats[2, 0], (attention[2] * torch.tensor([0.2, 0.4, 0.6, 0.8])).sum())


def test_padding_neighbours_do_not_change_output():
    layer = MetapathAttention(16, hidden=8)
    neighbours, scores, centre = _inputs()
    a = layer(neighbours, scores, centre)[0]
    neighbours2 = neighbours.clone()
    neighbours2[0, 2:] = 50.0
    assert torch.allclose(a, layer(neighbours2, scores, centre)[0])


def test_semantic_attention_weights_sum_to_one():
    combined, weights = SemanticAttention(8)(torch.randn(5, 3, 8))
    assert combined.shape == (5, 8)
    assert torch.allclose(weights.sum(1), torch.ones(5))
