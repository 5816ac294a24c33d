"""``graphrel retrieve``: the top-k products of the catalogue for every query of a file.

    graphrel retrieve --model RETRIEVER_DIR --queries queries.csv --k 100 --output top.parquet
    graphrel retrieve --fusion rrf --model DIR_A --model DIR_B --queries queries.csv --output top.parquet

Input: CSV, Parquet or JSON Lines with a query column (``--query-column``, default ``query``)
and optionally a query id column (default: the query text is the id); every query id appears
once (a repeated id, or a repeated text used as the id, is refused naming its rows). Ids are
text or whole numbers, read as their digits (:func:`query_id_texts`). Output: Parquet with
``query_id, rank, product_id, score`` (k rows per query, best first, ties by product id), or a
TREC run file (``.trec``). The output is written atomically and an existing output is refused;
queries are retrieved in chunks kept in ``OUT.parts`` until the output is written, so an
interrupted run continues with ``--resume`` (:mod:`graphrel.retrieval.serving.retrieve_parts`).
``--index hnsw`` searches a dense retriever's products with an approximate HNSW graph
(:class:`~graphrel.retrieval.search.hnsw.HNSWIndex`; built at load time unless saved in the directory)
instead of exact search; ``--hnsw-ef-search`` trades its speed for recall.
Bad input (a missing file or column, an empty query, a repeated query id, an unknown retriever
directory, k < 1, an existing output) is one line naming the file, the row and the fix; exit code 2.
"""

from __future__ import annotations

import decimal
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd

from graphrel.data.files import check_path
from graphrel.data.schema import as_text
from graphrel.data.text_keys import is_blank
from graphrel.errors import GraphrelInputError

log = logging.getLogger("graphrel")

FORMATS = {".csv": "csv", ".parquet": "parquet", ".jsonl": "jsonl", ".json": "jsonl"}
OUTPUTS = (".parquet", ".trec")


def read_queries(path: str | Path, *, query_column: str = "query", query_id_column: str | None = None,
                 file_format: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Query ids and texts of a queries file.

    Args:
        path: CSV / Parquet / JSON Lines file.
        query_column: column of query texts.
        query_id_column: column of query ids; None: the query text is the id.
        file_format: ``csv``, ``parquet`` or ``jsonl``; default from the suffix.

    Returns:
        ids (Q,) and queries (Q,) as object arrays of str; a numeric id as its digits
        (:func:`query_id_texts`).

    Raises:
        GraphrelInputError: missing/unreadable file, unknown format, missing column, empty
            file, an empty or non-text query, an empty id or one neither text nor a whole
            number (naming the 1-based data row), or a query id on more than one row (without
            ``query_id_column``: a query text on more than one row), naming those rows.
    """
    path = Path(path)
    if not path.exists():
        raise GraphrelInputError("queries file not found", path=path, fix="pass an existing CSV/Parquet/JSONL file")
    check_path(path)  # a directory, standard input, a named pipe, an empty file: said as such
    kind = file_format or FORMATS.get(path.suffix.lower())
    if kind not in ("csv", "parquet", "jsonl"):
        raise GraphrelInputError(f"unknown queries file format {path.suffix!r}", path=path,
                                 fix="use .csv, .parquet or .jsonl, or pass --file-format")
    frame = _read(path, kind)
    columns = [query_column] + ([query_id_column] if query_id_column else [])
    for column in columns:
        if column not in frame.columns:
            raise GraphrelInputError(f"no column {column!r} (columns: {', '.join(map(str, frame.columns))})",
                                     path=path, fix="name the query column with --query-column")
    if frame.empty:
        raise GraphrelInputError("no queries (the file has no data rows)", path=path, fix="pass a file with queries")
    queries = _text_column(frame[query_column], path, query_column)
    ids = queries if query_id_column is None else _text_column(frame[query_id_column], path, query_id_column,
                                                                ids=True)
    _check_unique_ids(ids, path, query_id_column)
    return ids, queries


def query_id_texts(values: pd.Series) -> pd.Series:
    """Query ids as text: the one rule of ``graphrel retrieve`` and :func:`graphrel.spark.retrieve`,
    the file loaders' (:func:`graphrel.data.schema.as_text`: text as it is, a whole number or
    decimal as its digits, ``12300000000.0`` -> ``"12300000000"``). Missing values stay missing;
    nothing is raised (callers check the values first)."""
    return as_text(values)


def _is_id_number(value) -> bool:
    """A whole number (of any int type, or a float without fraction) or a finite decimal
    (as Spark's id columns: :data:`graphrel.spark.columns.ID_TYPES`)."""
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, (int, np.integer)):
        return True
    if isinstance(value, (float, np.floating)):
        return math.isfinite(value) and float(value).is_integer()
    return isinstance(value, decimal.Decimal) and value.is_finite()


def _check_unique_ids(ids: np.ndarray, path: Path, query_id_column: str | None, shown: int = 3) -> None:
    """Refuse a query id on two or more rows, naming the first ``shown`` ids' 1-based rows."""
    rows: dict[str, list[int]] = {}
    for row, value in enumerate(ids, 1):
        rows.setdefault(value, []).append(row)
    repeated = [(value, found) for value, found in rows.items() if len(found) > 1]
    if not repeated:
        return
    what = "query id" if query_id_column else "query"
    named = [f"{short_text(value)} {'appears ' * (i == 0)}on rows {_listed(found)}"
             for i, (value, found) in enumerate(repeated[:shown])]
    message = f"{what} {', '.join(named)}"
    more = len(repeated) - shown
    if more > 0:
        plural = "query ids" if query_id_column else "queries"
        message += f", and {more} more {what} repeats" if more == 1 else f", and {more} more {plural} repeat"
    if query_id_column:
        raise GraphrelInputError(message, path=path, fix=f"give each query its own id in {query_id_column!r}, "
                                                         f"or drop --query-id-column to use the text as id")
    raise GraphrelInputError(f"{message}; without --query-id-column the query text is the id, so each query "
                             f"must be on one row", path=path,
                             fix="de-duplicate the queries (keep one row of each), or give each row its own id "
                                 "with --query-id-column")


def _listed(rows: list[int], shown: int = 3) -> str:
    if len(rows) > shown:
        more = len(rows) - shown
        return f"{', '.join(map(str, rows[:shown]))} and {more} more row{'s' * (more > 1)}"
    return f"{', '.join(map(str, rows[:-1]))} and {rows[-1]}"


def short_text(value: str, width: int = 60) -> str:
    """``repr`` of a text cut to ``width`` characters (error messages name ids and queries)."""
    return repr(value if len(value) <= width else value[:width - 3] + "...")


def _read(path: Path, kind: str) -> pd.DataFrame:
    try:
        if kind == "csv":
            return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
        if kind == "jsonl":
            return pd.read_json(path, lines=True, dtype=False)
        return pd.read_parquet(path)
    except UnicodeDecodeError:
        raise GraphrelInputError("not UTF-8 text", path=path, fix="re-save the file as UTF-8") from None
    except (ValueError, OSError, pd.errors.ParserError) as error:
        raise GraphrelInputError(f"cannot read as {kind} ({str(error).splitlines()[0][:120]})", path=path,
                                 fix="pass a valid CSV/Parquet/JSONL file") from None


def _text_column(values: pd.Series, path: Path, column: str, *, ids: bool = False) -> np.ndarray:
    """The column's texts; with ``ids``, whole numbers too, as :func:`query_id_texts` writes them."""
    out = np.empty(len(values), dtype=object)
    numbers = None
    for row, value in enumerate(values.tolist()):
        if ids and not isinstance(value, str) and _is_id_number(value):
            numbers = query_id_texts(values).tolist() if numbers is None else numbers
            out[row] = numbers[row]
            continue
        if not isinstance(value, str):
            what = "empty" if value is None or (isinstance(value, float) and value != value) else \
                "not text or a whole number" if ids else "not text"
            raise GraphrelInputError(f"{column} is {what} ({value!r})", path=path, row=row + 1,
                                     fix=f"give every row a non-empty text {column}" + (" or whole number" * ids))
        if is_blank(value):
            what = "empty" if not value.strip() else f"control or invisible characters only ({value!r})"
            raise GraphrelInputError(f"{column} is {what}", path=path, row=row + 1,
                                     fix=f"give every row a non-empty {column} or remove the row")
        out[row] = value
    return out


def retrieve_file(model: str | Path | list, queries_path: str | Path, output: str | Path, *, k: int = 100,
                  query_column: str = "query", query_id_column: str | None = None,
                  file_format: str | None = None, batch_size: int = 256, rerank_model: str | Path | None = None,
                  index: str = "exact", hnsw_ef_search: int | None = None, fusion: str | None = None,
                  chunk_size: int = 4096, resume: bool = False) -> int:
    """Retrieve the top ``k`` products of every query of a file; write them atomically.

    Args:
        model: a retriever directory (see :mod:`graphrel.retrieval.serving.retriever`), or with ``fusion``
            a list of two or more.
        queries_path: queries file (see :func:`read_queries`).
        output: ``.parquet`` (query_id, rank, product_id, score) or ``.trec``; must not exist.
        k: products per query, >= 1 (clamped to the catalogue with a warning).
        batch_size: queries encoded per forward pass, >= 1.
        rerank_model: a pair model directory (student or teacher) that re-ranks each top k
            (output gains ``retrieval_score``); None: no re-ranking.
        index: ``exact`` (default) or ``hnsw`` (approximate; dense retrievers only, BM25 ignores it).
        hnsw_ef_search: HNSW candidates per search, >= 1; None: the default of
            :class:`~graphrel.retrieval.search.index.IndexOptions`. Only with ``index="hnsw"``.
        fusion: ``rrf`` or ``combsum``: each model's top ``k`` fused with ``ranx.fuse``
            (:mod:`graphrel.retrieval.serving.fusion`; score = the fused score); None: one model.
        chunk_size: queries per chunk (>= 1); each finished chunk is kept in ``OUT.parts``
            (:mod:`graphrel.retrieval.serving.retrieve_parts`) until the output is written.
        resume: continue an interrupted run from its finished chunks (same queries, models and
            options); without it, an interrupted run's parts stop a new run.

    Returns:
        Number of rows written.

    Raises:
        GraphrelInputError: any bad input (checked before anything is written), among them a
            query id on two or more rows (see :func:`read_queries`).
    """
    from graphrel.retrieval.measures.evaluation import write_trec_run
    from graphrel.retrieval.search.index import IndexOptions
    from graphrel.retrieval.serving.retriever import Retriever
    from graphrel.run import write_parquet

    output = Path(output)
    if k < 1 or batch_size < 1 or chunk_size < 1:
        raise GraphrelInputError(f"k, batch size and chunk size must be >= 1, got k={k}, batch size={batch_size}, "
                                 f"chunk size={chunk_size}",
                                 fix="pass --k 100 (any whole number >= 1)")
    if output.suffix.lower() not in OUTPUTS:
        raise GraphrelInputError(f"output must end in {' or '.join(OUTPUTS)}", path=output,
                                 fix="name the output OUT.parquet or OUT.trec")
    if output.exists():
        raise GraphrelInputError("output already exists", path=output,
                                 fix="delete it or choose another --output")
    if hnsw_ef_search is not None and index != "hnsw":
        raise GraphrelInputError(f"an HNSW ef_search was given for the {index!r} index",
                                 fix="pass --index hnsw with --hnsw-ef-search, or drop --hnsw-ef-search")
    options = IndexOptions(kind=index)
    if hnsw_ef_search is not None:
        options = IndexOptions(kind=index, hnsw_ef_search=hnsw_ef_search)
    models = [model] if isinstance(model, (str, Path)) else list(model)
    if fusion is None and len(models) != 1:
        raise GraphrelInputError(f"{len(models)} models but no fusion method", fix="pass --fusion rrf (or combsum)")
    if fusion is not None and len(models) < 2:
        raise GraphrelInputError(f"--fusion {fusion} needs two or more models, got {len(models)}",
                                 fix="repeat --model, e.g. --model RUN/retrieval/retrievers/dual_encoder "
                                     "--model RUN/retrieval/retrievers/xmc")
    # the queries first: a bad file (a repeated id, an empty query) is refused before any model loads
    ids, queries = read_queries(queries_path, query_column=query_column, query_id_column=query_id_column,
                                file_format=file_format)
    retrievers = [Retriever.load(m, index=options) for m in models]
    retriever = retrievers[0]
    scorer = None
    if rerank_model is not None:
        from graphrel.retrieval.serving.rerank import load_pair_scorer

        scorer = load_pair_scorer(rerank_model)
    if fusion is not None:
        from graphrel.retrieval.serving.fusion import fuse_retrievers

        search = lambda q, i: fuse_retrievers(retrievers, q, query_ids=i, k=k, method=fusion,  # noqa: E731
                                              batch_size=batch_size)
    else:
        search = lambda q, i: retriever.search(q, k, query_ids=i, batch_size=batch_size)  # noqa: E731
    texts = dict(zip(retriever.catalogue.product_ids, retriever.catalogue.texts)) if scorer is not None else None

    def chunk_rows(start: int, stop: int) -> pd.DataFrame:
        rows = search(queries[start:stop], ids[start:stop])
        if scorer is None:
            return rows
        from graphrel.retrieval.serving.rerank import rerank

        return rerank(rows, dict(zip(ids[start:stop], queries[start:stop])), texts, scorer)

    import shutil

    from graphrel.retrieval.serving.retrieve_parts import file_version, parts_dir, run_in_parts

    parts = parts_dir(output)
    settings = {"queries": file_version(queries_path), "models": [file_version(m) for m in models],
                "rerank": file_version(rerank_model), "k": k, "fusion": fusion, "index": index,
                "hnsw_ef_search": hnsw_ef_search, "query_column": query_column, "query_id_column": query_id_column,
                "file_format": file_format, "chunk_size": chunk_size}
    bounds = [(s, min(s + chunk_size, len(queries))) for s in range(0, len(queries), chunk_size)]
    run = run_in_parts(parts, settings, bounds, chunk_rows, resume=resume)
    if output.suffix.lower() == ".trec":
        write_trec_run(run, output, tag=retriever.name if fusion is None else f"fusion_{fusion}")
    else:
        write_parquet(run, output)
    shutil.rmtree(parts, ignore_errors=True)
    return len(run)


def retrieve_command(argv: list[str]) -> None:
    """``graphrel retrieve`` (arguments without the command name)."""
    from graphrel.options import ArgumentParser, whole_number
    from graphrel.retrieval.search.index import INDEX_KINDS, IndexOptions

    parser = ArgumentParser(prog="graphrel retrieve", description=(
        "Top-k products of the catalogue for every query of a CSV / Parquet / JSONL file, with a retriever "
        "directory (BM25, a dual encoder, an EmbedDistill student). Output: OUT.parquet (query_id, rank, "
        "product_id, score; k rows per query, ties broken by product id) or OUT.trec, written atomically."))
    parser.add_argument("--model", required=True, action="append",
                        help="retriever directory, e.g. RUN/retrieval/retrievers/bm25; repeat it with --fusion")
    parser.add_argument("--fusion", default=None, choices=["rrf", "combsum"],
                        help="serve two or more --model as one ranking: reciprocal rank fusion or CombSUM of "
                             "min-max normalised scores (ranx.fuse) of each model's top k")
    parser.add_argument("--queries", required=True, help="queries file (.csv, .parquet, .jsonl)")
    parser.add_argument("--output", required=True, help="output .parquet or .trec path (must not exist)")
    parser.add_argument("--k", type=whole_number(1, example=100), default=100,
                        help="products per query, >= 1 (default 100; clamped to the catalogue size)")
    parser.add_argument("--query-column", default="query", help="query text column (default: query)")
    parser.add_argument("--query-id-column", default=None, help="query id column (default: the query text)")
    parser.add_argument("--file-format", default=None, choices=[None, "csv", "parquet", "jsonl"],
                        help="override the format guessed from the suffix")
    parser.add_argument("--batch-size", type=whole_number(1, example=256), default=256,
                        help="queries encoded per forward pass, >= 1 (default 256)")
    parser.add_argument("--rerank", default=None, metavar="PAIR_MODEL_DIR",
                        help="re-rank each top k with a pair model: a student directory (RUN/student_korder) or "
                             "the cross-encoder teacher (RUN/teacher); adds column retrieval_score")
    hnsw = IndexOptions("hnsw")
    parser.add_argument("--index", default="exact", choices=list(INDEX_KINDS),
                        help=f"how a dense retriever searches the products: exact (default; faiss IndexFlatIP, "
                             f"every product scored) or hnsw (faiss HNSW graph, M {hnsw.hnsw_m}, ef_construction "
                             f"{hnsw.hnsw_ef_construction}: approximate, faster search; built at load time, seconds "
                             f"to tens of seconds, unless saved in the directory by "
                             f"graphrel.retrieval.serving.retriever.save_hnsw_index). BM25 ignores it")
    parser.add_argument("--hnsw-ef-search", type=whole_number(1, example=hnsw.hnsw_ef_search), default=None,
                        metavar="N", help=f"HNSW candidates per search, >= 1, with --index hnsw (default "
                                          f"{hnsw.hnsw_ef_search}; larger: better recall, slower)")
    parser.add_argument("--chunk-size", type=whole_number(1, example=4096), default=4096,
                        help="queries per chunk kept in OUT.parts until the output is written, >= 1 (default 4096)")
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted run from its finished chunks (same queries, models, options)")
    args = parser.parse_args(argv)
    rows = retrieve_file(args.model, args.queries, args.output, k=args.k, query_column=args.query_column,
                         query_id_column=args.query_id_column, file_format=args.file_format,
                         batch_size=args.batch_size, rerank_model=args.rerank, index=args.index,
                         hnsw_ef_search=args.hnsw_ef_search, fusion=args.fusion, chunk_size=args.chunk_size,
                         resume=args.resume)
    print(f"retrieved {rows:,} rows -> {args.output}")
