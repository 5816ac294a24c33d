import numpy as np
import pytest

from graphrel.retrieval.search.bm25 import BM25Index
from graphrel.retrieval.search.index import ExactIndex, l2_normalise


def test_exact_index_matches_brute_force_with_ties_by_row():
    rng = np.random.default_rng(0)
    base = l2_normalise(rng.normal(size=(30, 8)))
    products = np.concatenate([base, base, base])  # every vector three times: exact ties
    queries = l2_normalise(rng.normal(size=(25, 8)))
    index = ExactIndex(products)
    for margin in (0, 1, 16):
        idx, val = index.search(queries, 5, margin=margin)
        for row in range(len(queries)):
            # each top vector appears at rows j, j+30, j+60: ties must come out in that order
            best = np.argsort(-(base @ queries[row]), kind="stable")[:2]
            assert idx[row].tolist() == [best[0], best[0] + 30, best[0] + 60, best[1], best[1] + 30]
        assert np.all(np.diff(val, axis=1) <= 1e-6)
    assert index.search(queries, 500)[0].shape == (25, 90)
    with pytest.raises(ValueError):
        index.search(queries[:, :4], 3)


def test_l2_normalise_keeps_zero_rows():
    out = l2_normalise(np.array([[3.0, 4.0], [0.0, 0.0]]))
    assert np.allclose(out, [[0.6, 0.8], [0.0, 0.0]]) and out.dtype == np.float32


def test_bm25_ranks_matching_titles_first_and_round_trips(tmp_path):
    texts = ["DeWalt drill bit set", "garden hose 50 ft", "paint brush", "drill press", "hose reel", "hose reel"]
    index = BM25Index(texts)
    idx, val = index.search(["hose reel", "drill", "unknownword"], 3)
    assert idx[0].tolist()[:2] == [4, 5] and val[0, 0] == val[0, 1] > val[0, 2]  # duplicate titles: tie by row
    assert set(idx[1][:2]) == {0, 3} and val[1, 2] == 0.0
    assert val[2].tolist() == [0.0, 0.0, 0.0] and idx[2].tolist() == [0, 1, 2]  # no word known: rows in order
    index.save(tmp_path)
    again = BM25Index.load(tmp_path)
    assert np.array_equal(again.search(["hose reel", "drill"], 6)[0], index.search(["hose reel", "drill"], 6)[0])
    with pytest.raises(ValueError):
        BM25Index(texts, k1=0)
