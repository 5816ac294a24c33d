"""Pairs by dataset kind: :func:`load_dataset` (the whole file) and :func:`iter_pairs` (chunks).

``kind`` names a source of :mod:`graphrel.data.sources`: ``home_depot``, ``esci`` or
``generic``. Both go through the same source and reader, so a chunk is validated with the
same rules and messages as the whole file, and its errors name the true row.

Example:
    >>> pairs = load_dataset("home_depot", "data/home-depot/train.csv.zip")  # doctest: +SKIP
    >>> for chunk in iter_pairs("generic", "pairs.parquet", chunk_size=100_000):  # doctest: +SKIP
    ...     score(chunk)
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Iterator

import numpy as np

from graphrel.data.files import PathLike
from graphrel.data.schema import RelevancePairs
from graphrel.data.sources import (Source, esci_source, generic_source, home_depot_source, load_esci,
                                   load_home_depot, load_pairs)
from graphrel.errors import GraphrelInputError

__all__ = ["DATASET_KINDS", "load_dataset", "iter_pairs", "kind_options"]

DATASET_KINDS: tuple[str, ...] = ("home_depot", "esci", "generic")
"""The ``kind`` values :func:`load_dataset` accepts."""


_LOADERS: dict[str, Callable[..., RelevancePairs]] = {
    "home_depot": load_home_depot,
    "esci": load_esci,
    "generic": load_pairs,
}
_SOURCES: dict[str, Callable[..., Source]] = {
    "home_depot": home_depot_source,
    "esci": esci_source,
    "generic": generic_source,
}


def _kind_key(kind: str, path: PathLike) -> str:
    key = str(kind).strip().lower().replace("-", "_")
    if key not in _LOADERS:
        raise GraphrelInputError(f"unknown dataset kind {kind!r}", path=path,
                                 fix=f"use one of {', '.join(DATASET_KINDS)}")
    return key


def kind_options(kind: str) -> tuple[str, ...]:
    """The reading options a dataset kind's loader takes (e.g. ``("encoding",)`` for
    ``home_depot``; the column options, label scale, encoding and file format for ``generic``).

    Raises:
        GraphrelInputError: unknown ``kind``.
    """
    key = kind.replace("-", "_")
    if key not in _SOURCES:
        raise GraphrelInputError(f"unknown dataset kind {kind!r}", fix=f"choose one of {', '.join(_SOURCES)}")
    return tuple(n for n in inspect.signature(_SOURCES[key]).parameters if n != "path")


def _check_options(function: Callable, kind: str, path: PathLike, options: dict) -> None:
    valid = [n for n in inspect.signature(function).parameters if n != "path"]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise GraphrelInputError(
            f"option(s) {', '.join(unknown)} not known for dataset kind {_kind_key(kind, path)!r}",
            path=path, fix=f"use only {', '.join(valid)}")


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
