import pytest
import torch

from graphrel.losses.temperature import temperature_targets


def test_temperature_softens_targets():
    logits = torch.tensor([-4.0, 0.0, 4.0])
    t1, t2 = temperature_targets(logits, 1.0), temperature_targets(logits, 2.0)
    assert torch.allclose(t2, torch.sigmoid(logits / 2))
    assert (t2 - 0.5).abs().max() < (t1 - 0.5).abs().max()
    with pytest.raises(ValueError):
        temperature_targets(logits, 0.0)
