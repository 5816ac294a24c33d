import torch

from graphrel.losses.distillation import distillation_loss


def test_label_term_only_where_labels_exist():
    logits = torch.zeros(2)
    teacher = torch.tensor([0.5, 0.5])
    none = distillation_loss(logits, teacher, torch.tensor([float("nan")] * 2), label_weight=1.0)
    assert torch.isclose(none, distillation_loss(logits, teacher))
    some = distillation_loss(logits, teacher, torch.tensor([1.0, float("nan")]), label_weight=1.0)
    assert some > none
