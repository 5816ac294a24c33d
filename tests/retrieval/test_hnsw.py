import numpy as np
import pytest

from graphrel.errors import GraphrelInputError
from graphrel.retrieval.search.catalogue import Catalogue
from graphrel.retrieval.encoding.encoders import encode, load_encoder
from graphrel.retrieval.search.hnsw import HNSWIndex
from graphrel.retrieval.search.index import ExactIndex, IndexOptions, build_index, l2_normalise
from graphrel.retrieval.serving.retriever import Retriever, hnsw_index_path, save_dense_retriever, save_hnsw_index

from .conftest import toy_pairs


def overlap(found, exact):
    """Mean share of each exact row found (overlap@k)."""
    return np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found, exact)])


@pytest.fixture(scope="module")
def random_unit_vectors():
    rng = np.random.default_rng(0)
    return l2_normalise(rng.normal(size=(2000, 16))), l2_normalise(rng.normal(size=(100, 16)))


def test_a_large_ef_search_finds_the_exact_top_10_and_a_small_one_no_more(random_unit_vectors):
    products, queries = random_unit_vectors
    exact = ExactIndex(products).search(queries, 10)[0]
    index = HNSWIndex(products, m=16, ef_construction=40, ef_search=256, threads=1)
    idx, val = index.search(queries, 10)
    assert idx.dtype == np.int64 and val.dtype == np.float32 and idx.shape == val.shape == (100, 10)
    assert np.allclose(val, np.einsum("qd,qkd->qk", queries, products[idx]), atol=1e-5)  # true inner products
    assert np.all(np.diff(val, axis=1) <= 0) and all(len(set(row)) == 10 for row in idx)
    large = overlap(idx, exact)
    assert large >= 0.95
    index.ef_search = 2
    assert index.ef_search == 2
    assert overlap(index.search(queries, 10, margin=0)[0], exact) <= large


def test_ties_are_ordered_by_catalogue_row():
    rng = np.random.default_rng(1)
    base = l2_normalise(rng.normal(size=(30, 8)))
    products = np.concatenate([base, base, base])  # every vector three times: exact ties
    queries = l2_normalise(rng.normal(size=(20, 8)))
    idx, val = HNSWIndex(products, m=8, ef_search=200, threads=1).search(queries, 5)
    for row in range(len(queries)):
        for a, b, sa, sb in zip(idx[row], idx[row][1:], val[row], val[row][1:]):
            assert sa > sb or (sa == sb and a < b)
    exact_idx, exact_val = ExactIndex(products).search(queries, 5)
    assert np.array_equal(idx, exact_idx) and np.allclose(val, exact_val, atol=1e-5)  # tiny catalogue: all found


def test_k_is_clamped_and_missing_results_are_filled_exactly(random_unit_vectors):
    products, queries = random_unit_vectors
    small = HNSWIndex(products[:40], m=4, ef_search=8, threads=1)
    idx, val = small.search(queries[:5], 500)
    assert idx.shape == (5, 40) and all(sorted(row) == list(range(40)) for row in idx)
    index = HNSWIndex(products[:200], m=2, ef_construction=1, ef_search=8, threads=1)  # a poor graph:
    idx, val = index.search(queries, 150)  # faiss finds fewer than 150 (+ margin) products
    assert index.exact_fallbacks == len(queries) and idx.min() >= 0 and all(len(set(row)) == 150 for row in idx)
    exact_idx, exact_val = ExactIndex(products[:200]).search(queries, 150)
    assert np.array_equal(idx, exact_idx) and np.allclose(val, exact_val, atol=1e-5)  # answered exactly


@pytest.mark.parametrize("options, name", [({"m": 1}, "m"), ({"ef_construction": 0}, "ef_construction"),
                                           ({"ef_search": 0}, "ef_search"), ({"ef_search": 2.5}, "ef_search"),
                                           ({"m": True}, "m")])
def test_hnsw_options_are_validated(random_unit_vectors, options, name):
    with pytest.raises(ValueError, match=f"HNSW {name} must be a whole number"):
        HNSWIndex(random_unit_vectors[0][:50], **options)
    with pytest.raises(GraphrelInputError, match=f"HNSW {name} must be.*fix:"):
        IndexOptions("hnsw", **{f"hnsw_{key}": value for key, value in options.items()})


def test_search_arguments_and_index_kind_are_validated(random_unit_vectors):
    products, queries = random_unit_vectors
    index = HNSWIndex(products[:50], m=4)
    with pytest.raises(ValueError, match="k must be >= 1"):
        index.search(queries, 0)
    with pytest.raises(ValueError, match="query embeddings must be"):
        index.search(queries[:, :4], 3)
    with pytest.raises(ValueError, match="ef_search"):
        index.ef_search = 0
    with pytest.raises(ValueError, match="product embeddings must be"):
        HNSWIndex(np.zeros((0, 4), dtype=np.float32))
    with pytest.raises(GraphrelInputError, match="unknown index 'hsnw'.*did you mean hnsw"):
        IndexOptions.of("hsnw")
    assert isinstance(build_index(products[:50]), ExactIndex)
    assert isinstance(build_index(products[:50], IndexOptions.of("hnsw")), HNSWIndex)


def test_a_retriever_searched_with_hnsw_returns_the_exact_products(tmp_path, tiny_encoder_dir):
    catalogue = Catalogue.from_pairs(toy_pairs())
    encoder = load_encoder(tiny_encoder_dir)
    save_dense_retriever(tmp_path / "dense", query_encoder=encoder, catalogue=catalogue,
                         product_embeddings=encode(encoder, catalogue.texts), name="tiny")
    queries = ["cordless drill", "garden hose", "door", "led light"]
    exact = Retriever.load(tmp_path / "dense").search(queries, 5)
    hnsw = Retriever.load(tmp_path / "dense", index=IndexOptions("hnsw", hnsw_m=4, hnsw_ef_search=32), threads=1)
    assert isinstance(hnsw.index, HNSWIndex) and hnsw.index.ef_search == 32 and hnsw.index.m == 4
    out = hnsw.search(queries, 5)
    assert out.product_id.tolist() == exact.product_id.tolist()
    assert np.allclose(out.score, exact.score, atol=1e-5)
    assert isinstance(Retriever.load(tmp_path / "dense", index="hnsw").index, HNSWIndex)
    with pytest.raises(GraphrelInputError, match="unknown index"):
        Retriever.load(tmp_path / "dense", index="annoy")


def test_a_saved_graph_is_read_back_instead_of_rebuilt(tmp_path, tiny_encoder_dir, random_unit_vectors, monkeypatch):
    import faiss

    products, queries = random_unit_vectors
    index = HNSWIndex(products, m=8, ef_construction=20, ef_search=16, threads=1)
    index.save(tmp_path / "g.faiss")
    again = HNSWIndex.load(tmp_path / "g.faiss", ef_search=48)
    assert (again.m, again.ef_construction, again.ef_search, len(again)) == (8, 20, 48, 2000)
    index.ef_search = 48
    assert np.array_equal(again.search(queries, 10)[0], index.search(queries, 10)[0])
    faiss.write_index(faiss.IndexFlatIP(16), str(tmp_path / "flat.faiss"))
    with pytest.raises(ValueError, match="not a faiss IndexHNSWFlat"):
        HNSWIndex.load(tmp_path / "flat.faiss")

    catalogue = Catalogue.from_pairs(toy_pairs())
    encoder = load_encoder(tiny_encoder_dir)
    save_dense_retriever(tmp_path / "dense", query_encoder=encoder, catalogue=catalogue,
                         product_embeddings=encode(encoder, catalogue.texts), name="tiny")
    options = IndexOptions("hnsw", hnsw_m=4, hnsw_ef_construction=10, hnsw_ef_search=24)
    path = save_hnsw_index(tmp_path / "dense", options)
    assert path == hnsw_index_path(tmp_path / "dense", options) == tmp_path / "dense" / "hnsw_m4_efc10.faiss"
    assert not any(p.name.startswith(".") for p in (tmp_path / "dense").iterdir())
    exact = Retriever.load(tmp_path / "dense").search(["garden hose", "door"], 4)

    def no_build(*args, **kwargs):
        raise AssertionError("built instead of read")

    monkeypatch.setattr("graphrel.retrieval.serving.retriever.build_index", no_build)
    loaded = Retriever.load(tmp_path / "dense", index=options)
    assert loaded.index.ef_search == 24 and loaded.index.m == 4
    assert loaded.search(["garden hose", "door"], 4).product_id.tolist() == exact.product_id.tolist()
    HNSWIndex(products[:5, :1].repeat(32, axis=1), m=4).save(path)  # a stale graph of 5 products
    with pytest.raises(GraphrelInputError, match="saved HNSW index has 5 products"):
        Retriever.load(tmp_path / "dense", index=options)
    with pytest.raises(GraphrelInputError, match="only an HNSW index is saved"):
        save_hnsw_index(tmp_path / "dense", IndexOptions("exact"))
    with pytest.raises(GraphrelInputError, match="not a dense retriever directory"):
        save_hnsw_index(tmp_path, options)
