"""``graphrel.spark.retrieve`` returns, for every query row, the retriever's own top k."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from graphrel.errors import GraphrelInputError
from graphrel.retrieval.search.catalogue import Catalogue
from graphrel.retrieval.encoding.encoders import encode, load_encoder
from graphrel.retrieval.serving.retriever import Retriever, save_bm25_retriever, save_dense_retriever
from graphrel.spark import retrieve
from retrieval.conftest import build_tiny_encoder, toy_pairs

QUERIES = ["cordless drill", "garden hose", "door", "led light bulb", "paint roller", "garden hose"]


@pytest.fixture(scope="module")
def retrievers(tmp_path_factory):
    folder = tmp_path_factory.mktemp("spark_retrievers")
    catalogue = Catalogue.from_pairs(toy_pairs())
    encoder = load_encoder(build_tiny_encoder(folder / "encoder"))
    save_dense_retriever(folder / "dense", query_encoder=encoder, catalogue=catalogue,
                         product_embeddings=encode(encoder, catalogue.texts), name="tiny")
    save_bm25_retriever(folder / "bm25", catalogue=catalogue)
    return folder


@pytest.mark.parametrize("kind", ["dense", "bm25"])
def test_retrieve_equals_the_retriever_per_query(spark, retrievers, kind):
    ids = [f"q{i}" for i in range(len(QUERIES))]  # the repeated query has two ids: two rankings
    frame = spark.createDataFrame(pd.DataFrame({"qid": ids, "text": QUERIES})).repartition(3)
    ranked = retrieve(frame, retrievers / kind, 4, query_col="text", query_id_col="qid").toPandas()
    expected = Retriever.load(retrievers / kind).search(QUERIES, 4, query_ids=ids)
    assert list(ranked.columns) == ["query_id", "rank", "product_id", "score"]
    ranked = ranked.sort_values(["query_id", "rank"]).reset_index(drop=True)
    expected = expected.sort_values(["query_id", "rank"]).reset_index(drop=True)
    assert ranked[["query_id", "rank", "product_id"]].equals(expected[["query_id", "rank", "product_id"]])
    np.testing.assert_allclose(ranked["score"], expected["score"], rtol=0, atol=1e-6)


def test_query_text_is_the_id_by_default(spark, retrievers):
    frame = spark.createDataFrame(pd.DataFrame({"query": QUERIES[:3]}))
    ranked = retrieve(frame, retrievers / "bm25", 2).toPandas()
    assert sorted(ranked["query_id"].unique()) == sorted(QUERIES[:3]) and len(ranked) == 6


def test_retrieve_checks_on_the_driver(spark, retrievers, tmp_path):
    frame = spark.createDataFrame(pd.DataFrame({"query": ["drill", " "], "n": [1, 2]}))
    with pytest.raises(GraphrelInputError, match="k must be a whole number >= 1, got 0"):
        retrieve(frame, retrievers / "bm25", 0)
    with pytest.raises(GraphrelInputError, match="unknown index 'ivf'"):
        retrieve(frame, retrievers / "bm25", 3, index="ivf")
    with pytest.raises(GraphrelInputError, match="missing column 'qery'"):
        retrieve(frame, retrievers / "bm25", 3, query_col="qery")
    with pytest.raises(GraphrelInputError, match="column 'n' holds long values, not text"):
        retrieve(frame, retrievers / "bm25", 3, query_col="n")
    with pytest.raises(GraphrelInputError, match="not a retriever directory"):
        retrieve(frame, tmp_path, 3)
    with pytest.raises(GraphrelInputError, match="empty query or query id in the row"):
        retrieve(frame, retrievers / "bm25", 3)


def test_a_repeated_query_id_is_refused_before_any_search(spark, retrievers):
    """Before: each row was searched and both lists written under the one id."""
    frame = spark.createDataFrame(pd.DataFrame({"qid": ["a", "b", "a", "c", "c", "c"],
                                                "text": ["garden hose", "door", "drill", "x", "y", "z"]}))
    with pytest.raises(GraphrelInputError, match=r"query id 'a' appears on 2 rows \(queries 'drill', 'garden hose'\), "
                                                 r"'c' on 3 rows .*give each query its own id"):
        retrieve(frame, retrievers / "bm25", 3, query_col="text", query_id_col="qid")
    texts = spark.createDataFrame(pd.DataFrame({"query": ["door", "drill", "door"]}))
    with pytest.raises(GraphrelInputError, match="query 'door' appears on 2 rows; with no query_id_col the query "
                                                 "text is the id.*dropDuplicates"):
        retrieve(texts, retrievers / "bm25", 3)


def test_numeric_query_ids_are_their_digits_as_in_graphrel_retrieve(spark, retrievers, tmp_path):
    """A long or decimal(38, 18) id 12300000000 is "12300000000" on Spark and in ``graphrel retrieve``
    (before: Spark's cast gave "12300000000.000000000000000000"; the command refused numbers)."""
    from decimal import Decimal

    import pyarrow as pa
    import pyarrow.parquet as pq

    from graphrel.cli import main

    ids = [12300000000, 7]
    path = tmp_path / "q.parquet"
    pq.write_table(pa.table({"qid": pa.array(ids, pa.int64()), "query": ["door", "drill"],
                             "dec": pa.array([Decimal(i) for i in ids], pa.decimal128(38, 18))}), path)
    frame = spark.read.parquet(str(path))
    for column in ("qid", "dec"):
        ranked = retrieve(frame, retrievers / "bm25", 2, query_id_col=column).toPandas()
        out = tmp_path / f"{column}.parquet"
        assert main(["retrieve", "--model", str(retrievers / "bm25"), "--queries", str(path), "--k", "2",
                     "--output", str(out), "--query-id-column", column]) == 0
        local = pd.read_parquet(out).sort_values(["query_id", "rank"]).reset_index(drop=True)
        ranked = ranked.sort_values(["query_id", "rank"]).reset_index(drop=True)
        assert local.query_id.tolist() == ["12300000000"] * 2 + ["7"] * 2
        assert ranked[["query_id", "rank", "product_id"]].equals(local[["query_id", "rank", "product_id"]])
