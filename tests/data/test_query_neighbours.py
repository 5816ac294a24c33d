"""Nearest logged queries: a neighbourhood for a query new to the log, the same for a logged
query as if it were new (its own text never found), and the metapaths built from it."""

import numpy as np
import pandas as pd
import pytest
import torch

from graphrel.data.graph import MetapathNeighbours, build_graph
from graphrel.data.query_neighbours import NearestLoggedQueries

LOGGED = ["angle bracket", "deck screws", "Angle  Bracket", "angle brackets steel", "garden hose"]


def test_the_query_own_text_key_is_never_a_neighbour():
    logged = NearestLoggedQueries(LOGGED, m=4, min_similarity=0.1)
    ids, similarity = logged.search(["ANGLE bracket"])
    found = [LOGGED[i] for i in ids[0] if i >= 0]
    assert "angle bracket" not in found and "Angle  Bracket" not in found
    assert found[0] == "angle brackets steel"


def test_neighbours_are_most_similar_first_and_above_the_threshold():
    logged = NearestLoggedQueries(LOGGED, m=3, min_similarity=0.5)
    ids, similarity = logged.search(["angle brackets", "xyzzy"])
    real = ids[0] >= 0
    assert real[0] and np.all(np.diff(similarity[0][real]) <= 1e-6)
    assert (similarity[0][real] >= 0.5).all()
    assert np.isnan(similarity[0][~real]).all() and (ids[0][~real] == -1).all()
    assert {LOGGED[i] for i in ids[0][real]} <= {"angle bracket", "Angle  Bracket", "angle brackets steel"}
    assert (ids[1] == -1).all() and np.isnan(similarity[1]).all()  # nothing similar


def test_search_equals_scikit_learn_brute_force_cosine():
    """The blocked sparse product + top-k finds what NearestNeighbors(metric="cosine") finds."""
    from sklearn.neighbors import NearestNeighbors

    rng = np.random.default_rng(0)
    words = ["angle", "bracket", "deck", "screw", "screws", "pvc", "pipe", "elbow", "led", "bulb", "gauge", "wire"]
    logged = [" ".join(rng.choice(words, size=rng.integers(1, 4))) for _ in range(300)]
    new = [" ".join(rng.choice(words, size=rng.integers(1, 4))) + "s" for _ in range(50)]
    search = NearestLoggedQueries(logged, m=3, min_similarity=0.0)
    found, similarity = search._nearest(np.asarray(new, dtype=object))
    vectors = search.vectorizer
    reference = NearestNeighbors(n_neighbors=search._k, metric="cosine", algorithm="brute").fit(
        vectors.transform(search.keys))
    distance, expected = reference.kneighbors(vectors.transform(new))
    np.testing.assert_allclose(similarity, 1 - distance, atol=1e-6)  # same similarities, best first
    # the same neighbours wherever the similarity is not tied with another logged query (the
    # last column may tie with a query neither returned)
    untied = np.abs(np.diff(1 - distance, axis=1, append=-1)) > 1e-5
    untied &= np.abs(np.diff(1 - distance, axis=1, prepend=2)) > 1e-5
    untied[:, -1] = False
    assert untied.sum() > 20 and (found[untied] == expected[untied]).all()


def test_small_batches_get_scikit_learns_tf_idf_rows_bit_for_bit():
    """The few-keys path (online requests) makes the same CSR rows as the vectorizer's transform."""
    from graphrel.data.query_neighbours import SMALL_BATCH

    rng = np.random.default_rng(1)
    words = ["angle", "bracket", "deck", "screws", "pvc", "elbow", "1/2 in.", "ß", "ｱ", "x" * 40]
    logged = [" ".join(rng.choice(words, size=rng.integers(1, 5))) for _ in range(200)]
    search = NearestLoggedQueries(logged, m=3)
    keys = [" ".join(rng.choice(words, size=rng.integers(1, 5))) + "s" for _ in range(3 * SMALL_BATCH)]
    keys += ["", "qqqq zzzz", "angle angle angle"]  # no n-gram; none in the vocabulary; repeats
    for start in range(0, len(keys), 5):
        batch = np.asarray(keys[start:start + 5], dtype=object)
        mine, theirs = search._transform(batch), search.vectorizer.transform(batch)
        assert mine.dtype == theirs.dtype == np.float32 and mine.shape == theirs.shape
        for part in ("indptr", "indices", "data"):
            assert np.array_equal(getattr(mine, part), getattr(theirs, part)), part


def test_repeated_queries_get_the_same_neighbours():
    logged = NearestLoggedQueries(LOGGED, m=2, min_similarity=0.0)
    ids, similarity = logged.search(["deck screw", "garden hoses", "deck screw"])
    assert np.array_equal(ids[0], ids[2]) and np.array_equal(similarity[0], similarity[2], equal_nan=True)


@pytest.mark.parametrize("options", [{"m": 0}, {"m": 1.5}, {"m": True}, {"min_similarity": 1.0},
                                     {"min_similarity": -0.1}])
def test_bad_settings_are_refused(options):
    with pytest.raises(ValueError):
        NearestLoggedQueries(LOGGED, **options)


def edges() -> pd.DataFrame:
    rows = [("q0", "angle bracket", "p0", 0.9), ("q0", "angle bracket", "p1", 0.2),
            ("q1", "angle brackets", "p1", 0.6), ("q1", "angle brackets", "p2", 0.8),
            ("q2", "garden hose", "p3", 0.7)]
    frame = pd.DataFrame(rows, columns=["query_id", "query", "product_id", "teacher_score"])
    frame["product_text"] = frame["product_id"] + " title"
    frame["split"], frame["label"] = "train", np.nan
    return frame


def test_similar_query_paths_read_the_teacher_scores_of_similar_queries():
    graph = build_graph(edges())
    neighbours = MetapathNeighbours(graph, cap=3)
    logged = NearestLoggedQueries(graph["query"].text, m=2, min_similarity=0.5)
    ids, similarity = logged.search(["angle bracket s"])  # a new query: both angle-bracket queries
    assert set(ids[0]) == {0, 1}
    weight = dict(zip(ids[0], similarity[0]))
    _, product_index = neighbours.node_indices(["x"], ["p1"])
    paths, statistics = neighbours.similar_query_paths(ids, similarity, product_index)
    assert sorted(paths["Q~Q"].ids[0][:2]) == [0, 1] and paths["Q~Q"].ids[0][2] == -1
    # products of both similar queries, scored similarity x teacher score, p1 from each
    expected = sorted([weight[0] * 0.9, weight[0] * 0.2, weight[1] * 0.6, weight[1] * 0.8], reverse=True)[:3]
    assert np.allclose(paths["Q~Q-P"].scores[0], expected)
    means = {0: (0.9 + 0.2) / 2, 1: (0.6 + 0.8) / 2}
    assert np.allclose(statistics[0], [max(weight.values()),
                                       sum(weight[q] * means[q] for q in (0, 1)) / sum(weight.values()),
                                       max(weight[0] * 0.2, weight[1] * 0.6), 1.0], atol=1e-6)


def test_a_logged_query_gets_the_neighbourhood_it_would_get_if_it_were_new():
    """Training (graph nodes) and scoring (texts) build the same neighbourhood."""
    from graphrel.backbone import load_tokenizer
    from graphrel.data.features import PairFeaturizer
    from graphrel.data.tokens import WordpieceCache

    frame = edges()
    featurizer = PairFeaturizer(build_graph(frame), WordpieceCache(load_tokenizer()), cap=3, similar_queries=2,
                                min_similarity=0.3)
    query_index, product_index = featurizer.neighbours.node_indices(frame.query_id, frame.product_id)
    training = featurizer.from_nodes(query_index, product_index, hide_query=np.ones(len(frame), dtype=bool))
    scoring = featurizer.from_texts(["new"] * len(frame), frame["query"], frame.product_id, frame.product_text)
    for key in ("Q~Q/ids", "Q~Q/scores", "Q~Q-P/ids", "Q~Q-P/scores", "similar_queries"):
        assert torch.equal(training[key].nan_to_num(-9), scoring[key].nan_to_num(-9)), key
    # and a query never finds itself
    own = training["Q~Q/ids"].numpy()
    assert not (own == query_index[:, None]).any()
