"""Where pairs come from: the Home Depot, ESCI and generic sources, and their loaders.

Every loader returns a :class:`~graphrel.data.schema.RelevancePairs`, one validated table
with the columns of :data:`~graphrel.data.schema.PAIR_COLUMNS`. Every problem with the
input file raises :class:`~graphrel.errors.GraphrelInputError` naming the file, the 1-based
data row (header excluded) and the fix.

Supported sources:

- ``home_depot``: the Kaggle "Home Depot Product Search Relevance" ``train.csv`` (zipped or
  not, latin-1), labels 1..3 (:func:`load_home_depot`).
- ``esci``: the Amazon "Shopping Queries Dataset" (ESCI) examples merged with its products
  table, labels E/S/C/I mapped to gains (:func:`load_esci`).
- ``generic``: any CSV / Parquet / JSONL file with a column mapping (:func:`load_pairs`).

A :class:`Source` is how one loader reads a file: where it is, its format, the columns it
reads and how it maps one raw table into pairs. The loaders read the whole file as one
chunk; :func:`graphrel.data.datasets.iter_pairs` reads any kind in chunks of a given size.
Both go through the same source and the same reader
(:func:`graphrel.data.readers.read_chunks`), so they apply the same rules with the same
messages, and a chunk's errors name the true row.

Example:
    >>> pairs = load_home_depot("data/home-depot/train.csv.zip")  # doctest: +SKIP
    >>> pairs.label_min, pairs.label_max  # doctest: +SKIP
    (1.0, 3.0)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd

from graphrel.data.files import PathLike, check_path, resolve_format
from graphrel.data.readers import read_chunks
from graphrel.data.schema import (STR, Column, RelevancePairs, all_blank, as_text, build_pairs, check_scale,
                                  drop_duplicates, first_bad, merge_columns, numeric_labels, require_column)
from graphrel.errors import GraphrelInputError

__all__ = ["ESCI_GAINS", "Source", "home_depot_source", "esci_source", "generic_source",
           "load_home_depot", "load_esci", "load_pairs"]

ESCI_GAINS: dict[str, float] = {"E": 1.0, "S": 0.1, "C": 0.01, "I": 0.0}
"""Gain of each ESCI label (Exact, Substitute, Complement, Irrelevant), as used for NDCG
in the ESCI paper (Reddy et al., 2022, "Shopping Queries Dataset")."""

_ESCI_NAMES = {"EXACT": "E", "SUBSTITUTE": "S", "COMPLEMENT": "C", "IRRELEVANT": "I"}

@dataclass
class Source:
    """How one loader reads one file: the file, the columns read and the raw-table mapping."""

    p: Path
    fmt: str
    compression: str | None
    encoding: str
    columns: list[Column]  # the columns read (the rest of the file is never converted)
    to_pairs: Callable[[pd.DataFrame, np.ndarray], RelevancePairs]  # raw table + row ids -> pairs
    finish: Callable[[int], None] = lambda n_pairs: None  # checks once the whole file is read

    def chunks(self, chunk_size: int | None) -> Iterator[RelevancePairs]:
        """The pairs of each chunk of ``chunk_size`` rows, in file order (None: one chunk)."""
        n_pairs = 0
        for raw, row_ids in read_chunks(self.p, self.fmt, self.compression, self.encoding, self.columns,
                                        chunk_size):
            pairs = self.to_pairs(raw, row_ids)
            n_pairs += len(pairs)
            yield pairs
        self.finish(n_pairs)

    def load(self, keep_duplicates: bool) -> RelevancePairs:
        """The whole file: the chunked reader with a single chunk holding every row, so each
        check covers the whole file before the next (see :mod:`graphrel.data.readers`)."""
        (pairs,) = self.chunks(chunk_size=None)
        return drop_duplicates(pairs, keep_duplicates)


_HD_FIX = ("this loader expects the Kaggle Home Depot train.csv (columns id, product_uid, "
           "product_title, search_term, relevance); for other files use kind 'generic' "
           "with the column options (see data/README.md)")


def home_depot_source(path: PathLike, *, encoding: str = "latin-1") -> Source:
    p = check_path(path)
    fmt, compression = resolve_format(p, None)
    if fmt != "csv":
        raise GraphrelInputError(f"expected a CSV or zipped CSV, got a {fmt} file", path=p, fix=_HD_FIX)

    def to_pairs(raw: pd.DataFrame, row_ids: np.ndarray) -> RelevancePairs:
        query = require_column(raw, "search_term", p, _HD_FIX)
        pid = require_column(raw, "product_uid", p, _HD_FIX)
        ptext = require_column(raw, "product_title", p, _HD_FIX)
        relevance = None
        if "relevance" in raw.columns:
            relevance = numeric_labels(raw["relevance"], row_ids, p, "relevance")
        return build_pairs(p, row_ids, query=query, query_col="search_term", product_id=pid,
                           product_id_col="product_uid", product_text=ptext, product_text_col="product_title",
                           relevance=relevance, label_col="relevance", label_min=1.0, label_max=3.0)

    columns = [Column("search_term", _HD_FIX, text=True), Column("product_uid", _HD_FIX),
               Column("product_title", _HD_FIX, text=True), Column("relevance", required=False)]
    return Source(p, "csv", compression, encoding, columns, to_pairs)


_ESCI_FIX = ("the ESCI loader expects columns query, product_id, product_title, esci_label "
             "(query_id, product_locale optional): merge shopping_queries_dataset_products into "
             "shopping_queries_dataset_examples first (see data/README.md), or use kind 'generic'")
_LOCALE_FIX = "drop the locale option, or load the examples file that has it"


def _esci_gains(labels: pd.Series, row_ids: np.ndarray, p: Path) -> pd.Series:
    """ESCI labels (codes or full names, any case) as gains; blank -> NaN (unlabelled)."""
    codes = as_text(labels).str.strip().str.upper()
    codes = codes.map(lambda c: _ESCI_NAMES.get(c, c) if isinstance(c, str) else c).astype(STR)
    blank = codes.isna() | (codes == "")
    bad = ~blank & ~codes.isin(list(ESCI_GAINS))
    row = first_bad(bad, row_ids)
    if row is not None:
        value = labels[np.asarray(bad, dtype=bool)].iloc[0]
        raise GraphrelInputError(f"unknown esci_label {value!r}", path=p, row=row,
                                 fix="use one of E, S, C, I (or leave it blank if unknown)")
    return codes.map(ESCI_GAINS).astype(np.float64)


def esci_source(path: PathLike, locale: str | None = None, *, encoding: str = "utf-8",
                 file_format: str | None = None) -> Source:
    p = check_path(path)
    fmt, compression = resolve_format(p, file_format)
    locales_found: set[str] = set()

    def to_pairs(raw: pd.DataFrame, row_ids: np.ndarray) -> RelevancePairs:
        for col in ("query", "product_id", "product_title", "esci_label"):
            require_column(raw, col, p, _ESCI_FIX)
        if locale is not None:
            loc = as_text(require_column(raw, "product_locale", p, _LOCALE_FIX)).str.strip().str.lower()
            locales_found.update(loc.dropna().unique())
            keep = np.asarray(loc == str(locale).strip().lower(), dtype=bool)
            raw, row_ids = raw.loc[keep].reset_index(drop=True), row_ids[keep]
        gains = _esci_gains(raw["esci_label"], row_ids, p)
        query_id = raw["query_id"] if "query_id" in raw.columns else None
        if query_id is not None and all_blank(query_id):  # an empty column counts as absent
            query_id = None
        return build_pairs(p, row_ids, query=raw["query"], query_col="query", query_id=query_id,
                           query_id_col="query_id", product_id=raw["product_id"], product_id_col="product_id",
                           product_text=raw["product_title"], product_text_col="product_title",
                           relevance=gains, label_col="esci_label", label_min=0.0, label_max=1.0)

    def finish(n_pairs: int) -> None:
        if locale is not None and n_pairs == 0:
            found = ", ".join(sorted(locales_found)) or "none"
            raise GraphrelInputError(f"no rows with product_locale {locale!r}; locales found: {found}",
                                     path=p, fix="pass one of the locales found, or no locale")

    columns = [Column("query", _ESCI_FIX, text=True), Column("product_id", _ESCI_FIX),
               Column("product_title", _ESCI_FIX, text=True), Column("esci_label", _ESCI_FIX),
               Column("query_id", required=False)]
    if locale is not None:
        columns.append(Column("product_locale", _LOCALE_FIX))
    return Source(p, fmt, compression, encoding, columns, to_pairs, finish)


def _option(key: str) -> str:
    return f"--{key.replace('_', '-')} (config key {key})"


def _column_fix(option: str) -> str:
    return f"pass --{option.replace('_', '-')} NAME (config key {option}) naming the right column"


def _check_unit_labels(relevance: pd.Series, label_column: str | None, p: Path) -> None:
    """Labels without a given scale must lie within [0, 1] (then the scale is 0..1)."""
    known = relevance.dropna()
    if len(known) and (known.min() < 0.0 or known.max() > 1.0):
        raise GraphrelInputError(
            f"labels in column {label_column!r} range from {known.min():g} to "
            f"{known.max():g}, outside [0, 1], and no label scale was given", path=p,
            fix="pass --label-min and --label-max with the label scale (config keys "
                "label_min, label_max), e.g. 1 and 3")


def generic_source(path: PathLike, *, query_column: str = "query", product_id_column: str = "product_id",
                    product_text_column: str = "product_text", label_column: str | None = None,
                    query_id_column: str | None = None, label_min: float | None = None,
                    label_max: float | None = None, encoding: str = "utf-8",
                    file_format: str | None = None) -> Source:
    p = check_path(path)
    fmt, compression = resolve_format(p, file_format)

    def to_pairs(raw: pd.DataFrame, row_ids: np.ndarray) -> RelevancePairs:
        query = require_column(raw, query_column, p, _column_fix("query_column"))
        pid = require_column(raw, product_id_column, p, _column_fix("product_id_column"))
        ptext = require_column(raw, product_text_column, p, _column_fix("product_text_column"))
        qid = None
        if query_id_column is not None:
            qid = require_column(raw, query_id_column, p, _column_fix("query_id_column"))
        if (label_min is None) != (label_max is None):
            raise GraphrelInputError("only one of label_min / label_max given", path=p,
                                     fix="pass both --label-min and --label-max (config keys "
                                         "label_min, label_max)")
        relevance = None
        if label_column is not None:
            labels = require_column(raw, label_column, p, _column_fix("label_column"))
            relevance = numeric_labels(labels, row_ids, p, label_column)
            if label_min is None:
                _check_unit_labels(relevance, label_column, p)
        lo, hi = check_scale(0.0 if label_min is None else label_min, 1.0 if label_max is None else label_max, p)
        return build_pairs(p, row_ids, query=query, query_col=query_column, query_id=qid,
                           query_id_col=query_id_column, product_id=pid, product_id_col=product_id_column,
                           product_text=ptext, product_text_col=product_text_column, relevance=relevance,
                           label_col=label_column, label_min=lo, label_max=hi)

    columns = [Column(query_column, _column_fix("query_column"), text=True, option=_option("query_column")),
               Column(product_id_column, _column_fix("product_id_column")),
               Column(product_text_column, _column_fix("product_text_column"), text=True,
                      option=_option("product_text_column"))]
    if query_id_column is not None:
        columns.append(Column(query_id_column, _column_fix("query_id_column")))
    if label_column is not None:
        columns.append(Column(label_column, _column_fix("label_column")))
    return Source(p, fmt, compression, encoding, merge_columns(columns), to_pairs)


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
    return home_depot_source(path, encoding=encoding).load(keep_duplicates)


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
    return esci_source(path, locale, encoding=encoding, file_format=file_format).load(keep_duplicates)


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
    return generic_source(
        path, query_column=query_column, product_id_column=product_id_column,
        product_text_column=product_text_column, label_column=label_column,
        query_id_column=query_id_column, label_min=label_min, label_max=label_max, encoding=encoding,
        file_format=file_format).load(keep_duplicates)
