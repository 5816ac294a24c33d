import math

import pytest
import torch

from graphrel.losses import distillation_loss, soft_target_bce, temperature_targets


def test_temperature_softens_targets():
    logits = torch.tensor([-4.0, 0.0, 4.0])
    t1, t2 = temperature_targets(logits, 1.0), temperature_targets(logits, 2.0)
    assert torch.allclose(t2, torch.sigmoid(logits / 2))
    assert (t2 - 0.5).abs().max() < (t1 - 0.5).abs().max()
    with pytest.raises(ValueError):
        temperature_targets(logits, 0.0)


def test_soft_bce_is_minimal_at_the_target_and_ignores_nan():
    target = torch.tensor([0.3, float("nan")])
    at_target = soft_target_bce(torch.logit(torch.tensor([0.3, 0.9])), target)
    off_target = soft_target_bce(torch.logit(torch.tensor([0.6, 0.1])), target)
    assert at_target < off_target
    expected = -(0.3 * math.log(0.3) + 0.7 * math.log(0.7))
    assert math.isclose(at_target.item(), expected, rel_tol=1e-5)


def test_label_term_only_where_labels_exist():
    logits = torch.zeros(2)
    teacher = torch.tensor([0.5, 0.5])
    none = distillation_loss(logits, teacher, torch.tensor([float("nan")] * 2), label_weight=1.0)
    assert torch.isclose(none, distillation_loss(logits, teacher))
    some = distillation_loss(logits, teacher, torch.tensor([1.0, float("nan")]), label_weight=1.0)
    assert some > none
