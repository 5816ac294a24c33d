import numpy as np
import pytest

from graphrel.errors import GraphrelInputError
from graphrel.retrieval.search.catalogue import Catalogue
from graphrel.retrieval.serving.retriever import Retriever, save_xmc_retriever
from graphrel.retrieval.encoding.xmc import XMCModel, XMCOptions, xmc_training_examples

from .conftest import toy_pairs


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    pairs = toy_pairs()
    queries, labels, _ = xmc_training_examples(pairs, threshold=0.75)
    return XMCModel.fit(queries, labels, tmp_path_factory.mktemp("xmc") / "model", options=XMCOptions(max_leaves=2))


def test_training_examples_are_relevant_train_pairs_and_optional_transfer_of_train_queries():
    pairs = toy_pairs()
    pairs["teacher_score"] = 0.5
    extra = pairs.iloc[:2].copy()
    extra[["split", "label", "teacher_score"]] = ["transfer", np.nan, 0.9]
    extra["query_id"] = extra["query"] = ["drill set", "drill"]  # a train query and a test query
    extra["product_id"] = ["p05", "p06"]
    queries, labels, counts = xmc_training_examples(pairs.__class__(list(pairs.to_dict("records")) + list(extra.to_dict("records"))),
                                                    threshold=0.75, transfer_threshold=0.8)
    assert queries == sorted(f"{q} set" for q in ["drill", "garden hose", "paint", "door", "led light"])
    assert labels[queries.index("drill set")] == ["p01", "p07", "p05"] and counts == {"labelled_pairs": 12, "transfer_pairs": 1}
    with pytest.raises(GraphrelInputError, match="teacher score in"):
        xmc_training_examples(pairs, threshold=0.75, transfer_threshold=1.5)


def test_xmc_ranks_a_training_querys_own_products_first_and_only_returns_labels(model):
    ids, scores = model.top_k(["garden hose set", "paint set"], 3)
    assert set(ids[0]) == {"p02", "p06", "p11"} and set(ids[1][:2]) == {"p03", "p08"}
    assert ids.shape == (2, 3) and np.all(np.diff(scores, axis=1) <= 0) and np.all((scores >= 0) & (scores <= 1))
    ids, _ = model.top_k(["door"], 1000)
    assert ids.shape == (1, 12) and set(ids[0]) <= set(model.product_ids)


def test_xmc_bad_input_is_a_clear_error(model):
    with pytest.raises(GraphrelInputError, match="query 1 is empty"):
        model.top_k(["drill", "  "], 5)
    with pytest.raises(GraphrelInputError, match="never a label"):
        model.pair_scores(["drill"], ["p99"])
    with pytest.raises(GraphrelInputError, match="no relevant product"):
        XMCModel.fit(["drill"], [[]], "unused")
    with pytest.raises(GraphrelInputError, match="liblinear_c"):
        XMCOptions(liblinear_c=0)
    assert model.pair_scores(["garden hose set", "garden hose set"], ["p02", "p01"])[0] > 0


def test_xmc_retriever_directory_round_trip(model, tmp_path):
    catalogue = Catalogue.from_pairs(toy_pairs())
    save_xmc_retriever(tmp_path / "xmc", model=model, catalogue=catalogue)
    retriever = Retriever.load(tmp_path / "xmc")
    run = retriever.search(["paint set"], 2)
    expected, _ = model.top_k(["paint set"], 2)
    assert list(run["product_id"]) == list(expected[0]) and retriever.manifest["kind"] == "xmc"
    assert XMCModel.load(tmp_path / "xmc" / "xmc").top_k(["paint set"], 2)[0].tolist() == expected.tolist()
