import pytest
import torch

from uneven_groups import assert_matches_reference, shifted_by_group, uneven_groups
import torch.nn.functional as F

from graphrel.losses.listwise_kl import listwise_kl


def _reference(student, teacher, groups, temperature=1.0):
    """Slow reference: a Python loop over groups with F.kl_div."""
    losses = []
    for g in torch.unique(groups).tolist():
        m = (groups == g) & ~torch.isnan(teacher)
        if int(m.sum()) < 2:
            continue
        log_q = F.log_softmax(student[m] / temperature, dim=0)
        log_p = F.log_softmax(teacher[m] / temperature, dim=0)
        losses.append(F.kl_div(log_q, log_p, reduction="sum", log_target=True) * temperature ** 2)
    return torch.stack(losses).mean() if losses else student.sum() * 0.0


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("temperature", [0.5, 1.0, 3.0])
def test_matches_slow_reference_value_and_gradient(seed, temperature):
    student, teacher, groups = uneven_groups(seed)
    assert_matches_reference(lambda *args: listwise_kl(*args, temperature),
                             lambda *args: _reference(*args, temperature), student, teacher, groups)


def test_zero_for_per_group_shift_and_positive_otherwise():
    student, teacher, groups = uneven_groups(0)
    shifted = shifted_by_group(student, teacher, groups)
    assert listwise_kl(shifted, teacher, groups).abs().item() < 1e-5
    assert listwise_kl(shifted, teacher, groups, temperature=2.0).abs().item() < 1e-5
    assert listwise_kl(student, teacher, groups).item() > 1e-3


def test_gradients_flow():
    student, teacher, groups = uneven_groups(1)
    student.requires_grad_(True)
    listwise_kl(student, teacher, groups, temperature=2.0).backward()
    assert torch.isfinite(student.grad).all()
    assert student.grad.abs().sum() > 0
    in_loss = ~torch.isnan(teacher) & torch.isin(groups, torch.tensor([1000, 5, 0]))
    assert (student.grad[~in_loss] == 0).all()  # skipped pairs and groups get no gradient


def test_single_pair_groups_are_skipped():
    student = torch.tensor([1.0, -1.0, 4.0, 0.3])
    teacher = torch.tensor([0.0, 2.0, -5.0, 9.0])
    base = listwise_kl(student[:2], teacher[:2], torch.tensor([1, 1]))
    with_singletons = listwise_kl(student, teacher, torch.tensor([1, 1, 2, 3]))
    torch.testing.assert_close(with_singletons, base)  # not diluted by two empty groups
    nan_pair = listwise_kl(student[:3], torch.tensor([0.0, 2.0, float("nan")]), torch.tensor([1, 1, 1]))
    torch.testing.assert_close(nan_pair, base)


def test_no_group_with_two_pairs_gives_connected_zero():
    student = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    loss = listwise_kl(student, torch.tensor([1.0, float("nan"), 0.0]), torch.tensor([4, 4, 5]))
    assert loss.item() == 0.0
    loss.backward()
    assert (student.grad == 0).all()
    assert listwise_kl(student, torch.full((3,), float("nan")), torch.zeros(3, dtype=torch.int64)).item() == 0.0


@pytest.mark.parametrize("kwargs", [
    dict(student_logits=torch.zeros(3), teacher_logits=torch.zeros(2), groups=torch.zeros(3, dtype=torch.int64)),
    dict(student_logits=torch.zeros(3), teacher_logits=torch.zeros(3), groups=torch.zeros(4, dtype=torch.int64)),
    dict(student_logits=torch.zeros(3), teacher_logits=torch.zeros(3), groups=torch.zeros(3, dtype=torch.int64),
         temperature=0.0),
    dict(student_logits=torch.zeros(3), teacher_logits=torch.zeros(3), groups=torch.zeros(3, dtype=torch.int64),
         temperature=-1.0),
])
def test_value_errors(kwargs):
    with pytest.raises(ValueError):
        listwise_kl(**kwargs)
