"""Batches of query groups for the ranking-loss tests."""

import torch


def uneven_groups(seed: int):
    """Student and teacher logits (N,) and group ids (N,): groups of sizes 1, 2, 5, 1, 7, 3 with
    non-contiguous ids, shuffled; NaN teacher logits drop group -3 to a single pair and take two
    pairs out of group 5."""
    gen = torch.Generator().manual_seed(seed)
    ids, sizes = [42, -3, 1000, 7, 5, 0], [1, 2, 5, 1, 7, 3]
    groups = torch.cat([torch.full((n,), i, dtype=torch.int64) for i, n in zip(ids, sizes)])
    groups = groups[torch.randperm(len(groups), generator=gen)]
    student = torch.randn(len(groups), generator=gen) * 3
    teacher = torch.randn(len(groups), generator=gen) * 3
    teacher[(groups == -3).nonzero()[0]] = float("nan")
    teacher[(groups == 5).nonzero()[:2, 0]] = float("nan")
    return student, teacher, groups


def assert_matches_reference(loss, reference, student, teacher, groups) -> None:
    """``loss`` equals the slow ``reference`` in value and in its gradient on ``student``."""
    a = student.clone().requires_grad_(True)
    b = student.clone().requires_grad_(True)
    fast, slow = loss(a, teacher, groups), reference(b, teacher, groups)
    assert fast.dim() == 0
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-6)
    fast.backward()
    slow.backward()
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-6)


def shifted_by_group(student, teacher, groups):
    """The teacher's logits plus a constant per group (float32-safe sizes); the student's where
    the teacher has none: a student every shift-invariant ranking loss scores 0."""
    shift = {g: 2.5 * k - 6.0 for k, g in enumerate(torch.unique(groups).tolist())}
    shifted = teacher + torch.tensor([shift[g] for g in groups.tolist()])
    return torch.where(torch.isnan(shifted), student, shifted)
