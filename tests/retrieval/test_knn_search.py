"""CE k-NN search on synthetic exactly-low-rank score matrices, where the exact answer is known."""

import numpy as np
import pytest
import torch

from graphrel.retrieval.knn.calls import CrossEncoderCalls, matrix_pair_scores
from graphrel.retrieval.knn.recall import mean_top_k_recall, top_k_recall
from graphrel.retrieval.knn.search import (adaptive_search, anncur_sizes, cur_item_embeddings, least_squares_query,
                                           round_sizes)


def low_rank(queries=30, items=400, rank=5, seed=0):
    """S = A B^T (exactly rank ``rank``) and the true item factors B."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(queries, rank)), rng.normal(size=(items, rank))
    return a @ b.T, b


def search_all(scores, first_rounds, sizes, k, **kwargs):
    calls = CrossEncoderCalls(matrix_pair_scores(scores))
    answers = [adaptive_search(lambda rows, q=q: calls(q, rows), first_rounds[q], sizes, k, **kwargs).rows
               for q in range(len(scores))]
    return answers, calls.calls


def test_the_counter_counts_every_pair_and_forks_at_zero():
    scores = np.arange(12.0).reshape(3, 4)
    calls = CrossEncoderCalls(matrix_pair_scores(scores), "x")
    assert calls([0, 2], [1, 3]).tolist() == [1.0, 11.0] and calls.calls == 2
    assert calls(1, [0, 1, 2]).tolist() == [4.0, 5.0, 6.0] and calls.calls == 5  # a scalar query row is repeated
    assert calls(1, []).tolist() == [] and calls.calls == 5
    other = calls.fork("y")
    other(0, [0])
    assert other.calls == 1 and calls.calls == 5
    with pytest.raises(ValueError, match="2 query rows but 1 item rows"):
        calls([0, 1], [0])
    with pytest.raises(ValueError, match="returned 1 scores for 2 pairs"):
        CrossEncoderCalls(lambda q, i: np.zeros(1))([0, 0], [0, 1])


@pytest.mark.parametrize("budget, rounds, sizes", [(50, 10, [5] * 10), (100, 3, [34, 33, 33]), (7, 1, [7]),
                                                   (5, 5, [1] * 5)])
def test_round_sizes_split_the_budget(budget, rounds, sizes):
    assert round_sizes(budget, rounds) == sizes and sum(sizes) == budget


@pytest.mark.parametrize("budget, rounds", [(10, 0), (3, 4), (5, -1)])
def test_round_sizes_refuse_empty_rounds(budget, rounds):
    with pytest.raises(ValueError):
        round_sizes(budget, rounds)


def test_multi_round_search_finds_the_exact_top_k_with_few_calls():
    scores, factors = low_rank()
    rng = np.random.default_rng(1)
    random_first = np.stack([rng.permutation(scores.shape[1]) for _ in scores])
    # one round of 40 random products (retrieve-and-rerank with a useless retriever) misses most
    one, _ = search_all(scores, random_first, [40], 10)
    assert mean_top_k_recall(one, scores, 10) < 0.4
    # four rounds over the true factors: exact after the first least squares (10 >= rank 5)
    answers, calls = search_all(scores, random_first, round_sizes(40, 4), 10, item_embeddings=torch.as_tensor(factors))
    assert mean_top_k_recall(answers, scores, 10) == 1.0
    assert calls == 40 * len(scores) and calls < scores.size / 5  # a tenth of exhaustive scoring
    exact = np.argsort(-scores, axis=1)[:, :10]
    assert all(set(a) == set(e) for a, e in zip(answers, exact))


def test_search_answer_is_sorted_by_exact_score_and_scores_each_product_once():
    scores, factors = low_rank(queries=1, items=50)
    result = adaptive_search(lambda rows: scores[0, rows], np.arange(50), [4, 4, 4], 5,
                             item_embeddings=torch.as_tensor(factors))
    assert len(set(result.scored_rows.tolist())) == result.calls == 12
    assert np.all(np.diff(result.scores) <= 0) and np.allclose(result.scores, scores[0, result.rows])


def test_anncur_with_rank_r_anchors_is_exact_on_a_rank_r_matrix():
    scores, _ = low_rank(queries=40, items=300, rank=5)
    anchors_q, test = scores[:8], scores[8:]  # 8 anchor queries >= rank 5
    embeddings = cur_item_embeddings(anchors_q)
    anchor_items = np.random.default_rng(2).permutation(300)[:10]  # 10 anchor items >= rank 5
    first = np.broadcast_to(anchor_items, (len(test), 10))
    answers, calls = search_all(test, first, anncur_sizes(20, 10), 10, item_embeddings=embeddings)
    assert mean_top_k_recall(answers, test, 10) == 1.0 and calls == 20 * len(test)
    # the CUR approximation itself is exact: c_q pinv(R[:, anchors]) R
    u = least_squares_query(embeddings, anchor_items, test[0, anchor_items])
    assert np.allclose((embeddings @ u).numpy(), test[0], atol=1e-6)


def test_anncur_with_too_few_anchor_queries_is_not_exact():
    scores, _ = low_rank(queries=40, items=300, rank=5)
    embeddings = cur_item_embeddings(scores[:2])  # rank 2 < 5
    anchor_items = np.arange(10)
    answers, _ = search_all(scores[8:], np.broadcast_to(anchor_items, (32, 10)), anncur_sizes(20, 10), 10,
                            item_embeddings=embeddings)
    assert mean_top_k_recall(answers, scores[8:], 10) < 0.9


def test_blend_moves_the_query_towards_the_parametric_embedding():
    scores, factors = low_rank(queries=1, items=100, rank=3, seed=4)
    v = torch.as_tensor(factors)
    target = torch.as_tensor(np.array([1.0, 0.0, 0.0]))  # a parametric u pointing elsewhere
    pure = adaptive_search(lambda rows: scores[0, rows], np.arange(100), [5, 5], 5, item_embeddings=v)
    parametric = adaptive_search(lambda rows: scores[0, rows], np.arange(100), [5, 5], 5, item_embeddings=v,
                                 query_embedding=target, blend=1.0)
    by_u = np.argsort(-factors[:, 0])
    assert set(parametric.scored_rows[5:]) == set(by_u[~np.isin(by_u, np.arange(5))][:5])
    assert top_k_recall(pure.rows, scores[0], 5) == 1.0
    with pytest.raises(ValueError, match="blend"):
        adaptive_search(lambda rows: scores[0, rows], np.arange(100), [5, 5], 5, item_embeddings=v, blend=0.5)


@pytest.mark.parametrize("kwargs, message", [
    ({"sizes": [5, 5]}, "rounds after the first need item embeddings"),
    ({"sizes": [5, 0]}, "every round must score >= 1 product"),
    ({"sizes": [5], "k": 0}, "k must be >= 1"),
])
def test_search_refuses_bad_settings(kwargs, message):
    args = {"sizes": [5], "k": 3, **kwargs}
    with pytest.raises(ValueError, match=message):
        adaptive_search(lambda rows: np.zeros(len(rows)), np.arange(20), args["sizes"], args["k"])


def test_top_k_recall_counts_ties_at_the_kth_score_and_checks_k():
    exact = np.array([5.0, 4.0, 4.0, 1.0, 0.0])
    assert top_k_recall([0, 2], exact, 2) == 1.0  # item 2 ties the 2nd score
    assert top_k_recall([0, 3], exact, 2) == 0.5 and top_k_recall([3, 4, 0], exact, 2) == 0.0
    with pytest.raises(ValueError):
        top_k_recall([0], exact, 6)
