"""Text keys: one string per text that reads the same to a person, for de-duplication; and
blank texts (:func:`blank_texts`), which say nothing to a person and are refused as input.

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

import re
import unicodedata

import numpy as np
import pandas as pd

__all__ = ["text_keys", "pair_keys", "blank_texts", "is_blank", "INVISIBLE"]


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


#: White space, control characters (C0, DEL, C1) and invisible format characters (soft
#: hyphen, zero-width spaces and joiners, direction marks, word joiner, byte-order mark):
#: a text made only of these says nothing, and is refused like an empty one.
INVISIBLE = r"[\s\x00-\x1f\x7f-\x9f\u00ad\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]"


def blank_texts(text: pd.Series) -> np.ndarray:
    """(N,) bool: values missing, or empty once white space and control / invisible format
    characters (:data:`INVISIBLE`) are removed."""
    visible = text.str.replace(INVISIBLE, "", regex=True)
    return (visible.isna() | (visible == "")).to_numpy(dtype=bool)


def is_blank(text: str) -> bool:
    """Whether one text is empty once white space and control / invisible format characters
    are removed (:data:`INVISIBLE`)."""
    return re.sub(INVISIBLE, "", text) == ""
