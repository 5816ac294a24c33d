"""The pairs table: its columns and dtypes, the columns a source reads, and validation.

:class:`RelevancePairs` is the one validated table every source returns (columns of
:data:`PAIR_COLUMNS`). Every problem with the input raises
:class:`~graphrel.errors.GraphrelInputError` naming the file, the 1-based data row (header
excluded) and the fix.

Columns follow the same rules in every format, for a whole-file load and chunked reading
alike: a name that occurs twice (ends stripped; a JSON key twice in one record) is an error
naming it; only the columns a source uses are read (a Parquet file's other columns, nested
or not, are never converted); a text column (query, product text) holding numbers, dates or
true/false values, or any column used holding lists or objects, is an error naming the
column and, where one value is at fault, its row. Every format's columns go through the
same two checks: :func:`select_columns` (names: repeated, missing, which to read) before any
data row is read, and :func:`check_values` (types) on every table or chunk read.
"""

from __future__ import annotations

import decimal
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from graphrel.data.text_keys import blank_texts
from graphrel.errors import GraphrelInputError, did_you_mean

__all__ = ["PAIR_COLUMNS", "RelevancePairs", "Column"]

PAIR_COLUMNS: list[str] = ["row_id", "query_id", "query", "product_id", "product_text", "relevance", "label"]
"""Column order of :attr:`RelevancePairs.frame`."""

# pandas >= 3: the "str" dtype (NaN for missing values); pandas 2: object columns of str.
STR: Any = "str" if int(pd.__version__.split(".")[0]) >= 3 else object


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


# --------------------------------------------------------------------------- columns read


@dataclass(frozen=True)
class Column:
    """A column a source reads.

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


def merge_columns(columns: Iterable[Column]) -> list[Column]:
    """One entry per name (a column may serve two roles, e.g. query text and query id)."""
    merged: dict[str, Column] = {}
    for column in columns:
        if column.name in merged:
            old = merged[column.name]
            column = Column(column.name, old.fix or column.fix, old.required or column.required,
                            old.text or column.text, old.option if old.text else column.option)
        merged[column.name] = column
    return list(merged.values())


def missing_column(found: list[str], name: str, p: Path, fix: str) -> GraphrelInputError:
    """The error for column ``name`` missing among the ``found`` names (closest one named)."""
    if len(found) == 1 and any(sep in found[0] for sep in ("\t", ";", "|")):
        fix = "the file does not look comma-separated; save it as comma-separated CSV, then " + fix
    close = did_you_mean(name, found, ignore_case=True)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return GraphrelInputError(f"missing column {name!r}{hint}; columns found: {', '.join(found)}", path=p, fix=fix)


def require_column(raw: pd.DataFrame, name: str, p: Path, fix: str) -> pd.Series:
    """Column ``name`` of ``raw``; :func:`missing_column`'s error if it has none."""
    if name not in raw.columns:
        raise missing_column([str(c) for c in raw.columns], name, p, fix)
    return raw[name]


def select_columns(names: list[str], columns: list[Column], p: Path) -> list[int]:
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
            raise missing_column(stripped, column.name, p, column.fix)
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


def _text_fix(column: Column) -> str:
    fix = f"store {column.name!r} as text (strings)"
    if column.option:
        fix += f", or pass {column.option} naming the column that holds the text"
    return fix


def _is_missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def check_values(raw: pd.DataFrame, columns: list[Column], row_ids: np.ndarray, p: Path) -> None:
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
            if _is_missing(value) or isinstance(value, (str, bytes)):
                continue
            if isinstance(value, _NESTED) or column.text:
                row = int(rows[i]) if rows is not None else None
                what = "text" if column.text else "a single value"
                raise GraphrelInputError(
                    f"{_type_name(value)} in column {column.name!r}, where {what} belongs", path=p, row=row,
                    fix=_text_fix(column) if column.text else
                    f"store one value per row in {column.name!r} (not a list or object)")


# --------------------------------------------------------------------------- validation


def _scalar_text(v: Any) -> str | None:
    if v is None or v is pd.NA:
        return None
    if isinstance(v, (float, np.floating)):
        if math.isnan(v):
            return None
        if float(v).is_integer():
            return str(int(v))
    if isinstance(v, decimal.Decimal):  # Parquet / Spark decimals: plain notation, a whole one as digits
        return format(v.to_integral_value() if v == v.to_integral_value() else v, "f") if v.is_finite() else None
    if isinstance(v, bytes):
        return v.decode("utf-8", errors="replace")
    return str(v)


def as_text(s: pd.Series) -> pd.Series:
    """Column as pandas str dtype; missing stays NaN; whole floats and decimals print as digits."""
    if STR == "str" and isinstance(s.dtype, pd.StringDtype):
        return s.astype(STR)
    return pd.Series([_scalar_text(v) for v in s], index=s.index, dtype=STR)


def all_blank(values: pd.Series) -> bool:
    """True when no value of the column is set (every one missing or white space)."""
    text = as_text(values).str.strip()
    return bool((text.isna() | (text == "")).all())


def first_bad(mask: pd.Series, row_ids: np.ndarray) -> int | None:
    """The data row of the first True of ``mask``; None if there is none."""
    arr = np.asarray(mask, dtype=bool)
    if not arr.any():
        return None
    return int(row_ids[int(np.argmax(arr))])


def _check_nonempty(text: pd.Series, row_ids: np.ndarray, p: Path, what: str, column: str) -> pd.Series:
    """Strip ``text``; raise on the first missing or blank value (also one of control or
    invisible characters only: :func:`blank_texts`)."""
    stripped = text.str.strip()
    blank = blank_texts(stripped)
    row = first_bad(blank, row_ids)
    if row is not None:
        value = stripped.iloc[int(np.argmax(blank))]
        what_it_is = (f"empty {what}" if value is None or value != value or value == ""
                      else f"{what} of control or invisible characters only ({value!r})")
        raise GraphrelInputError(f"{what_it_is} (column {column!r})", path=p, row=row,
                                 fix=f"fill in the {what} or drop the row")
    return stripped


def numeric_labels(values: pd.Series, row_ids: np.ndarray, p: Path, column: str) -> pd.Series:
    """Labels as float64; blank/NaN stays NaN (unlabelled); text that is not a number raises."""
    if pd.api.types.is_bool_dtype(values.dtype) or pd.api.types.is_numeric_dtype(values.dtype):
        return values.astype(np.float64)
    text = as_text(values).str.strip()
    num = pd.to_numeric(text, errors="coerce")
    bad = num.isna() & text.notna() & (text != "") & ~text.str.lower().isin(["nan", "na", "null", "none"])
    row = first_bad(bad, row_ids)
    if row is not None:
        value = text[np.asarray(bad, dtype=bool)].iloc[0]
        raise GraphrelInputError(f"label {value!r} in column {column!r} is not a number", path=p,
                                 row=row, fix="make every label a number, or leave it blank if unknown")
    return num.astype(np.float64)


def check_scale(label_min: Any, label_max: Any, p: Path) -> tuple[float, float]:
    """``(label_min, label_max)`` as floats: finite, ``label_min < label_max``."""
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


def _check_range(relevance: pd.Series, row_ids: np.ndarray, p: Path, label_col: str | None,
                 label_min: float, label_max: float) -> pd.Series:
    rel = relevance.astype(np.float64)
    out = rel.notna() & ((rel < label_min) | (rel > label_max))
    row = first_bad(out, row_ids)
    if row is not None:
        value = rel[np.asarray(out, dtype=bool)].iloc[0]
        raise GraphrelInputError(
            f"label {value:g} in column {label_col!r} is outside [{label_min:g}, {label_max:g}]",
            path=p, row=row,
            fix="correct the label, or pass the real scale with --label-min/--label-max "
                "(config keys label_min, label_max)")
    return rel


def build_pairs(p: Path, row_ids: np.ndarray, *, query: pd.Series, query_col: str,
                product_id: pd.Series, product_id_col: str, product_text: pd.Series,
                product_text_col: str, relevance: pd.Series | None, label_col: str | None,
                label_min: float, label_max: float, query_id: pd.Series | None = None,
                query_id_col: str | None = None) -> RelevancePairs:
    """Validate the mapped columns of one table or chunk and assemble a
    :class:`RelevancePairs` (duplicates kept: see :func:`drop_duplicates`).

    Raises:
        GraphrelInputError: the first empty query text, query id, product id or product
            text (checked in that order), or a label outside ``[label_min, label_max]``.
    """
    q = _check_nonempty(as_text(query), row_ids, p, "query text", query_col)
    if query_id is None:
        qid = q
    else:
        qid = _check_nonempty(as_text(query_id), row_ids, p, "query id", query_id_col or "query_id")
    pid = _check_nonempty(as_text(product_id), row_ids, p, "product id", product_id_col)
    ptext = _check_nonempty(as_text(product_text), row_ids, p, "product text", product_text_col)

    if relevance is None:
        rel = pd.Series(np.nan, index=q.index, dtype=np.float64)
    else:
        rel = _check_range(relevance, row_ids, p, label_col, label_min, label_max)
    label = (rel - label_min) / (label_max - label_min)

    frame = pd.DataFrame({
        "row_id": pd.Series(row_ids, index=q.index, dtype=np.int64),
        "query_id": qid, "query": q, "product_id": pid, "product_text": ptext,
        "relevance": rel, "label": label.astype(np.float64),
    })[PAIR_COLUMNS]
    return RelevancePairs(frame.reset_index(drop=True), label_min=float(label_min),
                          label_max=float(label_max), source=str(p))


def drop_duplicates(pairs: RelevancePairs, keep_duplicates: bool) -> RelevancePairs:
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
