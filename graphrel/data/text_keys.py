"""Text keys: one string per text that reads the same to a person, for de-duplication.

Two rows whose texts differ only in Unicode compatibility forms, case or white space are the
same query or the same product title to a searcher and to the teacher. Ids do not show it: a
log may hold one title under two product ids, or one query under two spellings of its case.
Honest evaluation compares these keys, not ids: the split keeps every key of a query in one
split, and no evaluated pair's (query key, title key) may be an edge of a graph a student
reads (:func:`graphrel.pipeline.protocols.protocol_edges`).

Example:
    >>> text_keys(pd.Series(["Angle  Bracket", "ｱ angle bracket", "angle bracket "])).tolist()
    ['angle bracket', 'ア angle bracket', 'angle bracket']
"""

from __future__ import annotations

import unicodedata

import numpy as np
import pandas as pd

__all__ = ["text_keys", "pair_keys"]


def text_keys(texts) -> pd.Series:
    """The de-duplication key of each text: Unicode NFKC, case-folded, runs of white space
    made one space, trimmed.

    Args:
        texts: (N,) str (a sequence or Series; a Series keeps its index).

    Returns:
        (N,) str Series of keys.
    """
    series = texts if isinstance(texts, pd.Series) else pd.Series(list(texts), dtype=object)
    unique = pd.unique(series.to_numpy(dtype=object))
    keys = {text: " ".join(unicodedata.normalize("NFKC", str(text)).casefold().split()) for text in unique}
    return pd.Series([keys[text] for text in series.to_numpy(dtype=object)], index=series.index, dtype=object)


def pair_keys(queries, product_texts) -> np.ndarray:
    """(N,) str array: the text identity of pairs, ``query key + "\\x1f" + title key``
    (``str.split`` counts ``\\x1f`` as white space, so no key holds it: the join is unambiguous)."""
    query = text_keys(queries).to_numpy(dtype=object)
    title = text_keys(product_texts).to_numpy(dtype=object)
    return np.asarray([q + "\x1f" + t for q, t in zip(query, title)], dtype=object)
