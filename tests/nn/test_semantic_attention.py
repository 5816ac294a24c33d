import torch

from graphrel.nn.semantic_attention import SemanticAttention


def test_semantic_attention_weights_sum_to_one():
    combined, weights = SemanticAttention(8)(torch.randn(5, 3, 8))
    assert combined.shape == (5, 8)
    assert torch.allclose(weights.sum(1), torch.ones(5))
