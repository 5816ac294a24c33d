"""Score a Spark DataFrame of query-product pairs with any graphrel student.

:func:`score_pairs` adds a ``score`` column through ``mapInPandas`` (Arrow batches of
``spark.sql.execution.arrow.maxRecordsPerBatch`` rows). Each executor Python worker loads
the student once, with its graph's neighbour tables for graph students, and keeps it for
every later batch and task it runs (Spark reuses Python workers by default,
``spark.python.worker.reuse``). Inside a worker, a batch's texts and ids are normalised
exactly as the file loaders do (:func:`graphrel.data.schema.as_text`, stripped) and scored
by the scorer ``graphrel score`` uses (:func:`graphrel.scoring.load.load_scorer`), so the
scores equal the single-process command's on the same rows.
"""

from __future__ import annotations

import os
from pathlib import Path

from graphrel.errors import GraphrelInputError
from graphrel.spark.columns import PairColumns, check_pair_columns, check_whole_numbers, find_bad_row

__all__ = ["score_pairs", "SCORE_COLUMN"]

SCORE_COLUMN = "score"
#: The id columns ``score_pairs(..., id_columns=True)`` adds, as ``graphrel score`` names them.
ID_COLUMNS = ("query_id", "product_id")

def score_pairs(df, model_dir: str | Path, *, query_col: str = "query", product_id_col: str = "product_id",
                product_text_col: str = "product_text", query_id_col: str | None = None,
                graph: str | Path | None = None, batch_size: int = 512, check_rows: bool = True,
                threads_per_task: int | None = None, keep_columns: list[str] | None = None,
                id_columns: bool = False):
    """The rows of ``df`` with a ``score`` column from a trained student.

    Any student directory of a run (k-order graph student, BERM-O, BERT2DNN; see
    :func:`graphrel.scoring.load.load_scorer`). Every row is scored, repeated pairs too; rows
    keep every input column and come in no particular order (keep an id column to join
    back). Lazy: nothing runs until the result is written or collected, except the checks.

    The model directory must be readable at the same path on the driver and the executors
    (local mode, or shared storage), or shipped with ``spark-submit --archives`` and named by
    its path in the executors' working directory. Graph students also read the run's
    ``graph.pt`` (the path their ``student.json`` names, ``../graph.pt``), or ``graph``.

    Args:
        df: a DataFrame with the pair columns.
        model_dir: a student directory (``student.json`` + checkpoint).
        query_col, product_id_col, product_text_col: the pair columns (text; ids may also
            be whole numbers).
        query_id_col: query id column; None: the query text is the id (graph students look
            up a query's neighbours by id).
        graph: a ``graph.pt`` for graph students instead of the manifest's.
        batch_size: pairs per forward pass in a worker, >= 1.
        check_rows: run one Spark job first that finds the first empty or missing pair field
            (:func:`graphrel.spark.columns.find_bad_row`) and raise on the driver. That job
            computes ``df`` once more (its whole lineage); with False, the workers still
            refuse an empty field, failing the job with the same message.
        threads_per_task: torch threads in each worker; default ``spark.task.cpus`` (1), so
            that the workers of one executor do not compete for its cores.
        keep_columns: the columns of ``df`` the result keeps (None: all). Leaving the text
            columns out spares moving them back from the workers and writing them again.
        id_columns: also give ``query_id`` and ``product_id`` (string), the ids as the file
            loaders read them (text, stripped; the query text where there is no query id
            column): the columns ``graphrel score`` writes. ``keep_columns`` must not name
            ``query_id`` or ``product_id`` then.

    Returns:
        A DataFrame: ``keep_columns`` (default: ``df``'s columns), ``query_id`` and
        ``product_id`` with ``id_columns``, and ``score`` (float32, in [0, 1]).

    Raises:
        GraphrelInputError: on the driver: ``batch_size`` or ``threads_per_task`` not a whole
            number >= 1, a ``score`` column already in ``df``, an unknown column in
            ``keep_columns``, a missing or mistyped pair
            column, an empty pair field (``check_rows``), or a model directory that is not a
            student's (when the driver can read it). A row the driver check cannot see (a
            text that is only Unicode white space) fails the Spark job with the same message.
    """
    check_whole_numbers(batch_size=batch_size, threads_per_task=threads_per_task)
    if SCORE_COLUMN in df.columns:
        raise GraphrelInputError(f"the DataFrame already has a {SCORE_COLUMN!r} column",
                                 fix="drop or rename it before scoring")
    columns = PairColumns(query_col, product_id_col, product_text_col, query_id_col)
    check_pair_columns(df, columns)
    keep = list(df.columns) if keep_columns is None else list(keep_columns)
    unknown = [column for column in keep if column not in df.columns]
    if unknown:
        raise GraphrelInputError(f"keep_columns names columns the DataFrame does not have: {', '.join(unknown)}",
                                 fix=f"choose among: {', '.join(df.columns)}")
    if id_columns and {"query_id", "product_id"} & set(keep):
        raise GraphrelInputError("with id_columns the result's query_id and product_id are the read ids; "
                                 "keep_columns may not name them", fix="leave query_id and product_id out of keep_columns")
    model_dir = str(model_dir)
    if Path(model_dir).exists():  # the driver sees it (local mode, shared storage): check it here
        from graphrel.scoring.load import read_student_manifest
        from graphrel.scoring.teacher_scorer import is_teacher_directory

        if not is_teacher_directory(Path(model_dir)):
            read_student_manifest(Path(model_dir))
    if check_rows:
        find_bad_row(df, columns)
    if threads_per_task is None:
        threads_per_task = int(df.sparkSession.conf.get("spark.task.cpus", "1"))
    from pyspark.sql.types import FloatType, StringType, StructField, StructType

    fields = {field.name: field for field in df.schema.fields}
    ids = [StructField(name, StringType(), False) for name in ID_COLUMNS] if id_columns else []
    schema = StructType([fields[column] for column in keep] + ids + [StructField(SCORE_COLUMN, FloatType(), False)])
    job = _BatchScorer(model_dir, None if graph is None else str(graph), columns, batch_size, threads_per_task,
                       keep, id_columns)
    return df.mapInPandas(job, schema)


class _BatchScorer:
    """What each executor worker runs: Arrow batches in, the same batches with scores out."""

    def __init__(self, model_dir: str, graph: str | None, columns: PairColumns, batch_size: int,
                 threads: int, keep: list[str], id_columns: bool = False) -> None:
        self.model_dir, self.graph, self.columns = model_dir, graph, columns
        self.batch_size, self.threads, self.keep, self.id_columns = batch_size, threads, keep, id_columns

    def __call__(self, batches):
        import time

        import numpy as np

        from graphrel.scoring.streaming import CHUNK_DELAY_ENV

        delay = float(os.environ.get(CHUNK_DELAY_ENV, "0") or 0)  # tests only: a slow job to interrupt
        scorer = worker_scorer(self.model_dir, self.graph, self.threads)
        for batch in batches:
            out = batch[self.keep].copy() if self.keep != list(batch.columns) else batch
            if not len(batch):
                for name in ID_COLUMNS if self.id_columns else ():
                    out[name] = np.empty(0, dtype=object)
                out[SCORE_COLUMN] = np.empty(0, dtype=np.float32)
                yield out
                continue
            query_ids, queries, product_ids, product_texts = pair_fields(batch, self.columns)
            if self.id_columns:
                out["query_id"], out["product_id"] = query_ids, product_ids
            out[SCORE_COLUMN] = scorer.score(query_ids, queries, product_ids, product_texts,
                                             batch_size=self.batch_size)
            if delay > 0:
                time.sleep(delay)
            yield out


def worker_scorer(model_dir: str, graph: str | None, threads: int):
    """The scorer of ``model_dir``, loaded once per Python process and kept."""
    from graphrel.scoring.load import load_scorer
    from graphrel.spark.worker import load_once

    return load_once(("scorer", model_dir, graph), threads, lambda: load_scorer(model_dir, graph=graph))


def pair_fields(batch, columns: PairColumns):
    """Query ids, queries, product ids and product texts of a pandas batch, normalised as the
    file loaders do (text, stripped).

    Raises:
        GraphrelInputError: an empty or missing field (the driver's check missed it: white
            space other than ASCII), naming the column and the row's other values.
    """
    import pandas as pd

    from graphrel.data.schema import as_text
    from graphrel.data.text_keys import blank_texts

    fields = {}
    for column, what, _, _ in columns.checked():
        text = as_text(batch[column]).str.strip()
        bad = pd.Series(blank_texts(text), index=batch.index)
        if bad.any():
            row = batch.loc[bad.idxmax(), columns.names()].to_dict()
            raise GraphrelInputError(f"empty {what} (column {column!r}) in the row {row}",
                                     fix=f"fill in the {what} or drop the row")
        fields[what] = text.to_numpy(dtype=object)
    queries = fields["query text"]
    return fields.get("query id", queries), queries, fields["product id"], fields["product text"]
