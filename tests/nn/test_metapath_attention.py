import math

import torch

from graphrel.nn.metapath_attention import MetapathAttention


def _inputs():
    """B=3 pairs, M=1 metapath, C=4 neighbours, H=8, D=16."""
    g = torch.Generator().manual_seed(0)
    neighbours = torch.randn(3, 1, 4, 8, generator=g)  # already projected
    scores = torch.tensor([[0.9, 0.1, float("nan"), float("nan")],
                           [float("nan")] * 4,
                           [0.2, 0.4, 0.6, 0.8]]).unsqueeze(1)
    return neighbours, scores, torch.randn(3, 1, 8, generator=g)


def _squeeze(outputs):
    return [x.squeeze(1) for x in outputs]


def test_attention_sums_to_one_over_real_neighbours_and_zero_without():
    layer = MetapathAttention(16, hidden=8, num_metapaths=1)
    summary, attention, stats = _squeeze(layer(*_inputs()))
    assert summary.shape == (3, 8) and attention.shape == (3, 4) and stats.shape == (3, 4)
    assert torch.allclose(attention.sum(1), torch.tensor([1.0, 0.0, 1.0]))
    assert (attention[0, 2:] == 0).all()
    # without neighbours the summary is the learned "empty" vector
    assert torch.allclose(summary[1], layer.empty[0])


def test_statistics_of_scores():
    layer = MetapathAttention(16, hidden=8, num_metapaths=1)
    _, attention, stats = _squeeze(layer(*_inputs()))
    assert math.isclose(stats[0, 1].item(), 0.5, rel_tol=1e-5)  # mean score
    assert math.isclose(stats[0, 2].item(), 0.9, rel_tol=1e-5)  # max score
    assert math.isclose(stats[2, 3].item(), math.log(5), rel_tol=1e-5)  # log(1 + count)
    assert stats[1].abs().sum() == 0
    assert torch.isclose(stats[2, 0], (attention[2] * torch.tensor([0.2, 0.4, 0.6, 0.8])).sum())


def test_padding_neighbours_do_not_change_output():
    layer = MetapathAttention(16, hidden=8, num_metapaths=1)
    neighbours, scores, centre = _inputs()
    a = layer(neighbours, scores, centre)[0]
    neighbours2 = neighbours.clone()
    neighbours2[0, :, 2:] = 50.0
    assert torch.allclose(a, layer(neighbours2, scores, centre)[0])


def test_metapaths_are_independent_in_the_batched_computation():
    """Running two metapaths together equals running each alone with its own parameters."""
    torch.manual_seed(0)
    both = MetapathAttention(16, hidden=8, num_metapaths=2)
    neighbours, scores, centres = torch.randn(3, 2, 4, 8), torch.rand(3, 2, 4), torch.randn(3, 2, 8)
    together = both(neighbours, scores, centres)
    for m in range(2):
        alone = MetapathAttention(16, hidden=8, num_metapaths=1)
        alone.load_state_dict({k: (v if k.startswith("projections") else v[m:m + 1]) for k, v in both.state_dict().items()})
        single = alone(neighbours[:, m:m + 1], scores[:, m:m + 1], centres[:, m:m + 1])
        for a, b in zip(together, single):
            assert torch.allclose(a[:, m:m + 1], b, atol=1e-6)
