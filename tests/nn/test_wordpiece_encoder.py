import torch

from graphrel.nn.wordpiece_encoder import WordpieceEncoder


def embeddings(vocab=30, width=8):
    return torch.randn(vocab, width, generator=torch.Generator().manual_seed(0))


def test_projection_starts_as_the_identity_or_the_top_singular_directions():
    table = embeddings()
    assert torch.equal(WordpieceEncoder(table).projection.weight, torch.eye(8))
    narrow = WordpieceEncoder(table, dim=3)
    directions = narrow.projection.weight
    assert directions.shape == (3, 8)
    assert torch.allclose(directions @ directions.T, torch.eye(3), atol=1e-5)


def test_inference_table_gives_the_training_vectors():
    encoder = WordpieceEncoder(embeddings(), dim=4)
    ids = torch.tensor([[5, 6, 0], [7, 0, 0]])
    trained, mask = encoder.tokens(ids)
    encoder.eval()
    with torch.no_grad():
        cached, same_mask = encoder.tokens(ids)
        norms = encoder.token_norms(ids, cached)
    assert torch.allclose(trained, cached, atol=1e-6) and torch.equal(mask, same_mask)
    assert torch.allclose(norms, trained.norm(dim=-1), atol=1e-5)


def test_pool_frozen_averages_real_tokens_only():
    table = embeddings()
    encoder = WordpieceEncoder(table)
    pooled = encoder.pool_frozen(torch.tensor([[5, 6, 0], [0, 0, 0]]))
    assert torch.allclose(pooled[0], table[[5, 6]].mean(0)) and torch.equal(pooled[1], torch.zeros(8))
