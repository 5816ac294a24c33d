"""Fast wordpiece ids for students: a word-level cache around the teacher's tokenizer.

Students read a pair's text through the teacher's wordpiece vocabulary. The Hugging Face
tokenizer call costs more than the whole student forward pass (measured here: 15k
pairs/s for the tokenizer alone), so :class:`WordpieceCache` splits text into words the
way BERT's basic tokenizer does (lower case, whitespace, each punctuation character
alone) and asks the real tokenizer once per distinct word; repeated words (most of a
product catalogue) are dictionary look-ups.
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np

# Words of letters/digits, or one punctuation character; '_' is punctuation for BERT.
_WORDS = re.compile(r"[^\W_]+|[^\w\s]|_")
# Control characters (C0 except tab/newline/CR, DEL, C1) are deleted, as BERT's tokenizer does.
_DROP_CONTROL = {c: None for c in [*range(0, 9), 11, 12, *range(14, 32), *range(127, 160)]}


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

    def __getstate__(self):
        return {"tokenizer": self.tokenizer, "pad_id": self.pad_id, "_cache": {}}

    def _words(self, text: str) -> list[str]:
        return _WORDS.findall(text.translate(_DROP_CONTROL).lower())

    def encode(self, texts: Sequence[str], max_length: int) -> np.ndarray:
        """Wordpiece ids without special tokens, truncated and right-padded.

        Args:
            texts: N strings.
            max_length: L, tokens kept per text.

        Returns:
            (N, L) int64 array; padding is ``pad_id``.
        """
        split = [self._words(t) for t in texts]
        unseen = {w for words in split for w in words if w not in self._cache}
        if unseen:
            unseen = sorted(unseen)
            ids = self.tokenizer(unseen, add_special_tokens=False)["input_ids"]
            self._cache.update(zip(unseen, map(tuple, ids)))
        out = np.full((len(texts), max_length), self.pad_id, dtype=np.int64)
        cache = self._cache
        for row, words in enumerate(split):
            ids: list[int] = []
            for word in words:
                ids.extend(cache[word])
                if len(ids) >= max_length:
                    break
            ids = ids[:max_length]
            out[row, : len(ids)] = ids
        return out
