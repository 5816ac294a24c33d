"""Synthetic queries cut from product titles: for EmbedDistill's embedding-matching terms and the transfer set.

EmbedDistill (Kim et al., arXiv 2301.12005, Sec. 4.3) adds unlabelled synthetic queries to the
query embedding matching term: the student learns the teacher's query geometry on far more
queries than the labelled ones. The paper generates them with a seq2seq model; this is a
cheap reconstruction (not in the paper): word spans of product titles, which is what
e-commerce queries mostly are (brand + product type, "fence gate", "chicago faucets 2
handle").

A title is HTML-unescaped, lower-cased and split on white space; punctuation around a word is
stripped (inside a word it stays: ``1/2``, ``3-pack``, ``cu.``). Two kinds of query are drawn:

- **prefix**: the title's first n words (brand and model line, "lg electronics 4.3 cu.");
- **span**: n consecutive words from anywhere in the title ("front load washer").

n is uniform in ``[min_words, max_words]`` (clamped to the title's length). A query must hold a
word with two letters or more, must not begin or end with a connecting word ("with", "in",
"and", "x", ...) and must not begin with a unit ("in.", "ft."). Queries are deduplicated over
the whole output (first occurrence kept): a title whose draws all repeat earlier queries gives
fewer than ``per_product`` queries.
"""

from __future__ import annotations

import html
import re

import numpy as np

#: Words a query may not begin or end with (connectors and unit glue of product titles).
EDGE_WORDS = frozenset({"a", "an", "and", "or", "the", "with", "without", "for", "of", "in", "on", "to", "by",
                        "x", "-", "&", "+", "/", "w/", "per", "from", "at", "into", "includes", "is"})
#: Units a query may not begin with ("in. adjustable wrench" is the tail of a size).
UNIT_WORDS = frozenset({"in.", "ft.", "cu.", "sq.", "lb.", "lbs.", "oz.", "gal.", "qt.", "pt.", "yd.", "mm", "cm",
                        "w", "h", "d", "l"})

_STRIP = "\"'()[]{},;:!?*|"
_LETTERS = re.compile(r"[^\W\d_]{2}")


def title_words(text: str) -> list[str]:
    """The words of a product title: HTML-unescaped, lower-cased, outer punctuation stripped.

    Example: ``"Steves &amp; Sons 48 in. (Primed)"`` -> ``["steves", "&", "sons", "48", "in.", "primed"]``.
    """
    words = (w.strip(_STRIP) for w in html.unescape(str(text)).lower().split())
    return [w for w in words if w]


def _acceptable(words: list[str]) -> bool:
    return (words[0] not in EDGE_WORDS and words[0] not in UNIT_WORDS and words[-1] not in EDGE_WORDS
            and any(_LETTERS.search(w) for w in words))


def generate_queries(product_texts, *, per_product: int = 1, min_words: int = 1, max_words: int = 4,
                     prefix_share: float = 0.3, seed: int = 0, attempts: int = 8) -> list[str]:
    """Synthetic queries (word prefixes and spans) of product titles, deduplicated.

    Args:
        product_texts: N product titles (strings; empty ones give nothing).
        per_product: queries wanted per title, >= 1.
        min_words, max_words: query length in words, 1 <= min_words <= max_words.
        prefix_share: probability a draw is a prefix rather than a span, in [0, 1].
        seed: random seed; the same inputs and seed give the same list.
        attempts: draws per wanted query before a title gives up (duplicates and rejected
            spans use draws), >= 1.

    Returns:
        At most ``N * per_product`` distinct queries (lower-case strings of
        ``min_words``..``max_words`` words), in title order.

    Raises:
        ValueError: an option out of range.
    """
    for name, value, low in (("per_product", per_product, 1), ("min_words", min_words, 1),
                             ("max_words", max_words, min_words), ("attempts", attempts, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be a whole number >= {low}, got {value!r}")
    if isinstance(prefix_share, bool) or not 0.0 <= float(prefix_share) <= 1.0:
        raise ValueError(f"prefix_share must be between 0 and 1, got {prefix_share!r}")
    if isinstance(product_texts, str):
        raise ValueError("product_texts must be a sequence of titles, not one string")
    rng = np.random.default_rng(seed)
    seen: set[str] = set()
    queries: list[str] = []
    for text in product_texts:
        words = title_words(text)
        if len(words) < min_words:
            continue
        made = 0
        # one batch of draws per title: (kind, length, start) uniform numbers, cheap in numpy
        draws = rng.random((per_product * attempts, 3))
        for prefix_draw, length_draw, start_draw in draws:
            high = min(max_words, len(words))
            length = min_words + int(length_draw * (high - min_words + 1))
            start = 0 if prefix_draw < prefix_share else int(start_draw * (len(words) - length + 1))
            span = words[start:start + length]
            if not _acceptable(span):
                continue
            query = " ".join(span)
            if query in seen:
                continue
            seen.add(query)
            queries.append(query)
            made += 1
            if made == per_product:
                break
    return queries
