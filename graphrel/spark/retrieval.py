"""Retrieve the top-k products of each query of a Spark DataFrame, from a retriever directory.

:func:`retrieve` runs ``mapInPandas`` over the queries: each executor Python worker loads the
retriever once (its catalogue, query encoder and index: exact faiss or HNSW, BM25, or the
XMC model) and keeps it for every later batch, and each batch of queries is searched with
:meth:`graphrel.retrieval.retriever.Retriever.search`, as ``graphrel retrieve`` does.
"""

from __future__ import annotations

from pathlib import Path

from graphrel.errors import GraphrelInputError

__all__ = ["retrieve", "RANKING_SCHEMA"]

RANKING_SCHEMA = "query_id string, rank long, product_id string, score double"
"""The output's columns: one row per query and rank (as ``graphrel retrieve``'s Parquet)."""

def retrieve(df_queries, retriever_dir: str | Path, k: int, *, query_col: str = "query",
             query_id_col: str | None = None, index: str = "exact", batch_size: int = 256,
             threads_per_task: int | None = None):
    """The top ``k`` products of the catalogue for every query row of ``df_queries``.

    Args:
        df_queries: a DataFrame with a query text column (and optionally a query id column).
        retriever_dir: a retriever directory (``RUN/retrieval/retrievers/NAME``), readable at
            this path by the executors (local mode, shared storage, or ``--archives``).
        k: products per query, >= 1 (clamped to the catalogue size; XMC returns at most its
            labels).
        query_col: query text column.
        query_id_col: query id column; None: the query text is the id.
        index: ``exact`` or ``hnsw`` (dense retrievers; BM25 and XMC ignore it).
        batch_size: queries encoded per forward pass, >= 1.
        threads_per_task: torch and faiss threads per worker; default ``spark.task.cpus``.

    Returns:
        A DataFrame ``query_id, rank (1..k), product_id, score`` (:data:`RANKING_SCHEMA`;
        score = cosine in [-1, 1] for dense retrievers, BM25 score >= 0, XMC probability in
        [0, 1]), k rows per query row, in no particular order across queries.

    Raises:
        GraphrelInputError: k, ``batch_size`` or ``threads_per_task`` not a whole number >= 1,
            an unknown ``index``, a missing or non-text query column, an empty query (one
            Spark job checks before any search), or a directory the driver can read that is
            not a retriever's.
    """
    from pyspark.sql import functions as F

    from graphrel.spark.columns import ID_TYPES, TEXT_TYPES, check_whole_numbers
    from graphrel.data.schema import missing_column

    check_whole_numbers(k=k, batch_size=batch_size, threads_per_task=threads_per_task)
    if index not in ("exact", "hnsw"):
        raise GraphrelInputError(f"unknown index {index!r}", fix="pass index='exact' or index='hnsw'")
    types = {field.name: type(field.dataType).__name__ for field in df_queries.schema.fields}
    for column, allowed, option in ((query_col, TEXT_TYPES, "query_col"),
                                    (query_id_col, ID_TYPES, "query_id_col")):
        if column is None:
            continue
        if column not in types:
            raise missing_column(list(types), column, None, f"pass {option} naming the column")
        if types[column] not in allowed:
            raise GraphrelInputError(f"column {column!r} holds {types[column].removesuffix('Type').lower()} "
                                     f"values, not text", fix=f"pass {option} naming a text column")
    retriever_dir = str(retriever_dir)
    if Path(retriever_dir).exists() and not (Path(retriever_dir) / "manifest.json").is_file():
        raise GraphrelInputError("not a retriever directory (no manifest.json)", path=retriever_dir,
                                 fix="pass a retriever directory, e.g. RUN/retrieval/retrievers/bm25")
    bad = F.col(query_col).isNull() | F.col(query_col).rlike(r"^\s*$")
    if query_id_col:
        bad = bad | F.col(query_id_col).isNull() | F.col(query_id_col).cast("string").rlike(r"^\s*$")
    found = df_queries.where(bad).limit(1).collect()
    if found:
        raise GraphrelInputError(f"empty query or query id in the row {found[0].asDict()}",
                                 fix="give every row a non-empty query (and id) or remove the row")
    if threads_per_task is None:
        threads_per_task = int(df_queries.sparkSession.conf.get("spark.task.cpus", "1"))
    selected = df_queries.select(F.col(query_col).alias("_query"),
                                 (F.col(query_id_col) if query_id_col else F.col(query_col))
                                 .cast("string").alias("_query_id"))
    return selected.mapInPandas(_BatchSearch(retriever_dir, k, index, batch_size, threads_per_task), RANKING_SCHEMA)


class _BatchSearch:
    """What each executor worker runs: batches of queries in, their rankings out."""

    def __init__(self, retriever_dir: str, k: int, index: str, batch_size: int, threads: int) -> None:
        self.retriever_dir, self.k, self.index = retriever_dir, k, index
        self.batch_size, self.threads = batch_size, threads

    def __call__(self, batches):
        retriever = worker_retriever(self.retriever_dir, self.index, self.threads)
        for batch in batches:
            if len(batch):
                yield retriever.search(batch["_query"].tolist(), self.k, query_ids=batch["_query_id"].tolist(),
                                       batch_size=self.batch_size)


def worker_retriever(directory: str, index: str, threads: int):
    """The retriever of ``directory``, loaded once per Python process and kept."""
    from graphrel.retrieval.retriever import Retriever
    from graphrel.spark.worker import load_once

    return load_once(("retriever", directory, index), threads,
                     lambda: Retriever.load(directory, threads=threads, index=index))
