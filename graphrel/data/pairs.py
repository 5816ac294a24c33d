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

Example:
    >>> pairs = load_dataset("home_depot", "data/home-depot/train.csv.zip")  # doctest: +SKIP
    >>> splits = split_by_query(pairs, val_fraction=0.1, test_fraction=0.1, seed=0)  # doctest: +SKIP
    >>> sorted(splits)  # doctest: +SKIP
    ['test', 'train', 'val']
"""

from __future__ import annotations

import gzip
import inspect
import io
import json
import math
import os
import re
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

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


def _read_bytes(p: Path, compression: str | None) -> bytes:
    """The file's bytes, decompressed for .zip (one data member) and .gz."""
    if compression == ".zip":
        try:
            with zipfile.ZipFile(p) as zf:
                members = [m for m in zf.infolist()
                           if not m.is_dir() and not m.filename.startswith("__MACOSX/")]
                if len(members) > 1:
                    data_like = [m for m in members
                                 if Path(m.filename).suffix.lower() in _SUFFIX_FORMATS]
                    members = data_like if len(data_like) == 1 else members
                if len(members) != 1:
                    names = ", ".join(m.filename for m in members) or "none"
                    raise GraphrelInputError(
                        f"zip archive must hold exactly one data file, found: {names}", path=p,
                        fix="unzip it and pass the data file itself")
                return zf.read(members[0])
        except zipfile.BadZipFile as err:
            raise GraphrelInputError(f"not a valid zip archive ({err})", path=p,
                                     fix="re-download the file or pass the uncompressed file") from None
    if compression == ".gz":
        try:
            return gzip.decompress(p.read_bytes())
        except (OSError, EOFError) as err:
            raise GraphrelInputError(f"not a valid gzip file ({err})", path=p,
                                     fix="re-download the file or pass the uncompressed file") from None
    return p.read_bytes()


def _decode(raw: bytes, p: Path, encoding: str, *, header: bool) -> str:
    """Decode ``raw``; on a bad byte name its 1-based line and data row.

    Args:
        header: True if line 1 is a header (CSV), so data row = line - 1.
    """
    enc = encoding.lower().replace("_", "-")
    is_utf8 = enc in ("utf-8", "utf8")
    try:
        return raw.decode("utf-8-sig" if is_utf8 else encoding)
    except LookupError:
        raise GraphrelInputError(f"unknown text encoding {encoding!r}", path=p,
                                 fix="pass encoding (--encoding) as e.g. utf-8 or latin-1") from None
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        row = line - 1 if header else line
        where = f"line {line}" + (" (the header)" if row < 1 else "")
        bad = raw[err.start:err.start + 1].hex().upper()
        fix = ("re-encode the file as UTF-8 or pass --encoding latin-1 (config key encoding)"
               if is_utf8 else
               f"re-encode the file as {encoding} or pass the file's real encoding (--encoding)")
        raise GraphrelInputError(
            f"byte 0x{bad} at {where} is not valid {encoding}", path=p,
            row=row if row >= 1 else None, fix=fix) from None


def _read_csv_text(text: str, p: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_values=[""])
    except pd.errors.EmptyDataError:
        raise GraphrelInputError("file is empty (no header line)", path=p,
                                 fix="pass a file with a header line and at least one data row") from None
    except pd.errors.ParserError as err:
        m = re.search(r"line (\d+)", str(err))
        row = int(m.group(1)) - 1 if m else None
        raise GraphrelInputError(
            f"malformed CSV ({str(err).strip()})", path=p, row=row if row and row >= 1 else None,
            fix="check the separator (comma) and the quoting of that row") from None


def _read_jsonl_text(text: str, p: Path) -> tuple[pd.DataFrame, np.ndarray]:
    records, lines = [], []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise GraphrelInputError(f"line {line_no} is not valid JSON ({err.msg})", path=p,
                                     row=line_no, fix="write one JSON object per line") from None
        if not isinstance(obj, dict):
            raise GraphrelInputError(f"line {line_no} is a JSON {type(obj).__name__}, not an object",
                                     path=p, row=line_no, fix="write one JSON object per line")
        records.append(obj)
        lines.append(line_no)
    return pd.DataFrame.from_records(records), np.asarray(lines, dtype=np.int64)


def _read_table(p: Path, fmt: str, compression: str | None,
                encoding: str) -> tuple[pd.DataFrame, np.ndarray]:
    """Read a file into a raw frame (string columns for CSV) plus its 1-based row ids."""
    if fmt == "parquet":
        try:
            src = p if compression is None else io.BytesIO(_read_bytes(p, compression))
            raw = pd.read_parquet(src)
        except GraphrelInputError:
            raise
        except Exception as err:  # pyarrow raises several types for corrupt files
            raise GraphrelInputError(f"not a readable Parquet file ({err})", path=p,
                                     fix="check the file, or pass file_format (--file-format) "
                                         "if it is CSV or JSONL") from None
        row_ids = np.arange(1, len(raw) + 1, dtype=np.int64)
    else:
        text = _decode(_read_bytes(p, compression), p, encoding, header=fmt == "csv")
        if not text.strip():
            raise GraphrelInputError("file is empty", path=p,
                                     fix="pass a file with a header line and at least one data row")
        if fmt == "csv":
            raw = _read_csv_text(text, p)
            row_ids = np.arange(1, len(raw) + 1, dtype=np.int64)
        else:
            raw, row_ids = _read_jsonl_text(text, p)
    raw = raw.rename(columns=lambda c: str(c).strip())
    if len(raw) == 0:
        raise GraphrelInputError("file has a header but no data rows", path=p,
                                 fix="pass a file with at least one data row")
    return raw.reset_index(drop=True), row_ids


def _require_column(raw: pd.DataFrame, name: str, p: Path, fix: str) -> pd.Series:
    if name not in raw.columns:
        found = [str(c) for c in raw.columns]
        if len(found) == 1 and any(sep in found[0] for sep in ("\t", ";", "|")):
            fix = "the file does not look comma-separated; save it as comma-separated CSV, then " + fix
        raise GraphrelInputError(
            f"missing column {name!r}; columns found: {', '.join(found)}", path=p, fix=fix)
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
           query_id_col: str | None = None, keep_duplicates: bool = False) -> RelevancePairs:
    """Validate the mapped columns and assemble a :class:`RelevancePairs` (dedup included)."""
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

    dup = frame.duplicated(["query_id", "product_id"], keep="first")
    n_dup = int(dup.sum())
    if n_dup and not keep_duplicates:
        first = int(frame.loc[dup, "row_id"].iloc[0])
        warnings.warn(
            f"{p}: {n_dup} duplicated (query_id, product_id) pair(s), first at row {first}; "
            f"kept the first occurrence of each", stacklevel=3)
        frame = frame.loc[~dup]
    return RelevancePairs(frame.reset_index(drop=True), label_min=float(label_min),
                          label_max=float(label_max), source=str(p))


# --------------------------------------------------------------------------- loaders

_HD_FIX = ("this loader expects the Kaggle Home Depot train.csv (columns id, product_uid, "
           "product_title, search_term, relevance); for other files use kind 'generic' "
           "with the column options (see data/README.md)")


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
    p = _check_path(path)
    fmt, compression = _resolve_format(p, None)
    if fmt != "csv":
        raise GraphrelInputError(f"expected a CSV or zipped CSV, got a {fmt} file", path=p, fix=_HD_FIX)
    raw, row_ids = _read_table(p, "csv", compression, encoding)
    query = _require_column(raw, "search_term", p, _HD_FIX)
    pid = _require_column(raw, "product_uid", p, _HD_FIX)
    ptext = _require_column(raw, "product_title", p, _HD_FIX)
    relevance = None
    if "relevance" in raw.columns:
        relevance = _numeric_labels(raw["relevance"], row_ids, p, "relevance")
    return _build(p, row_ids, query=query, query_col="search_term", product_id=pid,
                  product_id_col="product_uid", product_text=ptext, product_text_col="product_title",
                  relevance=relevance, label_col="relevance", label_min=1.0, label_max=3.0,
                  keep_duplicates=keep_duplicates)


_ESCI_FIX = ("the ESCI loader expects columns query, product_id, product_title, esci_label "
             "(query_id, product_locale optional): merge shopping_queries_dataset_products into "
             "shopping_queries_dataset_examples first (see data/README.md), or use kind 'generic'")


def load_esci(path: PathLike, locale: str | None = None, *, encoding: str = "utf-8",
              file_format: str | None = None, keep_duplicates: bool = False) -> RelevancePairs:
    """Load the Amazon "Shopping Queries Dataset" (ESCI), examples merged with products.

    Expected columns: ``query`` (str), ``product_id`` (str), ``product_title`` (str),
    ``esci_label`` (one of ``E``, ``S``, ``C``, ``I``; the full names ``Exact``,
    ``Substitute``, ``Complement``, ``Irrelevant`` are accepted too; blank = unlabelled),
    optionally ``query_id`` (derived from the stripped query text when absent) and
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
    p = _check_path(path)
    fmt, compression = _resolve_format(p, file_format)
    raw, row_ids = _read_table(p, fmt, compression, encoding)
    for col in ("query", "product_id", "product_title", "esci_label"):
        _require_column(raw, col, p, _ESCI_FIX)

    if locale is not None:
        loc = _require_column(raw, "product_locale", p,
                              "drop the locale option, or load the examples file that has it")
        loc = _as_text(loc).str.strip().str.lower()
        keep = np.asarray(loc == str(locale).strip().lower(), dtype=bool)
        if not keep.any():
            found = ", ".join(sorted(loc.dropna().unique())) or "none"
            raise GraphrelInputError(f"no rows with product_locale {locale!r}; locales found: {found}",
                                     path=p, fix="pass one of the locales found, or no locale")
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

    return _build(p, row_ids, query=raw["query"], query_col="query",
                  query_id=raw["query_id"] if "query_id" in raw.columns else None,
                  query_id_col="query_id", product_id=raw["product_id"], product_id_col="product_id",
                  product_text=raw["product_title"], product_text_col="product_title",
                  relevance=gains, label_col="esci_label", label_min=0.0, label_max=1.0,
                  keep_duplicates=keep_duplicates)


def _column_fix(option: str) -> str:
    return f"pass --{option.replace('_', '-')} NAME (config key {option}) naming the right column"


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
            format, bytes not valid in ``encoding`` (with line and row), missing column,
            empty query/product text or id, non-numeric label, label outside the scale,
            missing or inconsistent ``label_min``/``label_max``.

    Warns:
        UserWarning: duplicated (query_id, product_id) pairs (the first of each is kept).
    """
    p = _check_path(path)
    fmt, compression = _resolve_format(p, file_format)
    raw, row_ids = _read_table(p, fmt, compression, encoding)

    query = _require_column(raw, query_column, p, _column_fix("query_column"))
    pid = _require_column(raw, product_id_column, p, _column_fix("product_id_column"))
    ptext = _require_column(raw, product_text_column, p, _column_fix("product_text_column"))
    qid = None
    if query_id_column is not None:
        qid = _require_column(raw, query_id_column, p, _column_fix("query_id_column"))

    relevance = None
    if (label_min is None) != (label_max is None):
        raise GraphrelInputError("only one of label_min / label_max given", path=p,
                                 fix="pass both --label-min and --label-max (config keys "
                                     "label_min, label_max)")
    if label_column is not None:
        labels = _require_column(raw, label_column, p, _column_fix("label_column"))
        relevance = _numeric_labels(labels, row_ids, p, label_column)
        if label_min is None:
            known = relevance.dropna()
            if len(known) and (known.min() < 0.0 or known.max() > 1.0):
                raise GraphrelInputError(
                    f"labels in column {label_column!r} range from {known.min():g} to "
                    f"{known.max():g}, outside [0, 1], and no label scale was given", path=p,
                    fix="pass --label-min and --label-max with the label scale (config keys "
                        "label_min, label_max), e.g. 1 and 3")
            label_min, label_max = 0.0, 1.0
    lo, hi = _check_scale(0.0 if label_min is None else label_min,
                          1.0 if label_max is None else label_max, p)
    return _build(p, row_ids, query=query, query_col=query_column, query_id=qid,
                  query_id_col=query_id_column, product_id=pid, product_id_col=product_id_column,
                  product_text=ptext, product_text_col=product_text_column, relevance=relevance,
                  label_col=label_column, label_min=lo, label_max=hi, keep_duplicates=keep_duplicates)


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
    key = str(kind).strip().lower().replace("-", "_")
    if key not in _LOADERS:
        raise GraphrelInputError(f"unknown dataset kind {kind!r}", path=path,
                                 fix=f"use one of {', '.join(DATASET_KINDS)}")
    loader = _LOADERS[key]
    valid = [n for n in inspect.signature(loader).parameters if n != "path"]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise GraphrelInputError(
            f"option(s) {', '.join(unknown)} not known for dataset kind {key!r}", path=path,
            fix=f"use only {', '.join(valid)}")
    return loader(path, **options)


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
