"""Retrieve the top-k products of each query of a Spark DataFrame, from a retriever directory.

:func:`retrieve` runs ``mapInPandas`` over the queries: each executor Python worker loads the
retriever once (its catalogue, query encoder and index: exact faiss or HNSW, BM25, or the
XMC model) and keeps it for every later batch, and each batch of queries is searched with
:meth:`graphrel.retrieval.serving.retriever.Retriever.search`, as ``graphrel retrieve`` does. Query ids
are those ``graphrel retrieve`` reads from the same file (a whole number as its digits:
:func:`graphrel.retrieval.serving.command.query_id_texts`, applied in the workers), and each id must
be on one row, as there.
"""

from __future__ import annotations

from pathlib import Path

from graphrel.errors import GraphrelInputError

__all__ = ["retrieve", "check_unique_ids", "RANKING_SCHEMA"]

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
            an unknown ``index``, a missing or non-text query column, an id column neither
            text nor whole numbers, an empty query or id, a query id on two or more rows
            (without ``query_id_col``: a query text on two or more rows; two Spark jobs check
            before any search), or a directory the driver can read that is not a retriever's.
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
    check_unique_ids(df_queries, query_col, query_id_col)
    if threads_per_task is None:
        threads_per_task = int(df_queries.sparkSession.conf.get("spark.task.cpus", "1"))
    # the id as it is (text, a whole number, a decimal): the workers write it as graphrel retrieve does
    selected = df_queries.select(F.col(query_col).alias("_query"),
                                 F.col(query_id_col or query_col).alias("_query_id"))
    return selected.mapInPandas(_BatchSearch(retriever_dir, k, index, batch_size, threads_per_task), RANKING_SCHEMA)


def check_unique_ids(df_queries, query_col: str, query_id_col: str | None, shown: int = 3) -> None:
    """Refuse a query id on two or more rows (one Spark job; two more, on failure, to name them).

    Ids are compared as the column holds them, which is as their texts: a column's values and
    their :func:`~graphrel.retrieval.serving.command.query_id_texts` go one to one.

    Raises:
        GraphrelInputError: naming the first ``shown`` repeated ids (in id order), how many
            rows each is on and, for the first, its rows' query texts; and how many more repeat.
    """
    import pandas as pd
    from pyspark.sql import functions as F

    from graphrel.retrieval.serving.command import query_id_texts, short_text

    column = query_id_col or query_col
    repeated = df_queries.groupBy(F.col(column).alias("_id")).count().where(F.col("count") > 1)
    found = repeated.orderBy("_id").limit(shown + 1).collect()
    if not found:
        return
    more = 0 if len(found) <= shown else repeated.count() - shown
    found = found[:shown]
    names = query_id_texts(pd.Series([row["_id"] for row in found], dtype=object)).tolist()
    named = [f"{short_text(name)} {'appears ' * (i == 0)}on {row['count']} rows"
             for i, (name, row) in enumerate(zip(names, found))]
    what = "query id" if query_id_col else "query"
    message = f"{what} {named[0]}"
    if query_id_col:
        texts = df_queries.where(F.col(column) == found[0]["_id"]).select(query_col).orderBy(query_col).limit(shown)
        texts = [short_text(row[0]) for row in texts.collect()] + (["..."] if found[0]["count"] > shown else [])
        message += f" (queries {', '.join(texts)})"
    message += "".join(f", {n}" for n in named[1:])
    if more:
        message += f", and {more} more {what} repeats" if more == 1 else \
            f", and {more} more {'query ids' if query_id_col else 'queries'} repeat"
    if query_id_col:
        raise GraphrelInputError(message, fix=f"give each query its own id in {query_id_col!r}, or pass "
                                              f"query_id_col=None to use the query text as id")
    raise GraphrelInputError(f"{message}; with no query_id_col the query text is the id, so each query must "
                             f"be on one row", fix=f"de-duplicate the queries (df_queries.dropDuplicates"
                                                   f"([{query_col!r}])), or pass query_id_col naming a column "
                                                   f"of unique ids")


class _BatchSearch:
    """What each executor worker runs: batches of queries in, their rankings out."""

    def __init__(self, retriever_dir: str, k: int, index: str, batch_size: int, threads: int) -> None:
        self.retriever_dir, self.k, self.index = retriever_dir, k, index
        self.batch_size, self.threads = batch_size, threads

    def __call__(self, batches):
        from graphrel.retrieval.serving.command import query_id_texts

        retriever = worker_retriever(self.retriever_dir, self.index, self.threads)
        for batch in batches:
            if len(batch):
                yield retriever.search(batch["_query"].tolist(), self.k,
                                       query_ids=query_id_texts(batch["_query_id"]).tolist(),
                                       batch_size=self.batch_size)


def worker_retriever(directory: str, index: str, threads: int):
    """The retriever of ``directory``, loaded once per Python process and kept."""
    from graphrel.retrieval.serving.retriever import Retriever
    from graphrel.spark.worker import load_once

    return load_once(("retriever", directory, index), threads,
                     lambda: Retriever.load(directory, threads=threads, index=index))
