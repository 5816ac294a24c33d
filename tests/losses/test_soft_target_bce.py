import math

import torch

from graphrel.losses.soft_target_bce import soft_target_bce


def test_soft_bce_is_minimal_at_the_target_and_ignores_nan():
    target = torch.tensor([0.3, float("nan")])
    at_target = soft_target_bce(torch.logit(torch.tensor([0.3, 0.9])), target)
    off_target = soft_target_bce(torch.logit(torch.tensor([0.6, 0.1])), target)
    assert at_target < off_target
    expected = -(0.3 * math.log(0.3) + 0.7 * math.log(0.7))
    assert math.isclose(at_target.item(), expected, rel_tol=1e-5)
