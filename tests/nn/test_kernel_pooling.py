import torch

from graphrel.nn.kernel_pooling import KernelPooling


def test_exact_match_kernel_counts_identical_tokens():
    pool = KernelPooling(num_kernels=11)
    torch.manual_seed(0)
    vocab = torch.randn(5, 8)
    query = vocab[[0, 1]].unsqueeze(0)  # two query tokens
    title = vocab[[0, 2, 3]].unsqueeze(0)  # shares token 0 only
    out = pool(query, torch.ones(1, 2, dtype=torch.bool), title, torch.ones(1, 3, dtype=torch.bool))
    assert out.shape == (1, 11)
    # exact kernel: log(1 + 1) for the matching query token, ~0 for the other, averaged over 2 tokens
    assert torch.isclose(out[0, 0], torch.log(torch.tensor(2.0)) / 2, atol=1e-3)


def test_padding_tokens_do_not_count():
    pool = KernelPooling()
    torch.manual_seed(1)
    query, title = torch.randn(1, 3, 8), torch.randn(1, 4, 8)
    qmask = torch.tensor([[True, True, False]])
    tmask = torch.tensor([[True, True, True, False]])
    a = pool(query, qmask, title, tmask)
    query2, title2 = query.clone(), title.clone()
    query2[0, 2] = 100.0  # change only padded positions
    title2[0, 3] = -100.0
    b = pool(query2, qmask, title2, tmask)
    assert torch.allclose(a, b)


def test_more_overlap_gives_more_exact_matches():
    pool = KernelPooling()
    vocab = torch.randn(6, 8, generator=torch.Generator().manual_seed(2))
    query = vocab[[0, 1]].unsqueeze(0)
    mask2, mask3 = torch.ones(1, 2, dtype=torch.bool), torch.ones(1, 3, dtype=torch.bool)
    one = pool(query, mask2, vocab[[0, 4, 5]].unsqueeze(0), mask3)
    two = pool(query, mask2, vocab[[0, 1, 5]].unsqueeze(0), mask3)
    assert two[0, 0] > one[0, 0]
