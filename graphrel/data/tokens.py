"""Fast wordpiece ids for students: a cache around the teacher's tokenizer.

Students read a pair's text through the teacher's wordpiece vocabulary. The Hugging Face
tokenizer call costs more than the whole student forward pass (measured here: 15k
pairs/s for the tokenizer alone). BERT's tokenizer splits text on white space before
anything else, so :class:`WordpieceCache` splits on white space (``str.split``, C speed),
asks the real tokenizer once per distinct white-space token (``12-gauge``, ``in.``: a
product catalogue repeats them endlessly) and keeps the answer; the ids are the
tokenizer's own.
"""

from __future__ import annotations

import itertools
import re
from typing import Sequence

import numpy as np

# Marks the end of each text in the joined string (private use: no tokenizer meaning).
_END = "\ue000"
# Control characters (C0 except tab/newline/CR, DEL, C1) are deleted, as BERT's tokenizer does.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


class WordpieceCache:
    """Wordpiece ids of texts, identical to the tokenizer's for ordinary text.

    Args:
        tokenizer: a Hugging Face (uncased WordPiece) tokenizer.
        pad_id: id used for padding (0 = ``[PAD]`` in BERT vocabularies).
    """

    def __init__(self, tokenizer, pad_id: int | None = None) -> None:
        self.tokenizer = tokenizer
        self.pad_id = tokenizer.pad_token_id if pad_id is None else pad_id
        self._cache: dict[str, tuple[int, ...]] = {}

    def encode(self, texts: Sequence[str], max_length: int) -> np.ndarray:
        """Wordpiece ids without special tokens, truncated and right-padded.

        Args:
            texts: N strings.
            max_length: L, tokens kept per text.

        Returns:
            (N, L) int64 array; padding is ``pad_id``.
        """
        out = np.full((len(texts), max_length), self.pad_id, dtype=np.int64)
        if not len(texts):
            return out
        # One split over all texts; a private-use token marks where each text ends.
        separator = f" {_END} "
        joined = separator.join(texts) + separator
        if joined.count(_END) != len(texts):  # a text holds the marker itself: blank it out
            joined = separator.join(t.replace(_END, " ") for t in texts) + separator
        if _CONTROL.search(joined):
            joined = _CONTROL.sub("", joined)
        words = joined.split()
        cache = self._cache
        cache[_END] = ()
        try:
            pieces = [cache[w] for w in words]
        except KeyError:  # tokens never seen: ask the tokenizer once for all of them
            unseen = sorted({w for w in words if w not in cache})
            ids = self.tokenizer(unseen, add_special_tokens=False)["input_ids"]  # lower-cases itself
            cache.update(zip(unseen, map(tuple, ids)))
            pieces = [cache[w] for w in words]
        piece_lengths = np.fromiter(map(len, pieces), dtype=np.int64, count=len(pieces))
        is_end = np.fromiter((w == _END for w in words), dtype=bool, count=len(words))
        row_of_word = np.cumsum(is_end) - is_end  # text index of each word
        row = np.repeat(row_of_word, piece_lengths)
        flat = np.fromiter(itertools.chain.from_iterable(pieces), dtype=np.int64, count=int(piece_lengths.sum()))
        # position of each wordpiece within its text: index minus the text's first index
        text_start = np.searchsorted(row, np.arange(len(texts)))
        column = np.arange(len(flat)) - text_start[row]
        keep = column < max_length
        out[row[keep], column[keep]] = flat[keep]
        return out
