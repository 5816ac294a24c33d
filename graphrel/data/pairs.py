"""Query-product relevance pairs: schema, loaders, validation and the query-disjoint split.

Every loader returns a :class:`RelevancePairs`, one validated table with the columns of
:data:`PAIR_COLUMNS`. Every problem with the input file raises
:class:`~graphrel.errors.GraphrelInputError` naming the file, the 1-based data row (header
excluded) and the fix.

Supported sources:

- ``home_depot``: the Kaggle "Home Depot Product Search Relevance" ``train.csv`` (zipped or
  not, latin-1), labels 1..3 (:func:`load_home_depot`).
- ``esci``: the Amazon "Shopping Queries Dataset" (ESCI) examples merged with its products
  table, labels E/S/C/I mapped to gains (:func:`load_esci`).
- ``generic``: any CSV / Parquet / JSONL file with a column mapping (:func:`load_pairs`).

The loaders read the whole file; :func:`iter_pairs` reads any kind chunk by chunk with the
same validation and messages (batch scoring of files larger than memory).

Columns follow the same rules in every format, for the loaders and :func:`iter_pairs`
alike: a name that occurs twice (ends stripped; a JSON key twice in one record) is an
error naming it; only the columns a loader uses are read (a Parquet file's other columns,
nested or not, are never converted); a text column (query, product text) holding numbers,
dates or true/false values, or any column used holding lists or objects, is an error
naming the column and, where one value is at fault, its row; a CSV whose data rows have
more fields than its header is an error rather than being read shifted one column left.

Example:
    >>> pairs = load_dataset("home_depot", "data/home-depot/train.csv.zip")  # doctest: +SKIP
    >>> splits = split_by_query(pairs, val_fraction=0.1, test_fraction=0.1, seed=0)  # doctest: +SKIP
    >>> sorted(splits)  # doctest: +SKIP
    ['test', 'train', 'val']
"""

from __future__ import annotations

import codecs
import difflib
import gzip
import inspect
import io
import json
import math
import os
import re
import shutil
import tempfile
import warnings
import zipfile
import zlib
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator

import numpy as np
import pandas as pd

from graphrel.errors import GraphrelInputError

__all__ = [
    "PAIR_COLUMNS",
    "ESCI_GAINS",
    "DATASET_KINDS",
    "RelevancePairs",
    "load_home_depot",
    "load_esci",
    "load_pairs",
    "load_dataset",
    "iter_pairs",
    "split_by_query",
]

PAIR_COLUMNS: list[str] = [
    "row_id", "query_id", "query", "product_id", "product_text", "relevance", "label",
]
"""Column order of :attr:`RelevancePairs.frame`."""

ESCI_GAINS: dict[str, float] = {"E": 1.0, "S": 0.1, "C": 0.01, "I": 0.0}
"""Gain of each ESCI label (Exact, Substitute, Complement, Irrelevant), as used for NDCG
in the ESCI paper (Reddy et al., 2022, "Shopping Queries Dataset")."""

_ESCI_NAMES = {"EXACT": "E", "SUBSTITUTE": "S", "COMPLEMENT": "C", "IRRELEVANT": "I"}

DATASET_KINDS: tuple[str, ...] = ("home_depot", "esci", "generic")
"""The ``kind`` values :func:`load_dataset` accepts."""

PathLike = str | os.PathLike

_FORMATS = ("csv", "parquet", "jsonl")
_SUFFIX_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet",
                   ".jsonl": "jsonl", ".ndjson": "jsonl"}
_COMPRESSIONS = (".zip", ".gz")

# pandas >= 3: the "str" dtype (NaN for missing values); pandas 2: object columns of str.
_STR: Any = "str" if int(pd.__version__.split(".")[0]) >= 3 else object


# --------------------------------------------------------------------------- schema


@dataclass
class RelevancePairs:
    """One validated table of query-product pairs.

    Attributes:
        frame: one row per pair, columns exactly :data:`PAIR_COLUMNS`:

            - ``row_id`` (int64): 1-based data row in the source file (header excluded).
            - ``query_id`` (str): query key; pairs with equal ``query_id`` share a query.
            - ``query`` (str): query text, stripped of leading/trailing whitespace.
            - ``product_id`` (str): product key.
            - ``product_text`` (str): product text (title).
            - ``relevance`` (float64): label on its original scale
              ``[label_min, label_max]``; NaN = unlabelled.
            - ``label`` (float64): ``(relevance - label_min) / (label_max - label_min)``
              in ``[0, 1]``; NaN = unlabelled.
        label_min: lower end of the original label scale.
        label_max: upper end of the original label scale.
        source: the file path or a description of where the pairs came from.

    Raises:
        ValueError: if ``frame`` does not have exactly the columns of :data:`PAIR_COLUMNS`
            (a programming error, not a user error).
    """

    frame: pd.DataFrame
    label_min: float = 0.0
    label_max: float = 1.0
    source: str = ""

    def __post_init__(self) -> None:
        if list(self.frame.columns) != PAIR_COLUMNS:
            raise ValueError(
                f"RelevancePairs.frame must have columns {PAIR_COLUMNS}, "
                f"got {list(self.frame.columns)}")

    def __len__(self) -> int:
        return len(self.frame)

    def subset(self, index: Any) -> RelevancePairs:
        """Rows selected by a boolean mask or by positional indices.

        Args:
            index: a boolean mask of length ``len(self)`` or integer positions.

        Returns:
            A new :class:`RelevancePairs` with the same scale and source and a fresh
            ``RangeIndex``.

        Raises:
            ValueError: if a boolean mask has the wrong length.
        """
        idx = np.atleast_1d(np.asarray(index))
        if idx.dtype == bool:
            if len(idx) != len(self.frame):
                raise ValueError(f"boolean mask has length {len(idx)}, expected {len(self.frame)}")
            frame = self.frame.loc[idx]
        else:
            frame = self.frame.iloc[idx.astype(np.int64)]
        return RelevancePairs(frame.reset_index(drop=True), label_min=self.label_min,
                              label_max=self.label_max, source=self.source)

    @property
    def has_labels(self) -> bool:
        """True if any pair has a (non-NaN) label."""
        return bool(self.frame["label"].notna().any())


# --------------------------------------------------------------------------- file reading


def _check_path(path: PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise GraphrelInputError("file not found", path=p,
                                 fix="check the path (relative paths start at the working directory)")
    if p.is_dir():
        raise GraphrelInputError("is a directory, not a file", path=p,
                                 fix="pass the path of the data file inside it")
    if p.stat().st_size == 0:
        raise GraphrelInputError("file is empty", path=p,
                                 fix="pass a file with a header line and at least one data row")
    return p


def _split_suffix(p: Path) -> tuple[str | None, str | None]:
    """(format from the suffix or None, compression '.zip'/'.gz' or None)."""
    suffixes = [s.lower() for s in p.suffixes]
    compression = None
    if suffixes and suffixes[-1] in _COMPRESSIONS:
        compression = suffixes.pop()
    fmt = _SUFFIX_FORMATS.get(suffixes[-1]) if suffixes else None
    return fmt, compression


def _resolve_format(p: Path, file_format: str | None) -> tuple[str, str | None]:
    fmt, compression = _split_suffix(p)
    if file_format is not None:
        fmt = str(file_format).lower().lstrip(".")
        fmt = {"ndjson": "jsonl", "json": "jsonl", "pq": "parquet"}.get(fmt, fmt)
        if fmt not in _FORMATS:
            raise GraphrelInputError(
                f"unknown file format {file_format!r}", path=p,
                fix=f"pass file_format (--file-format) as one of {', '.join(_FORMATS)}")
    elif fmt is None:
        if compression is not None:
            fmt = "csv"  # e.g. Kaggle's train.zip
        else:
            raise GraphrelInputError(
                f"cannot tell the file format from the name {p.name!r}", path=p,
                fix="use a .csv, .csv.zip, .csv.gz, .parquet, .jsonl or .ndjson name, "
                    "or pass file_format (--file-format) csv/parquet/jsonl")
    return fmt, compression


def _zip_member(zf: zipfile.ZipFile, p: Path) -> zipfile.ZipInfo:
    """The one data file of a zip archive."""
    members = [m for m in zf.infolist() if not m.is_dir() and not m.filename.startswith("__MACOSX/")]
    if len(members) > 1:
        data_like = [m for m in members if Path(m.filename).suffix.lower() in _SUFFIX_FORMATS]
        members = data_like if len(data_like) == 1 else members
    if len(members) != 1:
        names = ", ".join(m.filename for m in members) or "none"
        raise GraphrelInputError(f"zip archive must hold exactly one data file, found: {names}", path=p,
                                 fix="unzip it and pass the data file itself")
    return members[0]


def _bad_zip(p: Path, err: Exception) -> GraphrelInputError:
    return GraphrelInputError(f"not a valid zip archive ({err})", path=p,
                              fix="re-download the file or pass the uncompressed file")


def _bad_gzip(p: Path, err: Exception) -> GraphrelInputError:
    return GraphrelInputError(f"not a valid gzip file ({err})", path=p,
                              fix="re-download the file or pass the uncompressed file")


def _read_bytes(p: Path, compression: str | None) -> bytes:
    """The file's bytes, decompressed for .zip (one data member) and .gz."""
    if compression == ".zip":
        try:
            with zipfile.ZipFile(p) as zf:
                return zf.read(_zip_member(zf, p))
        except zipfile.BadZipFile as err:
            raise _bad_zip(p, err) from None
    if compression == ".gz":
        try:
            return gzip.decompress(p.read_bytes())
        except (OSError, EOFError) as err:
            raise _bad_gzip(p, err) from None
    return p.read_bytes()


@contextmanager
def _open_binary(p: Path, compression: str | None) -> Iterator[BinaryIO]:
    """The file as a binary stream, decompressed on the fly for .zip (one data member) and .gz."""
    if compression == ".zip":
        try:
            zf = zipfile.ZipFile(p)
        except zipfile.BadZipFile as err:
            raise _bad_zip(p, err) from None
        with zf, zf.open(_zip_member(zf, p)) as stream:
            yield stream
    elif compression == ".gz":
        with gzip.open(p, "rb") as stream:
            yield stream
    else:
        with open(p, "rb") as stream:
            yield stream


def _python_encoding(encoding: str) -> tuple[str, bool]:
    """(codec to decode with, whether the encoding is UTF-8); UTF-8 accepts a byte-order mark."""
    is_utf8 = encoding.lower().replace("_", "-") in ("utf-8", "utf8")
    return ("utf-8-sig" if is_utf8 else encoding), is_utf8


def _unknown_encoding(p: Path, encoding: str) -> GraphrelInputError:
    return GraphrelInputError(f"unknown text encoding {encoding!r}", path=p,
                              fix="pass encoding (--encoding) as e.g. utf-8 or latin-1")


def _encoding_error(p: Path, encoding: str, line: int, bad: bytes, *, header: bool) -> GraphrelInputError:
    """The one-line error for byte ``bad`` at 1-based ``line`` not being valid ``encoding``."""
    _, is_utf8 = _python_encoding(encoding)
    row = line - 1 if header else line
    where = f"line {line}" + (" (the header)" if row < 1 else "")
    fix = ("re-encode the file as UTF-8 or pass --encoding latin-1 (config key encoding)"
           if is_utf8 else
           f"re-encode the file as {encoding} or pass the file's real encoding (--encoding)")
    return GraphrelInputError(f"byte 0x{bad.hex().upper()} at {where} is not valid {encoding}", path=p,
                              row=row if row >= 1 else None, fix=fix)


def _decode(raw: bytes, p: Path, encoding: str, *, header: bool) -> str:
    """Decode ``raw``; on a bad byte name its 1-based line and data row.

    Args:
        header: True if line 1 is a header (CSV), so data row = line - 1.
    """
    codec, _ = _python_encoding(encoding)
    try:
        return raw.decode(codec)
    except LookupError:
        raise _unknown_encoding(p, encoding) from None
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise _encoding_error(p, encoding, line, raw[err.start:err.start + 1], header=header) from None


def _locate_decode_error(p: Path, compression: str | None, encoding: str, *,
                         header: bool) -> GraphrelInputError:
    """Find the first byte of the file that is not valid ``encoding`` (reading it in 1 MiB
    blocks with an incremental decoder) and return the error naming its line and row."""
    codec, _ = _python_encoding(encoding)
    decoder = codecs.getincrementaldecoder(codec)(errors="strict")
    newlines = 0  # in the blocks decoded so far (pending partial characters hold no newline)
    with _open_binary(p, compression) as stream:
        while True:
            block = stream.read(1 << 20)
            try:
                decoder.decode(block, final=not block)
            except UnicodeDecodeError as err:
                data = err.object  # what the codec was given: pending bytes + this block
                line = newlines + data.count(b"\n", 0, err.start) + 1
                return _encoding_error(p, encoding, line, data[err.start:err.start + 1], header=header)
            newlines += block.count(b"\n")
            if not block:
                break
    return GraphrelInputError(f"text is not valid {encoding}", path=p,
                              fix="re-encode the file or pass its real encoding (--encoding)")


_CSV_OPTIONS: dict[str, Any] = {"dtype": str, "keep_default_na": False, "na_values": [""]}


def _csv_error(err: Exception, p: Path) -> GraphrelInputError:
    if isinstance(err, pd.errors.EmptyDataError):
        return GraphrelInputError("file is empty", path=p,
                                  fix="pass a file with a header line and at least one data row")
    m = re.search(r"line (\d+)", str(err))
    row = int(m.group(1)) - 1 if m else None
    return GraphrelInputError(
        f"malformed CSV ({str(err).strip()})", path=p, row=row if row and row >= 1 else None,
        fix="check the separator (comma) and the quoting of that row")


def _read_csv_text(text: str, p: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(io.StringIO(text), **_CSV_OPTIONS)
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as err:
        raise _csv_error(err, p) from None


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


class _JsonObject(dict):
    """A JSON object; ``repeated`` lists the keys it had more than once (json keeps the last)."""

    __slots__ = ("repeated",)


def _json_object(pairs: list[tuple[str, Any]]) -> _JsonObject:
    obj = _JsonObject(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        obj.repeated = sorted({key for key, _ in pairs if key in seen or seen.add(key)})
    return obj


def _jsonl_chunks(lines: Iterable[str], p: Path,
                  chunk_size: int | None = None) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
    """Parse JSON Lines: (frame, 1-based line numbers) per ``chunk_size`` records (all if None).

    Blank lines are skipped; a record's row is its line number. A key repeated within one
    record is an error (JSON parsers keep one of the values, silently).
    """
    records: list[dict] = []
    numbers: list[int] = []
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
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
        records.append(obj)
        numbers.append(line_no)
        if chunk_size is not None and len(records) >= chunk_size:
            yield pd.DataFrame.from_records(records), np.asarray(numbers, dtype=np.int64)
            records, numbers = [], []
    if records or chunk_size is None:
        yield pd.DataFrame.from_records(records), np.asarray(numbers, dtype=np.int64)


def _read_jsonl_text(text: str, p: Path) -> tuple[pd.DataFrame, np.ndarray]:
    # Lines end at \n, \r or \r\n only (as when streaming): U+2028 and friends may sit inside
    # JSON strings unescaped.
    return next(_jsonl_chunks(io.StringIO(text, newline=None), p))


# --------------------------------------------------------------------------- columns
#
# Every format's columns go through the same two checks, for the whole-file loaders and the
# chunked reader alike: _select_columns (names: repeated, missing, which to read) before any
# data row is read, and _check_values (types) on every table or chunk read.


@dataclass(frozen=True)
class _Column:
    """A column a loader reads.

    Attributes:
        name: its name in the file (compared with the ends of the file's names stripped).
        fix: what to do when it is missing (required columns).
        required: missing is an error; an optional column is read when present.
        text: it must hold text (strings), not numbers, dates or nested values.
        option: the option naming it (``--product-text-column``), for the fix of a wrong type.
    """

    name: str
    fix: str = ""
    required: bool = True
    text: bool = False
    option: str | None = None


def _merge_columns(columns: Iterable[_Column]) -> list[_Column]:
    """One entry per name (a column may serve two roles, e.g. query text and query id)."""
    merged: dict[str, _Column] = {}
    for column in columns:
        if column.name in merged:
            old = merged[column.name]
            column = _Column(column.name, old.fix or column.fix, old.required or column.required,
                             old.text or column.text, old.option if old.text else column.option)
        merged[column.name] = column
    return list(merged.values())


def _select_columns(names: list[str], columns: list[_Column], p: Path) -> list[int]:
    """Positions (in file order) of the columns to read, from the file's column names.

    Raises:
        GraphrelInputError: a name that occurs more than once (ends stripped; unnamed
            columns aside), or a required column that is missing (naming the columns found
            and the closest name).
    """
    stripped = [str(name).strip() for name in names]
    counts: dict[str, int] = {}
    for name in stripped:
        counts[name] = counts.get(name, 0) + 1
    repeated = [name for name, n in counts.items() if n > 1 and name and not name.startswith("Unnamed: ")]
    if repeated:
        where = "; ".join(f"{name!r} at columns " + ", ".join(str(i + 1) for i, n in enumerate(stripped) if n == name)
                          for name in repeated)
        raise GraphrelInputError(f"repeated column name(s): {where}", path=p,
                                 fix="rename or remove the repeated columns so that every name occurs once")
    present = {name: i for i, name in enumerate(stripped)}
    positions = []
    for column in columns:
        if column.name in present:
            positions.append(present[column.name])
        elif column.required:
            raise _missing_column(stripped, column.name, p, column.fix)
    return sorted(set(positions))


_NESTED = (list, tuple, dict, set, np.ndarray)
_SCALAR_KINDS = {"string", "empty", "bytes", "integer", "floating", "mixed-integer-float", "decimal", "boolean"}


def _type_name(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "a true/false value"
    if isinstance(value, (int, float, np.integer, np.floating)):
        return f"a number ({value!r})"
    if isinstance(value, (dict,)):
        return "an object"
    if isinstance(value, _NESTED):
        return "a list"
    return f"a {type(value).__name__}"


def _text_fix(column: _Column) -> str:
    fix = f"store {column.name!r} as text (strings)"
    if column.option:
        fix += f", or pass {column.option} naming the column that holds the text"
    return fix


def _check_values(raw: pd.DataFrame, columns: list[_Column], row_ids: np.ndarray, p: Path) -> None:
    """Types of the columns read: a text column holds text; no column holds nested values.

    Raises:
        GraphrelInputError: a text column of numbers, dates or true/false values (naming it
            and its type); a value that is not text in a text column, or a list or object
            in any column (naming the row).
    """
    for column in columns:
        if column.name not in raw.columns:
            continue
        values, rows = raw[column.name], row_ids
        dtype = values.dtype
        if isinstance(dtype, pd.CategoricalDtype):
            values, dtype = pd.Series(dtype.categories), dtype.categories.dtype
            rows = None  # a bad category is named, not its rows
        if column.text and (pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype)
                            or pd.api.types.is_datetime64_any_dtype(dtype)
                            or pd.api.types.is_timedelta64_dtype(dtype)):
            raise GraphrelInputError(f"column {column.name!r} holds {dtype} values, not text", path=p,
                                     fix=_text_fix(column))
        if dtype != object:
            continue
        kind = pd.api.types.infer_dtype(values, skipna=True)
        if kind in (("string", "empty", "bytes") if column.text else _SCALAR_KINDS):
            continue
        for i, value in enumerate(values):
            missing = value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))
            if missing or isinstance(value, (str, bytes)):
                continue
            if isinstance(value, _NESTED) or column.text:
                row = int(rows[i]) if rows is not None else None
                what = "text" if column.text else "a single value"
                raise GraphrelInputError(
                    f"{_type_name(value)} in column {column.name!r}, where {what} belongs", path=p, row=row,
                    fix=_text_fix(column) if column.text else
                    f"store one value per row in {column.name!r} (not a list or object)")


def _strip_columns(raw: pd.DataFrame) -> pd.DataFrame:
    return raw.rename(columns=lambda c: str(c).strip())


def _no_data_rows(p: Path) -> GraphrelInputError:
    return GraphrelInputError("file has a header but no data rows", path=p,
                              fix="pass a file with at least one data row")


def _unreadable_parquet(p: Path, err: Exception) -> GraphrelInputError:
    return GraphrelInputError(f"not a readable Parquet file ({err})", path=p,
                              fix="check the file, or pass file_format (--file-format) if it is CSV or JSONL")


def _read_table(p: Path, fmt: str, compression: str | None, encoding: str,
                columns: list[_Column]) -> tuple[pd.DataFrame, np.ndarray]:
    """Read the ``columns`` of a whole file (string columns for CSV) plus its 1-based row ids.

    Parquet files are read column by column: only the columns selected.
    """
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            src = p if compression is None else io.BytesIO(_read_bytes(p, compression))
            metadata = pq.read_metadata(src)
            if not isinstance(src, Path):
                src.seek(0)
            if metadata.num_rows == 0:
                raise _no_data_rows(p)
            names = metadata.schema.to_arrow_schema().names
            positions = _select_columns(names, columns, p)
            raw = pd.read_parquet(src, columns=[names[i] for i in positions])
        except GraphrelInputError:
            raise
        except Exception as err:  # pyarrow raises several types for corrupt files
            raise _unreadable_parquet(p, err) from None
        raw = _strip_columns(raw)
        row_ids = np.arange(1, len(raw) + 1, dtype=np.int64)
    else:
        text = _decode(_read_bytes(p, compression), p, encoding, header=fmt == "csv")
        if not text.strip():
            raise GraphrelInputError("file is empty", path=p,
                                     fix="pass a file with a header line and at least one data row")
        if fmt == "csv":
            header = _csv_header(io.StringIO(text), p)
            raw = _read_csv_text(text, p)
            if len(raw) == 0:
                raise _no_data_rows(p)
            raw = _csv_columns(raw, header, _select_columns(header, columns, p), p, 1)
            row_ids = np.arange(1, len(raw) + 1, dtype=np.int64)
        else:
            raw, row_ids = _read_jsonl_text(text, p)
            raw = _strip_columns(raw.iloc[:, _select_columns(list(raw.columns), columns, p)])
    if len(raw) == 0:
        raise _no_data_rows(p)
    raw = raw.reset_index(drop=True)
    _check_values(raw, columns, row_ids, p)
    return raw, row_ids


def _iter_table(p: Path, fmt: str, compression: str | None, encoding: str, chunk_size: int,
                columns: list[_Column]) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
    """Read the ``columns`` of a file in chunks of ``chunk_size`` rows: (raw frame, 1-based
    row ids) each.

    Same raw frames and errors as :func:`_read_table`, without holding the file in memory:
    Parquet through ``pyarrow.parquet.ParquetFile.iter_batches`` (the selected columns
    only), CSV through ``pandas.read_csv(chunksize=...)`` on a decoding stream, JSON Lines
    line by line.
    """
    if fmt == "parquet":
        chunks = _iter_parquet(p, compression, chunk_size, columns)
    elif fmt == "csv":
        chunks = _iter_csv(p, compression, encoding, chunk_size, columns)
    else:
        chunks = _iter_jsonl(p, compression, encoding, chunk_size, columns)
    n = 0
    for raw, row_ids in chunks:
        if len(raw) == 0:
            break
        n += len(raw)
        raw = raw.reset_index(drop=True)
        _check_values(raw, columns, row_ids, p)
        yield raw, row_ids
    if n == 0:
        raise _no_data_rows(p)


def _iter_parquet(p: Path, compression: str | None, chunk_size: int,
                  columns: list[_Column]) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    with ExitStack() as stack:
        source: Any = p
        if compression is not None:  # spool the decompressed file to disk, not to memory
            source = stack.enter_context(tempfile.TemporaryFile())
            try:
                with _open_binary(p, compression) as stream:
                    shutil.copyfileobj(stream, source, 1 << 20)
            except (OSError, EOFError, zlib.error) as err:
                raise _bad_gzip(p, err) from None
            source.seek(0)
        try:
            parquet = stack.enter_context(pq.ParquetFile(source))
            names = parquet.schema_arrow.names
        except Exception as err:  # pyarrow raises several types for corrupt files
            raise _unreadable_parquet(p, err) from None
        if parquet.metadata.num_rows == 0:
            raise _no_data_rows(p)
        selected = [names[i] for i in _select_columns(names, columns, p)]
        pending: list = []
        n_pending, first_row = 0, 1
        batches = parquet.iter_batches(batch_size=chunk_size, columns=selected)
        while True:
            try:
                batch = next(batches, None)
            except Exception as err:
                raise _unreadable_parquet(p, err) from None
            if batch is not None:
                pending.append(batch)
                n_pending += batch.num_rows
            # batches stop at row-group ends: regroup them into chunks of exactly chunk_size rows
            while n_pending >= chunk_size or (batch is None and n_pending):
                table = pa.Table.from_batches(pending)
                take = min(chunk_size, n_pending)
                raw = _strip_columns(table.slice(0, take).to_pandas())
                rest = table.slice(take)
                pending, n_pending = rest.to_batches(), rest.num_rows
                yield raw, np.arange(first_row, first_row + take, dtype=np.int64)
                first_row += take
            if batch is None:
                return


def _checked_codec(p: Path, encoding: str) -> str:
    """Python codec name of ``encoding``; GraphrelInputError naming the file if unknown."""
    codec, _ = _python_encoding(encoding)
    try:
        codecs.lookup(codec)
    except LookupError:
        raise _unknown_encoding(p, encoding) from None
    return codec


def _iter_csv(p: Path, compression: str | None, encoding: str, chunk_size: int,
              columns: list[_Column]) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
    codec = _checked_codec(p, encoding)
    first_row = 1
    try:
        with _open_binary(p, compression) as stream:  # the header as written, first
            header = _csv_header(io.TextIOWrapper(stream, encoding=codec, errors="strict", newline=""), p)
        positions = None  # checked with the first rows (a file without rows says so first)
        with _open_binary(p, compression) as stream:
            text = io.TextIOWrapper(stream, encoding=codec, errors="strict", newline="")
            with pd.read_csv(text, chunksize=chunk_size, **_CSV_OPTIONS) as reader:
                for raw in reader:
                    if positions is None:
                        positions = _select_columns(header, columns, p)
                    yield (_csv_columns(raw, header, positions, p, first_row),
                           np.arange(first_row, first_row + len(raw), dtype=np.int64))
                    first_row += len(raw)
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as err:
        raise _csv_error(err, p) from None
    except UnicodeDecodeError:
        raise _locate_decode_error(p, compression, encoding, header=True) from None
    except (OSError, EOFError, zlib.error) as err:
        if compression != ".gz":
            raise
        raise _bad_gzip(p, err) from None


def _iter_jsonl(p: Path, compression: str | None, encoding: str, chunk_size: int,
                columns: list[_Column]) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
    codec = _checked_codec(p, encoding)
    names: list[str] | None = None
    any_text = False
    try:
        with _open_binary(p, compression) as stream:
            text = io.TextIOWrapper(stream, encoding=codec, errors="strict", newline=None)
            for raw, row_ids in _jsonl_chunks(text, p, chunk_size):
                any_text = True
                # a key absent from every record of a later chunk is a column of blanks there
                names = list(raw.columns) if names is None else names + [
                    c for c in raw.columns if c not in names]
                raw = raw.reindex(columns=names)
                yield _strip_columns(raw.iloc[:, _select_columns(names, columns, p)]), row_ids
    except UnicodeDecodeError:
        raise _locate_decode_error(p, compression, encoding, header=False) from None
    except (OSError, EOFError, zlib.error) as err:
        if compression != ".gz":
            raise
        raise _bad_gzip(p, err) from None
    if not any_text:
        raise GraphrelInputError("file is empty", path=p,
                                 fix="pass a file with a header line and at least one data row")


def _missing_column(found: list[str], name: str, p: Path, fix: str) -> GraphrelInputError:
    """The error for column ``name`` missing among the ``found`` names (closest one named)."""
    if len(found) == 1 and any(sep in found[0] for sep in ("\t", ";", "|")):
        fix = "the file does not look comma-separated; save it as comma-separated CSV, then " + fix
    hint = ""
    lowered = {c.lower(): c for c in found}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    if close:
        hint = f" (did you mean {lowered[close[0]]!r}?)"
    return GraphrelInputError(f"missing column {name!r}{hint}; columns found: {', '.join(found)}", path=p, fix=fix)


def _require_column(raw: pd.DataFrame, name: str, p: Path, fix: str) -> pd.Series:
    if name not in raw.columns:
        raise _missing_column([str(c) for c in raw.columns], name, p, fix)
    return raw[name]


# --------------------------------------------------------------------------- validation


def _scalar_text(v: Any) -> str | None:
    if v is None or v is pd.NA:
        return None
    if isinstance(v, (float, np.floating)):
        if math.isnan(v):
            return None
        if float(v).is_integer():
            return str(int(v))
    if isinstance(v, bytes):
        return v.decode("utf-8", errors="replace")
    return str(v)


def _as_text(s: pd.Series) -> pd.Series:
    """Column as pandas str dtype; missing stays NaN; integral floats print without '.0'."""
    if _STR == "str" and isinstance(s.dtype, pd.StringDtype):
        return s.astype(_STR)
    return pd.Series([_scalar_text(v) for v in s], index=s.index, dtype=_STR)


def _all_blank(values: pd.Series) -> bool:
    """True when no value of the column is set (every one missing or white space)."""
    text = _as_text(values).str.strip()
    return bool((text.isna() | (text == "")).all())


def _first_bad(mask: pd.Series, row_ids: np.ndarray) -> int | None:
    arr = np.asarray(mask, dtype=bool)
    if not arr.any():
        return None
    return int(row_ids[int(np.argmax(arr))])


def _check_nonempty(text: pd.Series, row_ids: np.ndarray, p: Path, what: str, column: str) -> pd.Series:
    """Strip ``text``; raise on the first missing or blank value."""
    stripped = text.str.strip()
    row = _first_bad(stripped.isna() | (stripped == ""), row_ids)
    if row is not None:
        raise GraphrelInputError(f"empty {what} (column {column!r})", path=p, row=row,
                                 fix=f"fill in the {what} or drop the row")
    return stripped


def _numeric_labels(values: pd.Series, row_ids: np.ndarray, p: Path, column: str) -> pd.Series:
    """Labels as float64; blank/NaN stays NaN (unlabelled); text that is not a number raises."""
    if pd.api.types.is_bool_dtype(values.dtype) or pd.api.types.is_numeric_dtype(values.dtype):
        return values.astype(np.float64)
    text = _as_text(values).str.strip()
    num = pd.to_numeric(text, errors="coerce")
    bad = num.isna() & text.notna() & (text != "") & ~text.str.lower().isin(["nan", "na", "null", "none"])
    row = _first_bad(bad, row_ids)
    if row is not None:
        value = text[np.asarray(bad, dtype=bool)].iloc[0]
        raise GraphrelInputError(f"label {value!r} in column {column!r} is not a number", path=p,
                                 row=row, fix="make every label a number, or leave it blank if unknown")
    return num.astype(np.float64)


def _check_scale(label_min: Any, label_max: Any, p: Path) -> tuple[float, float]:
    try:
        lo, hi = float(label_min), float(label_max)
    except (TypeError, ValueError):
        raise GraphrelInputError(f"label_min={label_min!r} / label_max={label_max!r} are not numbers",
                                 path=p, fix="pass numeric --label-min and --label-max") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
        raise GraphrelInputError(f"label scale [{lo}, {hi}] is empty or not finite", path=p,
                                 fix="pass --label-min smaller than --label-max (config keys "
                                     "label_min, label_max)")
    return lo, hi


def _build(p: Path, row_ids: np.ndarray, *, query: pd.Series, query_col: str,
           product_id: pd.Series, product_id_col: str, product_text: pd.Series,
           product_text_col: str, relevance: pd.Series | None, label_col: str | None,
           label_min: float, label_max: float, query_id: pd.Series | None = None,
           query_id_col: str | None = None) -> RelevancePairs:
    """Validate the mapped columns of one table or chunk and assemble a
    :class:`RelevancePairs` (duplicates kept: see :func:`_drop_duplicates`)."""
    q = _check_nonempty(_as_text(query), row_ids, p, "query text", query_col)
    if query_id is None:
        qid = q
    else:
        qid = _check_nonempty(_as_text(query_id), row_ids, p, "query id", query_id_col or "query_id")
    pid = _check_nonempty(_as_text(product_id), row_ids, p, "product id", product_id_col)
    ptext = _check_nonempty(_as_text(product_text), row_ids, p, "product text", product_text_col)

    if relevance is None:
        rel = pd.Series(np.nan, index=q.index, dtype=np.float64)
    else:
        rel = relevance.astype(np.float64)
        out = rel.notna() & ((rel < label_min) | (rel > label_max))
        row = _first_bad(out, row_ids)
        if row is not None:
            value = rel[np.asarray(out, dtype=bool)].iloc[0]
            raise GraphrelInputError(
                f"label {value:g} in column {label_col!r} is outside [{label_min:g}, {label_max:g}]",
                path=p, row=row,
                fix="correct the label, or pass the real scale with --label-min/--label-max "
                    "(config keys label_min, label_max)")
    label = (rel - label_min) / (label_max - label_min)

    frame = pd.DataFrame({
        "row_id": pd.Series(row_ids, index=q.index, dtype=np.int64),
        "query_id": qid, "query": q, "product_id": pid, "product_text": ptext,
        "relevance": rel, "label": label.astype(np.float64),
    })[PAIR_COLUMNS]
    return RelevancePairs(frame.reset_index(drop=True), label_min=float(label_min),
                          label_max=float(label_max), source=str(p))


def _drop_duplicates(pairs: RelevancePairs, keep_duplicates: bool) -> RelevancePairs:
    """Keep the first of each repeated (query_id, product_id) pair, with a warning giving the
    count and the first repeat's row (or keep every row if ``keep_duplicates``)."""
    if keep_duplicates:
        return pairs
    frame = pairs.frame
    dup = frame.duplicated(["query_id", "product_id"], keep="first")
    n_dup = int(dup.sum())
    if not n_dup:
        return pairs
    first = int(frame.loc[dup, "row_id"].iloc[0])
    warnings.warn(
        f"{pairs.source}: {n_dup} duplicated (query_id, product_id) pair(s), first at row {first}; "
        f"kept the first occurrence of each", stacklevel=4)
    return pairs.subset(~dup.to_numpy())


# --------------------------------------------------------------------------- sources
#
# A source is how one loader reads a file: where it is, its format, and how to validate and
# map one raw table (the whole file or one chunk of it) into pairs. The whole-file loaders
# (load_home_depot, load_esci, load_pairs) and the chunked reader (iter_pairs) share it, so
# both apply the same rules with the same messages, and a chunk's errors name the true row.


@dataclass
class _Source:
    p: Path
    fmt: str
    compression: str | None
    encoding: str
    columns: list[_Column]  # the columns read (the rest of the file is never converted)
    to_pairs: Callable[[pd.DataFrame, np.ndarray], RelevancePairs]  # raw table + row ids -> pairs
    finish: Callable[[int], None] = lambda n_pairs: None  # checks once the whole file is read

    def load(self, keep_duplicates: bool) -> RelevancePairs:
        raw, row_ids = _read_table(self.p, self.fmt, self.compression, self.encoding, self.columns)
        pairs = self.to_pairs(raw, row_ids)
        self.finish(len(pairs))
        return _drop_duplicates(pairs, keep_duplicates)

    def chunks(self, chunk_size: int) -> Iterator[RelevancePairs]:
        n_pairs = 0
        for raw, row_ids in _iter_table(self.p, self.fmt, self.compression, self.encoding, chunk_size,
                                        self.columns):
            pairs = self.to_pairs(raw, row_ids)
            n_pairs += len(pairs)
            yield pairs
        self.finish(n_pairs)


_HD_FIX = ("this loader expects the Kaggle Home Depot train.csv (columns id, product_uid, "
           "product_title, search_term, relevance); for other files use kind 'generic' "
           "with the column options (see data/README.md)")


def _home_depot_source(path: PathLike, *, encoding: str = "latin-1") -> _Source:
    p = _check_path(path)
    fmt, compression = _resolve_format(p, None)
    if fmt != "csv":
        raise GraphrelInputError(f"expected a CSV or zipped CSV, got a {fmt} file", path=p, fix=_HD_FIX)

    def to_pairs(raw: pd.DataFrame, row_ids: np.ndarray) -> RelevancePairs:
        query = _require_column(raw, "search_term", p, _HD_FIX)
        pid = _require_column(raw, "product_uid", p, _HD_FIX)
        ptext = _require_column(raw, "product_title", p, _HD_FIX)
        relevance = None
        if "relevance" in raw.columns:
            relevance = _numeric_labels(raw["relevance"], row_ids, p, "relevance")
        return _build(p, row_ids, query=query, query_col="search_term", product_id=pid,
                      product_id_col="product_uid", product_text=ptext, product_text_col="product_title",
                      relevance=relevance, label_col="relevance", label_min=1.0, label_max=3.0)

    columns = [_Column("search_term", _HD_FIX, text=True), _Column("product_uid", _HD_FIX),
               _Column("product_title", _HD_FIX, text=True), _Column("relevance", required=False)]
    return _Source(p, "csv", compression, encoding, columns, to_pairs)


_ESCI_FIX = ("the ESCI loader expects columns query, product_id, product_title, esci_label "
             "(query_id, product_locale optional): merge shopping_queries_dataset_products into "
             "shopping_queries_dataset_examples first (see data/README.md), or use kind 'generic'")


def _esci_source(path: PathLike, locale: str | None = None, *, encoding: str = "utf-8",
                 file_format: str | None = None) -> _Source:
    p = _check_path(path)
    fmt, compression = _resolve_format(p, file_format)
    locales_found: set[str] = set()

    def to_pairs(raw: pd.DataFrame, row_ids: np.ndarray) -> RelevancePairs:
        for col in ("query", "product_id", "product_title", "esci_label"):
            _require_column(raw, col, p, _ESCI_FIX)
        if locale is not None:
            loc = _require_column(raw, "product_locale", p,
                                  "drop the locale option, or load the examples file that has it")
            loc = _as_text(loc).str.strip().str.lower()
            locales_found.update(loc.dropna().unique())
            keep = np.asarray(loc == str(locale).strip().lower(), dtype=bool)
            raw, row_ids = raw.loc[keep].reset_index(drop=True), row_ids[keep]

        codes = _as_text(raw["esci_label"]).str.strip().str.upper()
        codes = codes.map(lambda c: _ESCI_NAMES.get(c, c) if isinstance(c, str) else c).astype(_STR)
        blank = codes.isna() | (codes == "")
        bad = ~blank & ~codes.isin(list(ESCI_GAINS))
        row = _first_bad(bad, row_ids)
        if row is not None:
            value = raw["esci_label"][np.asarray(bad, dtype=bool)].iloc[0]
            raise GraphrelInputError(f"unknown esci_label {value!r}", path=p, row=row,
                                     fix="use one of E, S, C, I (or leave it blank if unknown)")
        gains = codes.map(ESCI_GAINS).astype(np.float64)  # blank -> NaN (unlabelled)
        query_id = raw["query_id"] if "query_id" in raw.columns else None
        if query_id is not None and _all_blank(query_id):  # an empty column counts as absent
            query_id = None
        return _build(p, row_ids, query=raw["query"], query_col="query", query_id=query_id,
                      query_id_col="query_id", product_id=raw["product_id"], product_id_col="product_id",
                      product_text=raw["product_title"], product_text_col="product_title",
                      relevance=gains, label_col="esci_label", label_min=0.0, label_max=1.0)

    def finish(n_pairs: int) -> None:
        if locale is not None and n_pairs == 0:
            found = ", ".join(sorted(locales_found)) or "none"
            raise GraphrelInputError(f"no rows with product_locale {locale!r}; locales found: {found}",
                                     path=p, fix="pass one of the locales found, or no locale")

    columns = [_Column("query", _ESCI_FIX, text=True), _Column("product_id", _ESCI_FIX),
               _Column("product_title", _ESCI_FIX, text=True), _Column("esci_label", _ESCI_FIX),
               _Column("query_id", required=False),
               _Column("product_locale", "drop the locale option, or load the examples file that has it",
                       required=locale is not None)]
    if locale is None:
        columns.pop()  # not read
    return _Source(p, fmt, compression, encoding, columns, to_pairs, finish)


def _option(key: str) -> str:
    return f"--{key.replace('_', '-')} (config key {key})"


def _column_fix(option: str) -> str:
    return f"pass --{option.replace('_', '-')} NAME (config key {option}) naming the right column"


def _generic_source(path: PathLike, *, query_column: str = "query", product_id_column: str = "product_id",
                    product_text_column: str = "product_text", label_column: str | None = None,
                    query_id_column: str | None = None, label_min: float | None = None,
                    label_max: float | None = None, encoding: str = "utf-8",
                    file_format: str | None = None) -> _Source:
    p = _check_path(path)
    fmt, compression = _resolve_format(p, file_format)

    def to_pairs(raw: pd.DataFrame, row_ids: np.ndarray) -> RelevancePairs:
        query = _require_column(raw, query_column, p, _column_fix("query_column"))
        pid = _require_column(raw, product_id_column, p, _column_fix("product_id_column"))
        ptext = _require_column(raw, product_text_column, p, _column_fix("product_text_column"))
        qid = None
        if query_id_column is not None:
            qid = _require_column(raw, query_id_column, p, _column_fix("query_id_column"))

        relevance = None
        lo, hi = label_min, label_max
        if (lo is None) != (hi is None):
            raise GraphrelInputError("only one of label_min / label_max given", path=p,
                                     fix="pass both --label-min and --label-max (config keys "
                                         "label_min, label_max)")
        if label_column is not None:
            labels = _require_column(raw, label_column, p, _column_fix("label_column"))
            relevance = _numeric_labels(labels, row_ids, p, label_column)
            if lo is None:
                known = relevance.dropna()
                if len(known) and (known.min() < 0.0 or known.max() > 1.0):
                    raise GraphrelInputError(
                        f"labels in column {label_column!r} range from {known.min():g} to "
                        f"{known.max():g}, outside [0, 1], and no label scale was given", path=p,
                        fix="pass --label-min and --label-max with the label scale (config keys "
                            "label_min, label_max), e.g. 1 and 3")
                lo, hi = 0.0, 1.0
        lo, hi = _check_scale(0.0 if lo is None else lo, 1.0 if hi is None else hi, p)
        return _build(p, row_ids, query=query, query_col=query_column, query_id=qid,
                      query_id_col=query_id_column, product_id=pid, product_id_col=product_id_column,
                      product_text=ptext, product_text_col=product_text_column, relevance=relevance,
                      label_col=label_column, label_min=lo, label_max=hi)

    columns = [_Column(query_column, _column_fix("query_column"), text=True, option=_option("query_column")),
               _Column(product_id_column, _column_fix("product_id_column")),
               _Column(product_text_column, _column_fix("product_text_column"), text=True,
                       option=_option("product_text_column"))]
    if query_id_column is not None:
        columns.append(_Column(query_id_column, _column_fix("query_id_column")))
    if label_column is not None:
        columns.append(_Column(label_column, _column_fix("label_column")))
    return _Source(p, fmt, compression, encoding, _merge_columns(columns), to_pairs)


# --------------------------------------------------------------------------- loaders


def load_home_depot(path: PathLike, *, encoding: str = "latin-1", keep_duplicates: bool = False) -> RelevancePairs:
    """Load the Kaggle "Home Depot Product Search Relevance" ``train.csv``.

    Reads ``train.csv.zip`` (a zip holding one CSV) or the plain ``train.csv``; the file is
    latin-1 encoded. Mapping:

    ============== ================================= =====
    output column  source                            type
    ============== ================================= =====
    query          ``search_term``, ends stripped    str
    query_id       same as ``query``                 str
    product_id     ``str(product_uid)``              str
    product_text   ``product_title``, ends stripped  str
    relevance      ``relevance`` (1..3, mean rating) float64
    label          ``(relevance - 1) / 2`` in [0, 1] float64
    ============== ================================= =====

    Kaggle's ``test.csv`` (no ``relevance`` column) loads too, with NaN labels.

    Args:
        path: path of ``train.csv.zip`` / ``train.csv``.
        encoding: text encoding of the CSV (latin-1 for the Kaggle files).
        keep_duplicates: keep repeated (query_id, product_id) pairs (batch scoring scores
            every input row); by default the first of each is kept, with a warning.

    Returns:
        The validated pairs, ``label_min=1.0``, ``label_max=3.0``.

    Raises:
        GraphrelInputError: missing/empty file, missing column, empty query/product text or
            id, non-numeric relevance or relevance outside [1, 3].

    Warns:
        UserWarning: duplicated (query, product) pairs (the first of each is kept).
    """
    return _home_depot_source(path, encoding=encoding).load(keep_duplicates)


def load_esci(path: PathLike, locale: str | None = None, *, encoding: str = "utf-8",
              file_format: str | None = None, keep_duplicates: bool = False) -> RelevancePairs:
    """Load the Amazon "Shopping Queries Dataset" (ESCI), examples merged with products.

    Expected columns: ``query`` (str), ``product_id`` (str), ``product_title`` (str),
    ``esci_label`` (one of ``E``, ``S``, ``C``, ``I``; the full names ``Exact``,
    ``Substitute``, ``Complement``, ``Irrelevant`` are accepted too; blank = unlabelled),
    optionally ``query_id`` (derived from the stripped query text when absent or
    entirely empty; a column with some ids must have one on every row) and
    ``product_locale`` (needed for ``locale``). CSV or Parquet (format from the suffix).

    Labels map to the gains of the ESCI paper's NDCG (:data:`ESCI_GAINS`):
    E → 1.0, S → 0.1, C → 0.01, I → 0.0. ``relevance`` and ``label`` both hold the gain
    (scale 0..1).

    Args:
        path: the merged examples file (``.parquet``, ``.csv``, ``.csv.gz``, ...).
        locale: keep only rows whose ``product_locale`` equals this (``"us"``, ``"es"``,
            ``"jp"``); None keeps all. ``row_id`` still counts rows of the whole file.
        encoding: text encoding for CSV input.
        keep_duplicates: keep repeated (query_id, product_id) pairs (batch scoring scores
            every input row); by default the first of each is kept, with a warning.
        file_format: ``"csv"`` or ``"parquet"`` to override the suffix.

    Returns:
        The validated pairs, ``label_min=0.0``, ``label_max=1.0``.

    Raises:
        GraphrelInputError: missing/empty file, missing column, unknown ESCI label, empty
            query/product text or id, non-UTF-8 CSV, no rows for ``locale``.

    Warns:
        UserWarning: duplicated (query_id, product_id) pairs (the first of each is kept).
    """
    return _esci_source(path, locale, encoding=encoding, file_format=file_format).load(keep_duplicates)


def load_pairs(path: PathLike, *, query_column: str = "query", product_id_column: str = "product_id",
               product_text_column: str = "product_text", label_column: str | None = None,
               query_id_column: str | None = None, label_min: float | None = None,
               label_max: float | None = None, encoding: str = "utf-8",
               file_format: str | None = None, keep_duplicates: bool = False) -> RelevancePairs:
    """Load query-product pairs from any CSV, Parquet or JSONL file by column mapping.

    The format comes from the suffix: ``.csv`` (also ``.csv.zip``, ``.csv.gz``),
    ``.parquet``, ``.jsonl`` / ``.ndjson``; ``file_format`` overrides it. CSV and JSONL
    text is checked for ``encoding`` before parsing.

    Args:
        path: the pairs file.
        query_column: column with the query text (str, not empty).
        product_id_column: column with the product id (any type, stored as str, not empty).
        product_text_column: column with the product text (str, not empty).
        label_column: column with numeric labels (blank = unlabelled). None: no labels
            (``relevance`` and ``label`` are NaN).
        query_id_column: column with a query id; None derives it from the stripped query
            text.
        label_min: lower end of the label scale. Required with ``label_column`` unless the
            labels already lie within [0, 1] and neither end is given (then 0..1).
        label_max: upper end of the label scale (see ``label_min``).
        encoding: text encoding of CSV / JSONL input.
        keep_duplicates: keep repeated (query_id, product_id) pairs (batch scoring scores
            every input row); by default the first of each is kept, with a warning.
        file_format: ``"csv"``, ``"parquet"`` or ``"jsonl"`` to override the suffix.

    Returns:
        The validated pairs; ``label = (relevance - label_min) / (label_max - label_min)``.

    Raises:
        GraphrelInputError: missing file, directory, empty or header-only file, unknown
            format, bytes not valid in ``encoding`` (with line and row), missing or repeated
            column, a text column that is not text, a list or object value, more fields
            than the header, empty query/product text or id, non-numeric label, label
            outside the scale, missing or inconsistent ``label_min``/``label_max``.

    Warns:
        UserWarning: duplicated (query_id, product_id) pairs (the first of each is kept).
    """
    return _generic_source(
        path, query_column=query_column, product_id_column=product_id_column,
        product_text_column=product_text_column, label_column=label_column,
        query_id_column=query_id_column, label_min=label_min, label_max=label_max, encoding=encoding,
        file_format=file_format).load(keep_duplicates)


_LOADERS: dict[str, Callable[..., RelevancePairs]] = {
    "home_depot": load_home_depot,
    "esci": load_esci,
    "generic": load_pairs,
}


def load_dataset(kind: str, path: PathLike, **options: Any) -> RelevancePairs:
    """Load pairs with the loader for ``kind``.

    Args:
        kind: ``"home_depot"`` (:func:`load_home_depot`), ``"esci"`` (:func:`load_esci`) or
            ``"generic"`` (:func:`load_pairs`); ``-`` is accepted for ``_``.
        path: the data file.
        **options: keyword options of that loader (e.g. ``locale`` for ESCI, the column
            options for generic).

    Returns:
        The validated pairs.

    Raises:
        GraphrelInputError: unknown ``kind`` or an option the loader does not take, plus
            everything the loader raises.
    """
    loader = _LOADERS[_kind_key(kind, path)]
    _check_options(loader, kind, path, options)
    return loader(path, **options)


_SOURCES: dict[str, Callable[..., _Source]] = {
    "home_depot": _home_depot_source,
    "esci": _esci_source,
    "generic": _generic_source,
}


def _kind_key(kind: str, path: PathLike) -> str:
    key = str(kind).strip().lower().replace("-", "_")
    if key not in _LOADERS:
        raise GraphrelInputError(f"unknown dataset kind {kind!r}", path=path,
                                 fix=f"use one of {', '.join(DATASET_KINDS)}")
    return key


def _check_options(function: Callable, kind: str, path: PathLike, options: dict) -> None:
    valid = [n for n in inspect.signature(function).parameters if n != "path"]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise GraphrelInputError(
            f"option(s) {', '.join(unknown)} not known for dataset kind {_kind_key(kind, path)!r}",
            path=path, fix=f"use only {', '.join(valid)}")


def iter_pairs(kind: str, path: PathLike, *, chunk_size: int = 100_000,
               **options: Any) -> Iterator[RelevancePairs]:
    """Read and validate a pairs file chunk by chunk, never holding the whole file.

    The streaming counterpart of :func:`load_dataset`: the same formats, column mapping,
    validation rules and one-line error messages, applied to one chunk at a time. Parquet
    is read with ``pyarrow.parquet.ParquetFile.iter_batches``, CSV (also ``.zip`` / ``.gz``)
    with ``pandas.read_csv(chunksize=...)`` on a decoding stream, JSON Lines line by line;
    memory stays flat however long the file is.

    Unlike the loaders, repeated (query_id, product_id) pairs are kept (every row is
    yielded: batch scoring scores every input row); finding repeats across chunks is the
    caller's job. Errors are raised when the chunk holding the bad row is read, so chunks
    before it have already been yielded; errors about the whole file (empty file, header
    without rows, missing column, unreadable file, no rows for an ESCI ``locale``) come
    with the first chunk, or at the end for the ESCI locale.

    Args:
        kind: ``"home_depot"``, ``"esci"`` or ``"generic"`` (as :func:`load_dataset`).
        path: the data file.
        chunk_size: input rows per chunk (JSON Lines: records, blank lines skipped), >= 1.
        **options: the options of that kind's loader except ``keep_duplicates`` (e.g. the
            column options for generic, ``locale`` for ESCI).

    Yields:
        :class:`RelevancePairs` of ``chunk_size`` input rows each (the last one may be
        shorter; with an ESCI ``locale`` only the rows kept, possibly none), in file order;
        ``row_id`` is the true 1-based data row of the whole file (JSON Lines: the line);
        ``label_min`` / ``label_max`` as the loader would give.

    Raises:
        GraphrelInputError: unknown ``kind`` or option, ``chunk_size`` < 1, and everything
            the loader raises for a bad file, naming the file, the row and the fix.
    """
    key = _kind_key(kind, path)
    _check_options(_SOURCES[key], kind, path, options)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise GraphrelInputError(f"chunk size must be a whole number >= 1, got {chunk_size!r}", path=path,
                                 fix="pass --chunk-size N with N >= 1 (e.g. 100000)")
    yield from _SOURCES[key](path, **options).chunks(int(chunk_size))


# --------------------------------------------------------------------------- split


def split_by_query(pairs: RelevancePairs, *, val_fraction: float = 0.1, test_fraction: float = 0.1,
                   seed: int = 0) -> dict[str, RelevancePairs]:
    """Split pairs into train / val / test with disjoint query sets.

    The sorted unique ``query_id`` values are permuted with ``numpy.random.default_rng(seed)``;
    the first ``round(test_fraction * n)`` queries go to test, the next
    ``round(val_fraction * n)`` to val, the rest to train. Pairs keep their order within
    each split. Same pairs and seed ⇒ same split.

    Args:
        pairs: the pairs to split.
        val_fraction: share of queries for validation, ``>= 0``.
        test_fraction: share of queries for test, ``>= 0``; ``val + test < 1``.
        seed: random seed.

    Returns:
        ``{"train": ..., "val": ..., "test": ...}``; every ``query_id`` is in exactly one.

    Raises:
        GraphrelInputError: invalid fractions, or too few queries to leave any for train.
    """
    fix = "choose val_fraction >= 0 and test_fraction >= 0 with val_fraction + test_fraction < 1"
    try:
        vf, tf = float(val_fraction), float(test_fraction)
    except (TypeError, ValueError):
        raise GraphrelInputError(f"fractions must be numbers, got val_fraction={val_fraction!r}, "
                                 f"test_fraction={test_fraction!r}", fix=fix) from None
    if not (math.isfinite(vf) and math.isfinite(tf)) or vf < 0 or tf < 0 or vf + tf >= 1:
        raise GraphrelInputError(f"invalid split fractions val_fraction={vf}, test_fraction={tf}",
                                 fix=fix)
    queries = np.asarray(sorted(pairs.frame["query_id"].unique()), dtype=object)
    n = len(queries)
    order = queries[np.random.default_rng(seed).permutation(n)]
    n_test, n_val = int(round(tf * n)), int(round(vf * n))
    if n and n_test + n_val >= n:
        raise GraphrelInputError(
            f"only {n} distinct queries: the split leaves none for training",
            path=pairs.source or None, fix="lower val_fraction/test_fraction or use more queries")
    groups = {"test": order[:n_test], "val": order[n_test:n_test + n_val],
              "train": order[n_test + n_val:]}
    qid = pairs.frame["query_id"]
    return {name: pairs.subset(qid.isin(set(groups[name])).to_numpy())
            for name in ("train", "val", "test")}
