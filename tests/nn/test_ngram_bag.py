import math

import torch

from graphrel.nn.ngram_bag import NgramBag


def test_bags_are_sums_over_the_square_root_of_their_length_and_empty_bags_are_zero():
    bag = NgramBag(10, 4)
    ids, offsets = torch.tensor([1, 2, 3, 7]), torch.tensor([0, 3, 3])  # bags [1, 2, 3], [], [7]
    out = bag(ids, offsets)
    assert out.shape == (3, 4)
    assert torch.allclose(out[0], bag.weight[[1, 2, 3]].sum(0) / math.sqrt(3))
    assert torch.equal(out[1], torch.zeros(4))
    assert torch.allclose(out[2], bag.weight[7])


def test_initial_rows_are_a_truncated_normal_and_gradients_sparse():
    torch.manual_seed(0)
    bag = NgramBag(2000, 64)
    std = 1 / math.sqrt(64)
    assert bag.weight.abs().max() <= 2 * std + 1e-6
    assert list(dict(bag.named_parameters())) == ["weight"]
    bag(torch.tensor([3]), torch.tensor([0])).sum().backward()
    assert bag.weight.grad.is_sparse
