import torch

from graphrel.nn.functional import gather_rows, masked_mean, top_right_singular_vectors


def test_gather_rows_reads_minus_one_as_the_last_row():
    table = torch.arange(12.0).view(4, 3)
    ids = torch.tensor([[0, -1], [2, 3]])
    assert torch.equal(gather_rows(table, ids), table[ids.remainder(4)])
    assert gather_rows(table, ids).shape == (2, 2, 3)


def test_masked_mean_skips_masked_positions_and_gives_zeros_when_none():
    vectors = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]], [[5.0, 5.0], [6.0, 6.0], [7.0, 7.0]]])
    mask = torch.tensor([[True, True, False], [False, False, False]])
    assert torch.allclose(masked_mean(vectors, mask), torch.tensor([[2.0, 3.0], [0.0, 0.0]]))


def test_top_right_singular_vectors_span_the_matrix_rows():
    g = torch.Generator().manual_seed(0)
    matrix = torch.randn(50, 2, generator=g) @ torch.randn(2, 6, generator=g)  # rank 2
    directions = top_right_singular_vectors(matrix, 2)
    assert directions.shape == (2, 6)
    assert torch.allclose(directions @ directions.T, torch.eye(2), atol=1e-5)
    assert torch.allclose(matrix @ directions.T @ directions, matrix, atol=1e-4)  # nothing lost at rank 2
