"""``graphrel score --engine spark``: score a Parquet table of pairs on Spark.

    graphrel score --engine spark --model RUN/student_korder --input pairs/ --output scores/ \\
        [--spark-master local[2]] [--query-column ...] [--batch-size 512] [--chunk-size 100000]

The input is a Parquet file or a directory of Parquet files (a local path or any URI Spark
reads: ``hdfs://``, ``s3a://``); the output is a Parquet directory in the layout of the
single-process ``graphrel score``: ``row_id`` (int64, the 1-based row in its input file),
``query_id`` and ``product_id`` (string, as the file loaders read them: the query text
where no query id column is given), ``score`` (float32 in [0, 1]), and ``input_file`` (the
file's path) when the input has several files; one row per input row (repeated pairs too),
in no particular order (sort by ``input_file``, ``row_id`` to restore the input's). ``--chunk-size`` is the rows per Arrow
batch a worker scores at a time (``spark.sql.execution.arrow.maxRecordsPerBatch``).

The same column options and one-line errors as the single-process path: a missing or
mistyped column (before any Spark job), and the first empty pair field, with its file and
1-based row. The workers check every field as they score it, so a good input is read once;
when a worker finds an empty field the job stops and one more Spark job over the input
locates the first bad row (by the loaders' order of checks) for the message. Options that only the file loaders have (``--kind`` other than
generic, labels, encodings, non-Parquet formats) are refused with the reason. The output is
written all or nothing (:mod:`graphrel.spark.output`); an existing output is refused; a local
output holds the same lock as ``graphrel score``, so a second run on it is refused while the
first runs; an interrupted run is continued by running the same command again.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import time
from pathlib import Path

from graphrel.errors import GraphrelInputError

__all__ = ["score_with_spark", "SparkSummary"]

log = logging.getLogger("graphrel")

_NOT_FOR_SPARK = {  # option -> (its value on the parser, why --engine spark refuses it)
    "kind": ("generic", "reads Parquet tables with the column options; convert the file to Parquet "
                        "with --kind generic columns, or use --engine local"),
    "label_column": (None, "keeps every input column, labels too, as it is; drop --label-column"),
    "label_min": (None, "keeps every input column, labels too, as it is; drop --label-min"),
    "label_max": (None, "keeps every input column, labels too, as it is; drop --label-max"),
    "encoding": (None, "reads Parquet (its text is UTF-8); drop --encoding"),
    "calibrated": (False, "writes the model's own scores; calibrate them with --engine local, or apply "
                          "graphrel.scoring.calibration.Calibrator.load(MODEL/calibrator.json) to the score column"),
}


class SparkSummary(dict):
    """What the job did: ``output``, ``rows``, ``seconds``."""


def _is_uri(location: str) -> bool:
    return re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", location) is not None


def _driver_sees_executor_files(master: str | None) -> bool:
    """Local mode started here: the executors read the driver's files. Under spark-submit or on
    a cluster master, the model may be where only the executors look (``--archives``)."""
    if os.environ.get("PYSPARK_GATEWAY_PORT"):  # launched by spark-submit
        return False
    return master is None or master.startswith("local")


def check_spark_options(args) -> None:
    """Refuse ``graphrel score`` options the Spark engine does not have, before Spark starts."""
    for name, (default, why) in _NOT_FOR_SPARK.items():
        if getattr(args, name) != default:
            option = "--" + name.replace("_", "-")
            raise GraphrelInputError(f"{option} is not available with --engine spark", fix=f"--engine spark {why}")
    if args.file_format not in (None, "parquet"):
        raise GraphrelInputError(f"--file-format {args.file_format} is not available with --engine spark",
                                 fix="--engine spark reads Parquet; convert the input or use --engine local")


def score_with_spark(args) -> SparkSummary:
    """Run ``graphrel score --engine spark`` with parsed options ``args``.

    Raises:
        GraphrelInputError: an option the engine lacks, a missing input, an existing output,
            an unreadable model directory, a missing or mistyped column, an empty pair field
            (file and row), another run writing the output, Spark or Java unavailable.
    """
    check_spark_options(args)
    started = time.perf_counter()
    source, output = str(args.input), str(args.output).rstrip("/")
    if not _is_uri(source) and not Path(source).exists():
        raise GraphrelInputError("input not found", path=source, fix="pass a Parquet file or a directory of them")
    if not _is_uri(output):
        folder = Path(output).resolve().parent
        if not folder.is_dir():
            raise GraphrelInputError("output folder does not exist", path=folder,
                                     fix="create it or choose another --output")
        if Path(output).exists():
            raise GraphrelInputError("output already exists", path=output,
                                     fix="choose another --output, or delete it to score again")
    model = Path(args.model)
    if not model.exists() and _driver_sees_executor_files(args.spark_master):
        raise GraphrelInputError("model directory not found", path=model,
                                 fix="pass a student directory of a run, e.g. RUN/student_korder")
    if args.resume:
        log.info("--engine spark keeps no partial results: the job starts again and writes the whole output")
    if _is_uri(output):  # no lock on remote storage: the all-or-nothing rename still applies
        return _run(args, source, output, started)
    from graphrel.lock import output_lock

    # resume=True: the lock of a run that is gone (killed) is taken over, since a Spark run
    # leaves nothing a re-run could mix with; a live run's lock is refused
    with output_lock(Path(output), resume=True, command="graphrel score --engine spark",
                     resume_hint="run the same command again"):
        return _run(args, source, output, started)


def _run(args, source: str, output: str, started: float) -> SparkSummary:
    from graphrel.spark.columns import FILE_COLUMN, ROW_COLUMN, PairColumns, check_pair_columns, find_bad_row
    from graphrel.spark.output import write_parquet_atomically
    from graphrel.spark.scoring import score_pairs
    from graphrel.spark.session import local_session

    log_file = Path(tempfile.gettempdir()) / f"graphrel-spark-{os.getpid()}.log"
    spark = local_session(args.spark_master, log_file=log_file)
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(args.chunk_size))  # rows per worker batch
    with spark_errors(source):
        table = spark.read.parquet(source)
        columns = PairColumns(args.query_column, args.product_id_column, args.product_text_column,
                              args.query_id_column)
        check_pair_columns(table, columns, source=source, command_line=True)
        from pyspark.sql import functions as F

        _balance_input_splits(spark)

        # the layout graphrel score writes: row_id (1-based row of its input file), query_id,
        # product_id (as the file loaders read them), score; input_file too for several files
        located = table.select(*columns.names(), (F.col("_metadata.row_index") + 1).alias("row_id"),
                               F.regexp_replace("_metadata.file_path", "^file:(//)?", "").alias("input_file"))
        many_files = len(table.inputFiles()) > 1
        scored = score_pairs(located, args.model, query_col=args.query_column, product_id_col=args.product_id_column,
                             product_text_col=args.product_text_column, query_id_col=args.query_id_column,
                             batch_size=args.batch_size, check_rows=False, id_columns=True,
                             keep_columns=["row_id", "input_file"] if many_files else ["row_id"])
        scored = scored.select("row_id", "query_id", "product_id", "score", *(["input_file"] if many_files else []))
        scoring = time.perf_counter()
        try:  # the workers check every pair field as they score it (no pass over the input before)
            write_parquet_atomically(scored, output)
        except Exception as error:
            if _worker_input_error(error) is not None:  # locate the first bad row: its file and row
                located = table.select("*", F.regexp_replace("_metadata.file_path", "^file:(//)?", "")
                                       .alias(FILE_COLUMN), F.col("_metadata.row_index").alias(ROW_COLUMN))
                find_bad_row(located, columns, source=source)
            raise
        log.info("scored and written in %.1f s", time.perf_counter() - scoring)
        rows = spark.read.parquet(output).count()
    return SparkSummary(output=output, rows=rows, seconds=time.perf_counter() - started)


def _balance_input_splits(spark) -> None:
    """At least two input splits per task slot (``spark.sql.files.minPartitionNum``), unless set.

    Spark caps a split at ``spark.sql.files.maxPartitionBytes`` (128 MB): a 272 MB input on
    local[2] became splits of 128, 128 and 16 MB, and the last task ran alone on one core.
    With twice as many splits as slots (68 MB each here) every slot gets the same share."""
    if spark.conf.get("spark.sql.files.minPartitionNum", None) is None:
        spark.conf.set("spark.sql.files.minPartitionNum", str(2 * spark.sparkContext.defaultParallelism))


def _worker_input_error(error: BaseException) -> str | None:
    """The message of a :class:`GraphrelInputError` a Python worker raised, or None."""
    from pyspark.errors import PythonException

    found = re.search(r"GraphrelInputError: (.+)", str(error)) if isinstance(error, PythonException) else None
    return found.group(1).strip() if found else None


class spark_errors:
    """Turn Spark's errors about the user's input into one-line :class:`GraphrelInputError`:
    an unreadable input (not Parquet, no files) and a bad row found by a worker."""

    def __init__(self, source: str) -> None:
        self.source = source

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        if error is None or isinstance(error, (GraphrelInputError, KeyboardInterrupt)):
            return False
        from pyspark.errors import AnalysisException
        from py4j.protocol import Py4JJavaError

        text = str(error)
        worker = _worker_input_error(error)
        if worker is not None:
            raise GraphrelInputError(worker, path=self.source) from None
        if isinstance(error, AnalysisException) or (isinstance(error, Py4JJavaError) and "FAILED_READ_FILE" in text):
            raise GraphrelInputError(f"Spark cannot read the input as Parquet: {_spark_reason(text)}",
                                     path=self.source,
                                     fix="pass a Parquet file or a directory of Parquet files") from None
        return False


def _spark_reason(text: str) -> str:
    """The informative sentence of a Spark error: its ``[ERROR_CLASS] message`` line,
    shortened, without the SQLSTATE code."""
    found = re.search(r"\[([A-Z_.]+)\] ([^\n]+)", text)
    if not found:
        return next((line.strip() for line in text.splitlines() if line.strip()), "unknown error")[:300]
    reason = re.sub(r"\s*SQLSTATE: \w+", "", found.group(2)).strip()
    return f"{reason[:300]} [{found.group(1)}]"
