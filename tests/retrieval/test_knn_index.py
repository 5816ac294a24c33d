"""AXN's index: the sparse score matrix, MF-Trns / MF-Ind fitting, and the resumable CE score cache."""

import numpy as np
import pytest
import torch

from graphrel.retrieval.knn.calls import CrossEncoderCalls, matrix_pair_scores
from graphrel.retrieval.knn.factorisation import (GatedResidualMLP, InductiveFactorisation, TransductiveFactorisation,
                                                  fit_factorisation, input_scale, standardisation)
from graphrel.retrieval.knn.index_build import index_entries
from graphrel.retrieval.knn.recall import mean_top_k_recall
from graphrel.retrieval.knn.score_cache import cached_pair_scores, cached_score_matrix
from graphrel.retrieval.knn.search import adaptive_search, round_sizes


def synthetic(rank=4, train=100, test=20, items=300, dim=4, noise=0.5, seed=0):
    """Exactly rank-``rank`` CE scores and a noisy, normalised "dual encoder" of the same factors."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(train + test, rank)), rng.normal(size=(items, rank))
    rotation = np.linalg.qr(rng.normal(size=(dim, dim)))[0][:rank]
    xq = a @ rotation + noise * rng.normal(size=(train + test, dim))
    xi = b @ rotation + noise * rng.normal(size=(items, dim))
    xq /= np.linalg.norm(xq, axis=1, keepdims=True)
    xi /= np.linalg.norm(xi, axis=1, keepdims=True)
    return a @ b.T, xq, xi


def search_recall(scores, first_rounds, item_embeddings, budget, rounds, offset, scale, k=10):
    answers = [adaptive_search(lambda rows, q=q: scores[q, rows], first_rounds[q], round_sizes(budget, rounds), k,
                               item_embeddings=item_embeddings, offset=offset, scale=scale).rows
               for q in range(len(scores))]
    return mean_top_k_recall(answers, scores, k)


def test_index_entries_dual_encoder_top_and_random():
    de = np.array([[0.1, 0.9, 0.5, 0.2], [0.3, 0.3, 0.0, 0.9]])
    q, i = index_entries("dual_encoder", de, 2, seed=0)
    assert q.tolist() == [0, 0, 1, 1] and i.tolist() == [1, 2, 3, 0]  # ties by row
    q, i = index_entries("random", de, 3, seed=0)
    assert q.tolist() == [0, 0, 0, 1, 1, 1] and len(set(i[:3])) == 3 and len(set(i[3:])) == 3
    with pytest.raises(ValueError, match="unknown index source"):
        index_entries("tfidf", de, 2, seed=0)


def test_mf_trns_recovers_a_low_rank_matrix_and_search_finds_the_exact_top_k():
    torch.manual_seed(0)
    scores, xq, xi = synthetic()
    train, test = scores[:100], scores[100:]
    query_rows, item_rows = index_entries("random", xq[:100] @ xi.T, 50, seed=0)  # 50 of 300 items per query
    offset, scale = standardisation(train[query_rows, item_rows])
    targets = (train[query_rows, item_rows] - offset) / scale
    model = TransductiveFactorisation(xq[:100], xi, input_scale=input_scale(xq[:100], xi, query_rows, item_rows, targets))
    losses = fit_factorisation(model, query_rows, item_rows, targets, epochs=100, learning_rate=1e-2, batch_size=128)
    assert losses[-1] < 0.01 * losses[0]
    unseen = np.ones(train.shape, dtype=bool)
    unseen[query_rows, item_rows] = False
    q, i = np.nonzero(unseen)
    with torch.no_grad():
        predicted = model(torch.as_tensor(q), torch.as_tensor(i)).numpy() * scale + offset
    assert np.sqrt(np.mean((predicted - train[q, i]) ** 2)) < 0.1 * train.std()  # entries never observed
    first = np.argsort(-(xq[100:] @ xi.T), axis=1)  # the noisy dual encoder's ranking
    items = model.item_embeddings().double()
    rerank = search_recall(test, first, items, 40, 1, offset, scale)
    axn = search_recall(test, first, items, 40, 4, offset, scale)
    assert axn == 1.0 and rerank < 0.8  # 40 CE calls per query instead of 300


def test_mf_ind_gate_starts_near_identity_and_the_fit_generalises():
    torch.manual_seed(0)
    mlp = GatedResidualMLP(8, gate_init=-5.0)
    x = torch.randn(3, 8)
    assert torch.allclose(mlp(x), x, atol=0.05) and mlp.hidden.weight.shape == (16, 8)
    rng = np.random.default_rng(0)
    rank, dim = 4, 16
    a, b = rng.normal(size=(120, rank)), rng.normal(size=(300, rank))
    rotation = np.linalg.qr(rng.normal(size=(dim, dim)))[0]
    xi = np.hstack([b, 2 * rng.normal(size=(300, dim - rank))]) @ rotation / 4  # true factors + distractors
    xq = np.hstack([a, rng.normal(size=(120, dim - rank))]) @ rotation / 4
    scores = a @ b.T
    query_rows, item_rows = index_entries("random", xq[:100] @ xi.T, 50, seed=0)
    offset, scale = standardisation(scores[query_rows, item_rows])
    targets = (scores[query_rows, item_rows] - offset) / scale
    model = InductiveFactorisation(xq[:100], xi, input_scale=input_scale(xq[:100], xi, query_rows, item_rows, targets))
    losses = fit_factorisation(model, query_rows, item_rows, targets, epochs=30, learning_rate=5e-3, batch_size=128)
    assert losses[-1] < 0.05 * losses[0]
    first = np.argsort(-(xq[100:] @ xi.T), axis=1)
    items = model.item_embeddings().double()
    assert search_recall(scores[100:], first, items, 30, 3, offset, scale) > 0.95  # 30 of 300 calls
    assert search_recall(scores[100:], first, items, 30, 1, offset, scale) < 0.5


def test_fit_refuses_bad_settings():
    model = TransductiveFactorisation(np.ones((2, 3)), np.ones((4, 3)))
    with pytest.raises(ValueError):
        fit_factorisation(model, [0], [1], [0.5, 0.2])
    with pytest.raises(ValueError):
        fit_factorisation(model, [0], [1], [0.5], epochs=0)


def test_cached_scores_resume_after_an_interruption(tmp_path):
    matrix = np.arange(60, dtype=np.float64).reshape(3, 20)
    counter = CrossEncoderCalls(matrix_pair_scores(matrix))
    done = []

    def interrupted(q, i):
        if len(done) == 2:
            raise KeyboardInterrupt
        done.append(len(q))
        return counter(q, i)

    with pytest.raises(KeyboardInterrupt):
        cached_score_matrix(interrupted, [0, 1, 2], 20, tmp_path / "cache", key="k", chunk_pairs=16)
    assert counter.calls == 32 and len(list((tmp_path / "cache").glob("chunk-*.npz"))) == 2
    scores, figures = cached_score_matrix(counter, [0, 1, 2], 20, tmp_path / "cache", key="k", chunk_pairs=16)
    assert np.array_equal(scores, matrix) and counter.calls == 60  # only the 28 missing pairs scored now
    assert figures["ce_calls"] == 60 and figures["scored_now"] == 28 and figures["seconds"] >= 0
    again, figures = cached_score_matrix(counter, [0, 1, 2], 20, tmp_path / "cache", key="k", chunk_pairs=16)
    assert np.array_equal(again, matrix) and counter.calls == 60 and figures["scored_now"] == 0
    # another key (another teacher) starts over
    cached_pair_scores(counter, [0, 1], [3, 4], tmp_path / "cache", key="other", chunk_pairs=16)
    assert counter.calls == 62 and len(list((tmp_path / "cache").glob("chunk-*.npz"))) == 1
