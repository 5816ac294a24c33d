import numpy as np
import pytest

from graphrel.retrieval.search.index import l2_normalise
from graphrel.retrieval.search.index_comparison import compare_indexes, index_comparison_markdown, overlap_at_k


@pytest.fixture(scope="module")
def random_unit_vectors():
    rng = np.random.default_rng(0)
    return l2_normalise(rng.normal(size=(2000, 16))), l2_normalise(rng.normal(size=(100, 16)))


def test_compare_indexes_reports_every_figure(random_unit_vectors):
    products, queries = random_unit_vectors
    result = compare_indexes(products, queries[:40], cutoffs=(10, 100), timing_k=20, m=8, ef_search=(4, 128),
                             repeats=2, threads=1)
    assert result["products"] == 2000 and result["queries"] == 40 and result["cutoffs"] == [10, 100]
    exact, hnsw = result["exact"], result["hnsw"]
    assert exact["index_bytes"] >= products.nbytes and hnsw["index_bytes"] > exact["index_bytes"]  # + links
    assert exact["build_seconds"] >= 0 and hnsw["build_seconds"] > 0 and exact["queries_per_second"] > 0
    small, large = hnsw["searches"]
    assert [small["ef_search"], large["ef_search"]] == [4, 128]
    assert large["overlap@10"] >= 0.95 and small["overlap@10"] <= large["overlap@10"]
    assert all(0 <= s[f"overlap@{k}"] <= 1 and s["speedup"] > 0 for s in (small, large) for k in (10, 100))
    table = index_comparison_markdown(result)
    assert table.count("| HNSW M=8") == 2 and "| exact (IndexFlatIP) |" in table
    with pytest.raises(ValueError):
        compare_indexes(products, queries, ef_search=())


def test_overlap_at_k_counts_shared_products():
    found = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    exact = np.array([[2, 1, 9, 4], [0, 9, 10, 11]])
    assert overlap_at_k(found, exact, 2) == pytest.approx((2 / 2 + 0) / 2)
    assert overlap_at_k(found, exact, 4) == pytest.approx((3 / 4 + 0) / 2)
    with pytest.raises(ValueError):
        overlap_at_k(found, exact, 5)
