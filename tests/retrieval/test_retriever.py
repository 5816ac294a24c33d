import json

import numpy as np
import pytest

from graphrel.errors import GraphrelInputError
from graphrel.retrieval.search.catalogue import Catalogue
from graphrel.retrieval.encoding.encoders import encode, load_encoder
from graphrel.retrieval.serving.retriever import Retriever, save_bm25_retriever, save_dense_retriever

from .conftest import toy_pairs


@pytest.fixture
def catalogue():
    return Catalogue.from_pairs(toy_pairs())


def test_dense_retriever_round_trip_matches_brute_force(tmp_path, tiny_encoder_dir, catalogue):
    encoder = load_encoder(tiny_encoder_dir)
    products = encode(encoder, catalogue.texts)
    save_dense_retriever(tmp_path / "dense", query_encoder=encoder, catalogue=catalogue,
                         product_embeddings=products, name="tiny", teacher="bigger")
    retriever = Retriever.load(tmp_path / "dense")
    assert retriever.manifest["teacher"] == "bigger" and retriever.manifest["parameters"] > 0
    queries = ["cordless drill", "garden hose", "door"]
    out = retriever.search(queries, 4, query_ids=["a", "b", "c"])
    assert list(out.columns) == ["query_id", "rank", "product_id", "score"]
    assert out.groupby("query_id").size().tolist() == [4, 4, 4] and out["rank"].tolist()[:4] == [1, 2, 3, 4]
    brute = encode(encoder, queries) @ products.T
    for row, q in enumerate("abc"):
        expected = catalogue.product_ids[np.argsort(-brute[row], kind="stable")[:4]]
        assert out[out.query_id == q].product_id.tolist() == list(expected)
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no temporary left


def test_k_larger_than_the_catalogue_is_clamped_with_a_warning(tmp_path, catalogue, caplog):
    save_bm25_retriever(tmp_path / "bm25", catalogue=catalogue)
    retriever = Retriever.load(tmp_path / "bm25")
    with caplog.at_level("WARNING", logger="graphrel"):
        out = retriever.search(["garden hose"], 1000)
    assert len(out) == len(catalogue) and "larger than the catalogue" in caplog.text
    assert out.product_id.iloc[0] in {"p02", "p06"}
    with pytest.raises(ValueError):
        retriever.search(["x"], 0)


def test_load_refuses_what_is_not_a_retriever(tmp_path):
    with pytest.raises(GraphrelInputError, match="no such directory"):
        Retriever.load(tmp_path / "missing")
    (tmp_path / "d").mkdir()
    with pytest.raises(GraphrelInputError, match="no manifest.json"):
        Retriever.load(tmp_path / "d")
    (tmp_path / "d" / "manifest.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(GraphrelInputError, match="unknown retriever format"):
        Retriever.load(tmp_path / "d")


def test_time_search_reports_both_speeds(tmp_path, catalogue):
    save_bm25_retriever(tmp_path / "bm25", catalogue=catalogue)
    speed = Retriever.load(tmp_path / "bm25").time_search(["drill", "hose"] * 10, 5, repeats=2)
    assert set(speed) == {"query_encodings_per_second", "queries_per_second"}
    assert all(v > 0 for v in speed.values())


def test_bfloat16_encoding_keeps_the_directions_of_float32_and_unknown_precisions_raise(tiny_encoder_dir):
    from graphrel.retrieval.encoding.encoders import encoding_agreement

    model = load_encoder(tiny_encoder_dir)
    texts = ["cordless drill 18v", "white paint 1 gal", "brass door hinge", "garden hose 50 ft"]
    exact, fast = encode(model, texts), encode(model, texts, precision="bfloat16")
    assert fast.dtype == np.float32 and fast.shape == exact.shape
    assert np.allclose(np.linalg.norm(fast, axis=1), 1, atol=1e-5)
    assert not np.array_equal(exact, fast)  # bfloat16 did run
    cosine = encoding_agreement(model, texts)
    assert cosine == pytest.approx(float((exact * fast).sum(axis=1).min()), abs=1e-6)
    assert 0.99 < cosine <= 1.0 + 1e-6
    with pytest.raises(ValueError, match="precision"):
        encode(model, texts, precision="float16")
