import numpy as np
import pandas as pd
import pytest

from graphrel.errors import GraphrelInputError
from graphrel.retrieval.catalogue import Catalogue, judged_test_queries, normalised_threshold
from graphrel.retrieval.evaluation import retrieval_metrics, run_frame, top_k, write_trec_run

from .conftest import toy_pairs


def test_top_k_breaks_ties_by_column_even_across_the_cut():
    scores = np.array([[0.5, 0.9, 0.5, 0.5, 0.1], [1.0, 1.0, 1.0, 1.0, 1.0]])
    idx, val = top_k(scores, 3)
    assert idx.tolist() == [[1, 0, 2], [0, 1, 2]]
    assert val.tolist() == [[0.9, 0.5, 0.5], [1.0, 1.0, 1.0]]
    assert top_k(scores, 99)[0].shape == (2, 5)  # clamped
    with pytest.raises(ValueError):
        top_k(scores, 0)


def test_top_k_matches_a_full_sort():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, size=(20, 50)).astype(float)  # many ties
    idx, _ = top_k(scores, 7)
    for row in range(20):
        expected = sorted(range(50), key=lambda j: (-scores[row, j], j))[:7]
        assert idx[row].tolist() == expected


def test_catalogue_is_sorted_unique_and_round_trips(tmp_path):
    pairs = toy_pairs()
    catalogue = Catalogue.from_pairs(pairs.sample(frac=1.0, random_state=1))
    assert list(catalogue.product_ids) == sorted(set(pairs.product_id))
    catalogue.save(tmp_path)
    again = Catalogue.load(tmp_path)
    assert list(again.product_ids) == list(catalogue.product_ids) and list(again.texts) == list(catalogue.texts)
    with pytest.raises(GraphrelInputError, match="catalogue.parquet"):
        Catalogue.load(tmp_path / "nowhere")


def test_judged_queries_use_the_threshold_and_drop_queries_without_relevant_products():
    pairs = toy_pairs()
    pairs.loc[(pairs.query_id == "paint") & (pairs.split == "test"), "label"] = 0.5
    judged = judged_test_queries(pairs, threshold=0.75)
    assert list(judged.query_ids) == ["door", "drill", "garden hose", "led light"]
    assert judged.without_relevant == 1 and judged.qrels["drill"] == {"p01", "p07"}
    assert normalised_threshold(2.5, {"label_min": 1.0, "label_max": 3.0}) == pytest.approx(0.75)
    with pytest.raises(GraphrelInputError, match="outside the label scale"):
        normalised_threshold(4.0, {"label_min": 1.0, "label_max": 3.0})


def test_metrics_match_hand_computed_values():
    # query a: relevant {x, y}; ranking x, n1, n2, ..., y at rank 50 -> recall@10 = 0.5, recall@100 = 1
    # query b: relevant {z}; ranking n1 z ... -> recall@10 = 1; NDCG@10 = 1/log2(3)
    ids = np.array(["n%02d" % i for i in range(200)] + ["x", "y", "z"], dtype=object)
    where = {p: i for i, p in enumerate(ids)}
    ranking_a = ["x"] + [f"n{i:02d}" for i in range(48)] + ["y"]
    ranking_b = ["n00", "z"] + [f"n{i:02d}" for i in range(1, 49)]
    indices = np.array([[where[p] for p in ranking_a], [where[p] for p in ranking_b]])
    scores = np.zeros(indices.shape)  # all tied: the ranking itself must be what is evaluated
    run = run_frame(["a", "b"], ids, indices, scores)
    metrics = retrieval_metrics(run, {"a": {"x", "y"}, "b": {"z"}})
    ndcg_a = 1.0 / (1 + 1 / np.log2(3))
    assert metrics["recall@10"] == pytest.approx((0.5 + 1.0) / 2)
    assert metrics["recall@100"] == pytest.approx(1.0) and metrics["recall@1000"] == pytest.approx(1.0)
    assert metrics["ndcg@10"] == pytest.approx((ndcg_a + 1 / np.log2(3)) / 2)
    assert metrics["queries"] == 2


def test_a_query_missing_from_the_run_counts_as_zero():
    ids = np.array(["x", "y"], dtype=object)
    run = run_frame(["a"], ids, np.array([[0, 1]]), np.array([[1.0, 0.5]]))
    metrics = retrieval_metrics(run, {"a": {"x"}, "b": {"y"}})
    assert metrics["recall@10"] == pytest.approx(0.5)


def test_trec_run_file(tmp_path):
    run = run_frame(["garden hose"], np.array(["p1", "p2"], dtype=object), np.array([[1, 0]]), np.array([[0.9, 0.1]]))
    write_trec_run(run, tmp_path / "x.trec", tag="bm25")
    lines = (tmp_path / "x.trec").read_text().splitlines()
    assert lines == ["garden_hose Q0 p2 1 0.900000 bm25", "garden_hose Q0 p1 2 0.100000 bm25"]
    assert [p.name for p in tmp_path.iterdir()] == ["x.trec"]


def test_two_stage_table_shows_a_fully_delegated_student_as_its_text_student():
    from graphrel.retrieval.two_stage import two_stage_markdown

    result = {"retriever": "dual_encoder", "depth": 100,
              "first_stage": {"ndcg@10": 0.3, "recall@10": 0.4, "recall@depth": 0.7},
              "rerankers": {"teacher": {"ndcg@10": 0.29, "recall@10": 0.4, "pairs": 200, "pairs_per_second": 300.0,
                                        "paths": {}},
                            "student_korder": {"ndcg@10": 0.32, "recall@10": 0.41, "pairs": 200,
                                               "pairs_per_second": 9000.0,
                                               "paths": {"graph": 0, "text_fallback": 200}},
                            "student_x": {"ndcg@10": 0.31, "recall@10": 0.41, "pairs": 200, "pairs_per_second": 8e3,
                                          "paths": {"graph": 150, "text_fallback": 50}}}}
    table = two_stage_markdown(result)
    assert "student_korder (= its text-only student: text fallback for 200 of 200 pairs) | 0.320 | 0.410 |" in table
    assert "9,000" not in table  # no speed of its own
    assert "student_x (text fallback for 50 of 200 pairs)" in table
