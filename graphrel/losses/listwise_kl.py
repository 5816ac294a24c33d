"""Listwise KL divergence: distil the teacher's ranking of each query's candidates.

Rank-DistiLLM (Schlatt et al., "Rank-DistiLLM: Closing the Effectiveness Gap Between
Cross-Encoders and LLMs for Passage Re-Ranking", arXiv 2405.07920) distils a listwise
teacher into a cross-encoder with a listwise loss over the candidates of each query. For a
query group g with student logits s and teacher logits t of its pairs, and temperature T:

    p = softmax(t_g / T),  q = softmax(s_g / T)
    KL_g = sum_i p_i (log p_i - log q_i)
    loss = T**2 * mean_g KL_g

averaged over the groups with at least 2 pairs (a single pair carries no ordering). The T**2
factor (Hinton et al., 2015) keeps the gradient magnitude independent of T.
"""

from __future__ import annotations

import torch


def _group_logsumexp(x: torch.Tensor, inverse: torch.Tensor, n_groups: int) -> torch.Tensor:
    """(n_groups,) log-sum-exp of ``x`` per group id ``inverse`` in [0, n_groups), by scatter."""
    peak = x.new_full((n_groups,), float("-inf")).scatter_reduce(0, inverse, x, "amax")
    peak = peak.detach()  # the shift cancels analytically; no gradient needed through it
    sums = x.new_zeros(n_groups).index_add(0, inverse, torch.exp(x - peak[inverse]))
    return peak + torch.log(sums)


def listwise_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, groups: torch.Tensor,
                temperature: float = 1.0) -> torch.Tensor:
    """KL(softmax(teacher / T) || softmax(student / T)) per query group, times T**2, averaged.

    Vectorised over groups (``torch.unique`` plus scatter-based log-sum-exp, no Python loop).
    Groups with fewer than 2 pairs (after dropping NaN teacher logits) are skipped.

    Args:
        student_logits: (N,) float, any real values.
        teacher_logits: (N,) float; NaN entries are ignored (those pairs drop out of their group).
        groups: (N,) int64 query-group ids, any integers (not necessarily contiguous).
        temperature: T > 0 dividing both logits; the loss is multiplied by T**2 (Hinton's
            gradient scaling).

    Returns:
        scalar tensor >= 0: T**2 times the mean KL over groups with 2+ pairs, or
        ``student_logits.sum() * 0.0`` (0, graph kept connected) when there are none.

    Raises:
        ValueError: if the three tensors differ in shape or ``temperature <= 0``.

    Example:
        >>> import torch
        >>> student = torch.tensor([1.0, 0.0, 0.5, 2.0])
        >>> teacher = torch.tensor([2.0, 0.0, float("nan"), 1.0])
        >>> groups = torch.tensor([7, 7, 3, 9])  # group 3 has no teacher, group 9 one pair
        >>> listwise_kl(student, teacher, groups)  # only group 7 counts
        tensor(0.0671)
        >>> listwise_kl(teacher + 3.0, teacher, groups).abs().item() < 1e-6  # shift-invariant
        True
        >>> listwise_kl(student, teacher, torch.tensor([1, 2, 3, 4]))  # no group of 2+
        tensor(0.)
    """
    if student_logits.shape != teacher_logits.shape or student_logits.shape != groups.shape:
        raise ValueError(f"shapes differ: student {tuple(student_logits.shape)}, "
                         f"teacher {tuple(teacher_logits.shape)}, groups {tuple(groups.shape)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    mask = ~torch.isnan(teacher_logits)
    if not mask.any():
        return student_logits.sum() * 0.0
    s = student_logits[mask] / temperature
    t = teacher_logits[mask].to(s.dtype) / temperature
    _, inverse = torch.unique(groups[mask], return_inverse=True)
    n_groups = int(inverse.max()) + 1
    counts = torch.bincount(inverse, minlength=n_groups)
    valid = counts >= 2
    if not valid.any():
        return student_logits.sum() * 0.0
    log_q = s - _group_logsumexp(s, inverse, n_groups)[inverse]
    log_p = t - _group_logsumexp(t, inverse, n_groups)[inverse]
    terms = torch.exp(log_p) * (log_p - log_q)
    kl = s.new_zeros(n_groups).index_add(0, inverse, terms)
    return kl[valid].mean() * temperature ** 2
