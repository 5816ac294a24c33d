"""One chunked reader of pairs files: CSV, Parquet and JSON Lines, zipped or gzipped or not.

:func:`read_chunks` reads the columns a source asks for (:class:`~graphrel.data.schema.Column`)
in chunks of ``chunk_size`` rows, each with the 1-based data row of every line in the whole
file: Parquet through ``pyarrow.parquet.ParquetFile.iter_batches`` (the selected columns
only), CSV through ``pandas.read_csv(chunksize=...)`` on a decoding stream, JSON Lines line
by line. Memory stays flat however long the file is.

``chunk_size=None`` reads the whole file as one chunk: that is a whole-file load
(:meth:`graphrel.data.sources.Source.load`). It differs from a chunked read in one point:
its bytes are read (and its text decoded) at once, before any row is parsed, as the
loaders always did. So a byte that is not valid in the encoding anywhere in the file is
reported before a malformed row that comes earlier, and each later check (the CSV
structure, the columns, then the values, see :func:`graphrel.data.schema.build_pairs`)
covers every row before the next; a chunked read reports the first problem of the first
chunk that has one.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import pandas as pd

from graphrel.data.files import TextFile, file_is_empty, open_binary, read_whole, reading
from graphrel.data.schema import Column, check_values, select_columns
from graphrel.errors import GraphrelInputError

__all__ = ["read_chunks"]

Chunk = tuple[pd.DataFrame, np.ndarray]  # raw columns read, 1-based data row of each


def _no_data_rows(p: Path) -> GraphrelInputError:
    return GraphrelInputError("file has a header but no data rows", path=p,
                              fix="pass a file with at least one data row")


def _strip_columns(raw: pd.DataFrame) -> pd.DataFrame:
    return raw.rename(columns=lambda c: str(c).strip())


def read_chunks(p: Path, fmt: str, compression: str | None, encoding: str, columns: list[Column],
                chunk_size: int | None = None) -> Iterator[Chunk]:
    """Read the ``columns`` of a file in chunks: (raw frame, 1-based data row ids) each.

    Args:
        p, fmt, compression: the file (:func:`graphrel.data.files.resolve_format`).
        encoding: text encoding of CSV and JSON Lines.
        columns: the columns to read; a missing required one is an error.
        chunk_size: rows per chunk (JSON Lines: records); None reads the whole file as one
            chunk (see the module docstring).

    Yields:
        Frames of string columns (CSV) or the file's own types, named as in the file with
        their ends stripped, with a fresh ``RangeIndex``; their values are checked
        (:func:`graphrel.data.schema.check_values`).

    Raises:
        GraphrelInputError: empty file, header without rows, unreadable or malformed file,
            bad byte, repeated or missing column, value of the wrong type.
    """
    if fmt == "parquet":
        chunks = _parquet_chunks(p, compression, chunk_size, columns)
    else:
        text = TextFile(p, compression, encoding, header=fmt == "csv", whole=chunk_size is None)
        chunks = _csv_chunks(text, chunk_size, columns) if fmt == "csv" else _jsonl_chunks(text, chunk_size, columns)
    n = 0
    for raw, row_ids in chunks:
        if len(raw) == 0:
            break
        n += len(raw)
        raw = raw.reset_index(drop=True)
        check_values(raw, columns, row_ids, p)
        yield raw, row_ids
    if n == 0:
        raise _no_data_rows(p)


# --------------------------------------------------------------------------- CSV


_CSV_OPTIONS: dict[str, Any] = {"dtype": str, "keep_default_na": False, "na_values": [""]}


def _csv_error(err: Exception, p: Path) -> GraphrelInputError:
    if isinstance(err, pd.errors.EmptyDataError):
        return file_is_empty(p)
    m = re.search(r"line (\d+)", str(err))
    row = int(m.group(1)) - 1 if m else None
    return GraphrelInputError(
        f"malformed CSV ({str(err).strip()})", path=p, row=row if row and row >= 1 else None,
        fix="check the separator (comma) and the quoting of that row")


def _csv_header(text: Any, p: Path) -> list[str]:
    """The header row of a CSV text stream, as written (pandas renames repeated names
    ``x``, ``x.1``, so they are read here instead)."""
    try:
        header = pd.read_csv(text, header=None, nrows=1, dtype=str, keep_default_na=False, na_filter=False)
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as err:
        raise _csv_error(err, p) from None
    return ["" if v is None else str(v) for v in header.iloc[0].tolist()] if len(header) else []


def _csv_columns(raw: pd.DataFrame, header: list[str], positions: list[int], p: Path,
                 first_row: int) -> pd.DataFrame:
    """The selected columns of a CSV chunk, named as in the header (ends stripped).

    A first data row with more fields than the header makes pandas use the first field as
    the row index and shift every value one column left: refused, not read shifted."""
    if not isinstance(raw.index, pd.RangeIndex) or raw.shape[1] != len(header):
        raise GraphrelInputError(
            f"data rows have more fields than the header's {len(header)} (a comma inside an unquoted "
            f"value, or a comma at the end of each line?)", path=p, row=first_row,
            fix="quote values that contain commas, remove the extra fields, or name them in the header")
    raw = raw.iloc[:, positions]
    raw.columns = [header[i].strip() for i in positions]
    return raw


def _csv_frames(text: Any, p: Path, chunk_size: int | None) -> Iterator[pd.DataFrame]:
    try:
        if chunk_size is None:
            yield pd.read_csv(text, **_CSV_OPTIONS)
            return
        with pd.read_csv(text, chunksize=chunk_size, **_CSV_OPTIONS) as reader:
            yield from reader
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as err:
        raise _csv_error(err, p) from None


def _csv_chunks(text: TextFile, chunk_size: int | None, columns: list[Column]) -> Iterator[Chunk]:
    p = text.p
    with text.open(newline="") as stream:  # the header as written, first
        header = _csv_header(stream, p)
    positions = None  # checked with the first rows (a file without rows says so first)
    first_row = 1
    with text.open(newline="") as stream:
        for raw in _csv_frames(stream, p, chunk_size):
            if len(raw) == 0:
                return
            if positions is None:
                positions = select_columns(header, columns, p)
            yield (_csv_columns(raw, header, positions, p, first_row),
                   np.arange(first_row, first_row + len(raw), dtype=np.int64))
            first_row += len(raw)


# --------------------------------------------------------------------------- JSON Lines


class _JsonObject(dict):
    """A JSON object; ``repeated`` lists the keys it had more than once (json keeps the last)."""

    __slots__ = ("repeated",)


def _json_object(pairs: list[tuple[str, Any]]) -> _JsonObject:
    obj = _JsonObject(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        obj.repeated = sorted({key for key, _ in pairs if key in seen or seen.add(key)})
    return obj


def _json_record(line: str, line_no: int, p: Path) -> dict:
    try:
        obj = json.loads(line, object_pairs_hook=_json_object)
    except json.JSONDecodeError as err:
        raise GraphrelInputError(f"line {line_no} is not valid JSON ({err.msg})", path=p,
                                 row=line_no, fix="write one JSON object per line") from None
    if not isinstance(obj, dict):
        raise GraphrelInputError(f"line {line_no} is a JSON {type(obj).__name__}, not an object",
                                 path=p, row=line_no, fix="write one JSON object per line")
    repeated = getattr(obj, "repeated", None)
    if repeated:
        raise GraphrelInputError(
            f"line {line_no} has the key(s) {', '.join(map(repr, repeated))} more than once", path=p,
            row=line_no, fix="give each key once per line (rename or drop the repeated one)")
    return obj


def _jsonl_records(lines: Iterable[str], p: Path, chunk_size: int | None) -> Iterator[Chunk]:
    """Parse JSON Lines: (frame, 1-based line numbers) per ``chunk_size`` records (all if None).

    Lines end at \\n, \\r or \\r\\n only (U+2028 and friends may sit inside JSON strings
    unescaped); blank lines are skipped; a record's row is its line number. A key repeated
    within one record is an error (JSON parsers keep one of the values, silently).
    """
    records: list[dict] = []
    numbers: list[int] = []
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        records.append(_json_record(line, line_no, p))
        numbers.append(line_no)
        if chunk_size is not None and len(records) >= chunk_size:
            yield pd.DataFrame.from_records(records), np.asarray(numbers, dtype=np.int64)
            records, numbers = [], []
    if records:
        yield pd.DataFrame.from_records(records), np.asarray(numbers, dtype=np.int64)


def _jsonl_chunks(text: TextFile, chunk_size: int | None, columns: list[Column]) -> Iterator[Chunk]:
    p = text.p
    names: list[str] | None = None
    with text.open(newline=None) as stream:
        for raw, row_ids in _jsonl_records(stream, p, chunk_size):
            # a key absent from every record of a later chunk is a column of blanks there
            names = list(raw.columns) if names is None else names + [
                c for c in raw.columns if c not in names]
            raw = raw.reindex(columns=names)
            yield _strip_columns(raw.iloc[:, select_columns(names, columns, p)]), row_ids
    if names is None:
        raise file_is_empty(p)


# --------------------------------------------------------------------------- Parquet


def _unreadable_parquet(p: Path, err: Exception) -> GraphrelInputError:
    return GraphrelInputError(f"not a readable Parquet file ({err})", path=p,
                              fix="check the file, or pass file_format (--file-format) if it is CSV or JSONL")


def _parquet_chunks(p: Path, compression: str | None, chunk_size: int | None,
                    columns: list[Column]) -> Iterator[Chunk]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    with ExitStack() as stack:
        source: Any = p
        if compression is not None and chunk_size is None:  # a whole-file load: in memory
            source = io.BytesIO(read_whole(p, compression))
        elif compression is not None:  # spool the decompressed file to disk, not to memory
            source = stack.enter_context(tempfile.TemporaryFile())
            with reading(p, compression), open_binary(p, compression) as stream:
                shutil.copyfileobj(stream, source, 1 << 20)
            source.seek(0)
        try:
            parquet = stack.enter_context(pq.ParquetFile(source))
            names = parquet.schema_arrow.names
        except Exception as err:  # pyarrow raises several types for corrupt files
            raise _unreadable_parquet(p, err) from None
        if parquet.metadata.num_rows == 0:
            raise _no_data_rows(p)
        selected = [names[i] for i in select_columns(names, columns, p)]
        size = chunk_size or parquet.metadata.num_rows
        pending: list = []
        n_pending, first_row = 0, 1
        batches = parquet.iter_batches(batch_size=size, columns=selected)
        while True:
            try:
                batch = next(batches, None)
            except Exception as err:
                raise _unreadable_parquet(p, err) from None
            if batch is not None:
                pending.append(batch)
                n_pending += batch.num_rows
            # batches stop at row-group ends: regroup them into chunks of exactly ``size`` rows
            while n_pending >= size or (batch is None and n_pending):
                table = pa.Table.from_batches(pending)
                take = min(size, n_pending)
                raw = _strip_columns(table.slice(0, take).to_pandas())
                rest = table.slice(take)
                pending, n_pending = rest.to_batches(), rest.num_rows
                yield raw, np.arange(first_row, first_row + take, dtype=np.int64)
                first_row += take
            if batch is None:
                return
