"""Scoring on Spark (local[2]) equals single-process ``graphrel score``, for every student type.

The students are those of a tiny run (``configs/tiny_test.yaml``) on synthetic pairs
(:func:`conftest.synthetic_run`): the k-order graph student, BERM-O and BERT2DNN.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from graphrel.errors import GraphrelInputError
from graphrel.spark import score_pairs
from helpers import run_cli

STUDENTS = ["student_korder", "student_online", "student_bert2dnn"]


@pytest.fixture(scope="module")
def tiny_run(synthetic_run):
    return synthetic_run


@pytest.fixture(scope="module")
def pairs_file(tiny_run, tmp_path_factory):
    """Every pair of the tiny run, shuffled, 150 of them repeated, with a pair_id to join back."""
    pairs = pd.read_parquet(tiny_run / "pairs.parquet")[["query_id", "query", "product_id", "product_text"]]
    pairs = pd.concat([pairs, pairs.sample(150, random_state=1)], ignore_index=True)
    pairs = pairs.sample(frac=1.0, random_state=2).reset_index(drop=True)
    pairs.insert(0, "pair_id", np.arange(len(pairs)) * 7 + 3)  # not the row order
    path = tmp_path_factory.mktemp("spark_pairs") / "pairs.parquet"
    pairs.to_parquet(path, index=False)
    return path


def single_process_scores(capsys, model, pairs_file, out, *extra):
    code, _, err = run_cli(capsys, "score", "--model", str(model), "--input", str(pairs_file), "--output", str(out),
                           *extra)
    assert code == 0, err
    scores = pd.read_parquet(out)
    scores["pair_id"] = pd.read_parquet(pairs_file)["pair_id"].to_numpy()[scores["row_id"].to_numpy() - 1]
    return scores


@pytest.mark.parametrize("student", STUDENTS)
def test_spark_command_scores_equal_single_process(spark, capsys, tiny_run, pairs_file, tmp_path, student):
    local = single_process_scores(capsys, tiny_run / student, pairs_file, tmp_path / "local.parquet",
                                  "--query-id-column", "query_id")
    code, out, err = run_cli(capsys, "score", "--engine", "spark", "--model", str(tiny_run / student),
                             "--input", str(pairs_file), "--output", str(tmp_path / "spark"),
                             "--query-id-column", "query_id", "--chunk-size", "500")
    assert code == 0, err
    assert f"scored {len(local):,} pairs on Spark" in out
    scored = pd.read_parquet(tmp_path / "spark")
    source = pd.read_parquet(pairs_file)
    # the single-process layout: row_id (the input's row), the ids, the score
    assert list(scored.columns) == ["row_id", "query_id", "product_id", "score"]
    assert len(scored) == len(source) and scored["row_id"].is_unique
    assert scored.duplicated(["query_id", "product_id"]).sum() == source.duplicated(["query_id", "product_id"]).sum()
    joined = local.merge(scored, on="row_id", suffixes=("_local", "_spark"), validate="one_to_one")
    assert len(joined) == len(source)
    assert (joined["product_id_local"] == joined["product_id_spark"]).all()
    np.testing.assert_allclose(joined["score_spark"], joined["score_local"], rtol=0, atol=1e-6)
    assert scored["score"].between(0, 1).all() and scored["score"].std() > 0
    # all or nothing: only the output and its lock-free folder remain
    assert sorted(p.name for p in tmp_path.iterdir()) == ["local.parquet", "local.parquet.summary.json", "spark"]


def test_score_pairs_on_a_dataframe_query_text_as_id(spark, capsys, tiny_run, pairs_file, tmp_path):
    """The library call on a DataFrame in another row order and partitioning; no query id
    column (the query text is the id, as graphrel score's default)."""
    local = single_process_scores(capsys, tiny_run / "student_korder", pairs_file, tmp_path / "local.parquet")
    frame = spark.read.parquet(str(pairs_file)).drop("query_id").repartition(5).orderBy("product_text")
    scored = score_pairs(frame, tiny_run / "student_korder").toPandas()
    joined = local.merge(scored, on="pair_id", suffixes=("_local", "_spark"), validate="one_to_one")
    assert len(joined) == len(local) == len(scored)
    np.testing.assert_allclose(joined["score_spark"], joined["score_local"], rtol=0, atol=1e-6)


def test_graph_students_read_neighbours(spark, tiny_run, pairs_file):
    """The k-order student reads the graph: scoring with the new_query graph (no test query
    has an edge) changes some scores; the text-only BERT2DNN ignores ``graph``."""
    frame = spark.read.parquet(str(pairs_file))
    full = score_pairs(frame, tiny_run / "student_korder", query_id_col="query_id").toPandas()
    no_test_edges = score_pairs(frame, tiny_run / "student_korder", query_id_col="query_id",
                                graph=tiny_run / "graph_new_query.pt").toPandas()
    merged = full.merge(no_test_edges, on="pair_id")
    assert (np.abs(merged["score_x"] - merged["score_y"]) > 1e-4).any()


def test_score_pairs_checks_on_the_driver(spark, tiny_run, pairs_file, tmp_path):
    frame = spark.read.parquet(str(pairs_file))
    model = tiny_run / "student_bert2dnn"
    with pytest.raises(GraphrelInputError, match="batch_size must be a whole number >= 1, got 0"):
        score_pairs(frame, model, batch_size=0)
    with pytest.raises(GraphrelInputError, match="already has a 'score' column"):
        score_pairs(frame.withColumn("score", frame["pair_id"]), model)
    with pytest.raises(GraphrelInputError, match=r"missing column 'product_txt' \(did you mean 'product_text'\?\)"
                                                 r".*pass product_text_col= naming"):
        score_pairs(frame, model, product_text_col="product_txt")
    with pytest.raises(GraphrelInputError, match="column 'product_text' holds long values, not text"):
        score_pairs(frame.withColumn("product_text", frame["pair_id"]), model)
    with pytest.raises(GraphrelInputError, match="not a model directory"):
        score_pairs(frame, tmp_path)
    blank = frame.withColumn("query", frame["query"].substr(0, 0))  # every query empty
    with pytest.raises(GraphrelInputError, match=r"empty query text \(column 'query'\) in the row with"):
        score_pairs(blank, model)
