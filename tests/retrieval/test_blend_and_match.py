import math

import pytest
import torch

from graphrel.errors import GraphrelInputError
from graphrel.retrieval.students.blend_and_match import blend_and_match_loss, xmc_score_distillation
from graphrel.retrieval.config import BlendOptions


def hand_case(xmc_weight: float):
    queries = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    candidates = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    weights = torch.tensor([[1.0, 0.0, xmc_weight], [0.0, 1.0, 0.0]])
    negatives = torch.tensor([[False, True, False], [True, False, True]])
    return queries, candidates, weights, negatives


def test_blend_and_match_loss_matches_the_hand_computed_value():
    l11 = math.log(1 + math.exp(-1.0))  # q1's labelled c1 (cos 1) against its one negative c2 (cos 0)
    l13 = math.log(1 + math.exp(-0.6))  # q1's XMC positive c3 (cos 0.6) against c2
    l22 = -math.log(math.e / (math.e + 1 + math.exp(0.8)))  # q2's c2 against c1 and c3
    for weight in (0.0, 0.5, 2.0):
        loss = blend_and_match_loss(*hand_case(weight), scale=1.0)
        assert float(loss) == pytest.approx((l11 + weight * l13 + l22) / 2, rel=1e-5)


def test_xmc_positives_are_never_negatives_and_weights_must_be_non_negative():
    queries, candidates, weights, negatives = hand_case(0.5)
    negatives[0, 2] = True  # c3 both an XMC positive and a negative of q1
    with pytest.raises(ValueError, match="both positive and negative"):
        blend_and_match_loss(queries, candidates, weights, negatives, scale=1.0)
    queries, candidates, weights, negatives = hand_case(-0.5)
    with pytest.raises(ValueError, match=">= 0"):
        blend_and_match_loss(queries, candidates, weights, negatives, scale=1.0)


def test_xmc_score_distillation_is_zero_when_the_encoder_agrees():
    queries = torch.tensor([[1.0, 0.0]])
    candidates = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert float(xmc_score_distillation(queries, candidates, torch.tensor([[1.0, 0.0]]), scale=5.0)) == pytest.approx(0, abs=1e-6)
    assert float(xmc_score_distillation(queries, candidates, torch.tensor([[0.0, 1.0]]), scale=5.0)) > 1


def test_blend_options_are_validated():
    assert BlendOptions(blend_ablation_top_k=(), blend_ablation_xmc_weights=()).check().variants() == {
        "blend_and_match": (10, 0.5)}
    assert list(BlendOptions(blend_ablation_top_k=[0, 30], blend_ablation_xmc_weights=[2.0]).check().variants()) == [
        "blend_and_match", "blend_and_match_k0", "blend_and_match_k30", "blend_and_match_w2"]
    for bad in ({"blend_top_k": -1}, {"blend_xmc_weight": float("nan")}, {"blend_weighting": "rank"},
                {"xmc_transfer_threshold": 1.5}, {"xmc_distillation_weight": 0}, {"xmc_max_char_ngram": 1},
                {"blend_ablation_top_k": [2.5]}):
        with pytest.raises(GraphrelInputError, match=next(iter(bad))):
            BlendOptions(**bad).check()
