"""MarginMSE: match the student's score margins between candidates to the teacher's.

Hofstätter et al., "Improving Efficient Neural Ranking Models with Cross-Architecture
Knowledge Distillation" (arXiv 2010.02666) train a student on the mean squared error between
the student's and the teacher's margins. Generalised from (query, positive, negative)
triplets to every ordered pair (i, j), i != j, of pairs in the same query group, with
student logits s and teacher logits t:

    loss = mean_{(i, j): g_i = g_j, i != j} ((s_i - s_j) - (t_i - t_j))**2

over the pairs whose teacher logit is not NaN. Like any margin loss it is invariant to adding
a constant to the student logits of a group.
"""

from __future__ import annotations

import torch


def margin_mse(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
               groups: torch.Tensor) -> torch.Tensor:
    """Mean squared error between student and teacher margins over same-group pairs (i, j).

    Args:
        student_logits: (N,) float, any real values.
        teacher_logits: (N,) float; NaN entries are ignored (those pairs form no margin).
        groups: (N,) int64 query-group ids, any integers (not necessarily contiguous).

    Returns:
        scalar tensor >= 0: the mean of ((s_i - s_j) - (t_i - t_j))**2 over ordered pairs
        i != j in the same group, both with a teacher logit, or ``student_logits.sum() * 0.0``
        (0, graph kept connected) when there is no such pair.

    Raises:
        ValueError: if the three tensors differ in shape.

    Example:
        >>> import torch
        >>> student = torch.tensor([1.0, 0.0, 0.5, 2.0])
        >>> teacher = torch.tensor([2.0, 0.0, float("nan"), 1.0])
        >>> groups = torch.tensor([7, 7, 7, 9])  # margins only between pairs 0 and 1
        >>> margin_mse(student, teacher, groups)  # ((1 - 0) - (2 - 0))**2
        tensor(1.)
        >>> margin_mse(teacher + 3.0, teacher, groups)  # shift-invariant
        tensor(0.)
        >>> margin_mse(student, teacher, torch.tensor([1, 2, 3, 4]))  # no same-group pair
        tensor(0.)
    """
    if student_logits.shape != teacher_logits.shape or student_logits.shape != groups.shape:
        raise ValueError(f"shapes differ: student {tuple(student_logits.shape)}, "
                         f"teacher {tuple(teacher_logits.shape)}, groups {tuple(groups.shape)}")
    has_teacher = ~torch.isnan(teacher_logits)
    # NaN -> 0 so no NaN enters the graph; those entries are masked out below.
    t = torch.where(has_teacher, teacher_logits, torch.zeros_like(teacher_logits)).to(student_logits.dtype)
    # The dense (N, N) same-group mask is fine here: batches hold at most ~1024 pairs.
    n = student_logits.shape[0]
    same = (groups[:, None] == groups[None, :]) & has_teacher[:, None] & has_teacher[None, :]
    same &= ~torch.eye(n, dtype=torch.bool, device=same.device)
    if not same.any():
        return student_logits.sum() * 0.0
    student_margin = student_logits[:, None] - student_logits[None, :]
    teacher_margin = t[:, None] - t[None, :]
    return (student_margin - teacher_margin)[same].pow(2).mean()
