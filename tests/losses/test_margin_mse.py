import math

import pytest
import torch

from uneven_groups import assert_matches_reference, shifted_by_group, uneven_groups

from graphrel.losses.margin_mse import margin_mse


def _reference(student, teacher, groups):
    """Slow reference: explicit loop over ordered pairs (i, j) within each group."""
    terms = []
    for g in torch.unique(groups).tolist():
        idx = [i for i in range(len(groups)) if groups[i] == g and not math.isnan(teacher[i])]
        for i in idx:
            for j in idx:
                if i != j:
                    terms.append(((student[i] - student[j]) - (teacher[i] - teacher[j])) ** 2)
    return torch.stack(terms).mean() if terms else student.sum() * 0.0


@pytest.mark.parametrize("seed", range(5))
def test_matches_slow_reference_value_and_gradient(seed):
    student, teacher, groups = uneven_groups(seed)
    assert_matches_reference(margin_mse, _reference, student, teacher, groups)


def test_zero_for_per_group_shift_and_positive_otherwise():
    student, teacher, groups = uneven_groups(0)
    shifted = shifted_by_group(student, teacher, groups)
    assert margin_mse(shifted, teacher, groups).abs().item() < 1e-5
    assert margin_mse(student, teacher, groups).item() > 1e-3


def test_gradients_flow_and_nan_teacher_is_harmless():
    student, teacher, groups = uneven_groups(1)
    student.requires_grad_(True)
    margin_mse(student, teacher, groups).backward()
    assert torch.isfinite(student.grad).all()
    assert student.grad.abs().sum() > 0
    in_loss = ~torch.isnan(teacher) & torch.isin(groups, torch.tensor([1000, 5, 0]))
    assert (student.grad[~in_loss] == 0).all()


def test_single_pair_groups_are_skipped():
    student = torch.tensor([1.0, -1.0, 4.0, 0.3])
    teacher = torch.tensor([0.0, 2.0, -5.0, 9.0])
    base = margin_mse(student[:2], teacher[:2], torch.tensor([1, 1]))
    torch.testing.assert_close(base, torch.tensor(16.0))  # ((1 - -1) - (0 - 2))**2
    torch.testing.assert_close(margin_mse(student, teacher, torch.tensor([1, 1, 2, 3])), base)


def test_no_pair_gives_connected_zero():
    student = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    loss = margin_mse(student, torch.tensor([1.0, float("nan"), 0.0]), torch.tensor([4, 4, 5]))
    assert loss.item() == 0.0
    loss.backward()
    assert (student.grad == 0).all()


@pytest.mark.parametrize("shapes", [(3, 2, 3), (3, 3, 4), (2, 3, 3)])
def test_shape_mismatch_raises(shapes):
    s, t, g = shapes
    with pytest.raises(ValueError):
        margin_mse(torch.zeros(s), torch.zeros(t), torch.zeros(g, dtype=torch.int64))
