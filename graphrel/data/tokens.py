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

import dataclasses
import itertools
import re
import weakref
from typing import Sequence

import numpy as np

# Marks the end of each text in the joined string (private use: no tokenizer meaning).
_END = "\ue000"
# Per Hugging Face tokenizer: its Rust tokenizer without the padding and truncation its saved
# settings carry (they are set per call by the Python wrapper), and its _BertShortcuts.
_WORD_TOKENIZERS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
# Control characters (C0 except tab/newline/CR, DEL, C1) are deleted, as BERT's tokenizer does.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


@dataclasses.dataclass(frozen=True)
class _BertShortcuts:
    """What BERT's tokenizer does to ASCII words, without asking it for every word.

    For BERT's tokenizer (``BertNormalizer``, ``BertPreTokenizer``, ``WordPiece``) the normaliser
    only lower-cases an ASCII word without control characters (``encode`` deletes those first),
    and WordPiece's greedy longest match takes an ASCII word of letters and digits found whole
    in the vocabulary as one piece. So such a word's id is a dict look-up (``whole_words``: those
    entries -> id) and the other ASCII words go, lower-cased, to a copy of the tokenizer without
    its normaliser (``ascii_tokenizer``). Measured on the ~700 distinct words of 100 cold Home
    Depot titles (one online request): 61% are whole words; the Rust call for all the words took
    2.1 ms, the look-ups 0.1 ms and the call without normaliser for the rest 0.7 ms (1.0 ms with it).
    Added tokens are matched before normalising (``[CLS]``, not ``[cls]``), so a word holding one,
    in any case, is asked of the tokenizer itself.
    """

    whole_words: dict
    lowercase: bool
    ascii_tokenizer: object
    added: tuple  # added tokens (``[CLS]``...), lower-cased: a word holding one is asked as it is


def _word_tokenizer(tokenizer, backend):
    """The Rust tokenizer without padding and truncation, and its :class:`_BertShortcuts` (None
    unless it is BERT's tokenizer)."""
    cached = _WORD_TOKENIZERS.get(tokenizer)
    if cached is not None:
        return cached
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    word_tokenizer = Tokenizer.from_str(backend.to_str())
    word_tokenizer.no_padding()
    word_tokenizer.no_truncation()
    shortcuts = None
    if (isinstance(word_tokenizer.normalizer, normalizers.BertNormalizer)
            and isinstance(word_tokenizer.pre_tokenizer, pre_tokenizers.BertPreTokenizer)
            and isinstance(word_tokenizer.model, models.WordPiece)):
        lowercase = bool(word_tokenizer.normalizer.lowercase)
        whole_words = {word: index for word, index in word_tokenizer.get_vocab(with_added_tokens=False).items()
                       if word.isascii() and word.isalnum() and (word == word.lower() or not lowercase)}
        ascii_tokenizer = Tokenizer.from_str(word_tokenizer.to_str())
        ascii_tokenizer.normalizer = None
        added = tuple(token.content.lower() for token in word_tokenizer.get_added_tokens_decoder().values())
        shortcuts = _BertShortcuts(whole_words, lowercase, ascii_tokenizer, added)
    _WORD_TOKENIZERS[tokenizer] = (word_tokenizer, shortcuts)
    return word_tokenizer, shortcuts


class WordpieceCache:
    """Wordpiece ids of texts, identical to the tokenizer's for ordinary text.

    Args:
        tokenizer: a Hugging Face (uncased WordPiece) tokenizer.
        pad_id: id used for padding (0 = ``[PAD]`` in BERT vocabularies).
    """

    def __init__(self, tokenizer, pad_id: int | None = None) -> None:
        self.tokenizer = tokenizer
        self.pad_id = tokenizer.pad_token_id if pad_id is None else pad_id
        # white-space token -> word index; word w's wordpieces are
        # _pieces[_piece_start[w] : _piece_start[w] + _piece_length[w]]. Word 0 is the end marker.
        self._cache: dict[str, int] = {_END: 0}
        self._piece_start = np.zeros(1, dtype=np.int64)
        self._piece_length = np.zeros(1, dtype=np.int64)
        self._pieces = np.zeros(0, dtype=np.int64)

    def _word_pieces(self, words: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """The tokenizer's wordpiece ids of each word, no special tokens (it lower-cases itself):
        ``(lengths, pieces)``, (W,) pieces per word and all pieces concatenated in word order.

        The Rust tokenizer is asked directly, once for all the words joined by spaces, and each
        piece goes to the word its character offset falls in: the Python wrapper's per-call work
        cost 5x the tokenising itself on a cold batch of 8,928 words (0.27 s against 0.05 s), and
        one ``Encoding`` per word (``encode_batch``) 2.5x one for all (5.1 ms against 2.1 ms for
        the 668 words of 100 titles; the same ids for 16,910 real title words). For BERT's
        tokenizer, ASCII words take :class:`_BertShortcuts`.
        """
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        if backend is None:  # a slow (Python) tokenizer: no Rust tokenizer to ask
            ids = self.tokenizer(words, add_special_tokens=False)["input_ids"]
            lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
            return lengths, np.fromiter(itertools.chain.from_iterable(ids), dtype=np.int64, count=int(lengths.sum()))
        word_tokenizer, shortcuts = _word_tokenizer(self.tokenizer, backend)
        if shortcuts is None:
            return self._rust_pieces(word_tokenizer, words)
        joined = " ".join(words)
        lowered = joined.lower() if shortcuts.lowercase else joined
        keys = lowered.split(" ")  # words hold no space, and lower-casing makes none
        if joined.isascii():
            is_ascii = np.ones(len(words), dtype=bool)
        else:
            is_ascii = np.fromiter(map(str.isascii, words), dtype=bool, count=len(words))
        holding_added = [token for token in shortcuts.added if token in lowered]
        if holding_added:
            is_ascii &= np.fromiter((not any(token in key for token in holding_added) for key in keys), dtype=bool,
                                    count=len(words))
        direct = np.fromiter(map(shortcuts.whole_words.get, keys, itertools.repeat(-1)), dtype=np.int64,
                             count=len(words))
        direct[~is_ascii] = -1
        lengths = np.ones(len(words), dtype=np.int64)
        asked = []  # (word indices, their lengths, their pieces) of each tokenizer call
        for select, tokenizer, texts in (((direct < 0) & is_ascii, shortcuts.ascii_tokenizer, keys),
                                         (~is_ascii, word_tokenizer, words)):
            indices = np.flatnonzero(select)
            if len(indices):
                asked.append((indices, *self._rust_pieces(tokenizer, [texts[i] for i in indices])))
                lengths[indices] = asked[-1][1]
        starts = np.cumsum(lengths) - lengths
        pieces = np.empty(int(lengths.sum()), dtype=np.int64)
        known = direct >= 0
        pieces[starts[known]] = direct[known]
        for indices, asked_lengths, asked_pieces in asked:
            within = np.arange(len(asked_pieces)) - np.repeat(np.cumsum(asked_lengths) - asked_lengths, asked_lengths)
            pieces[np.repeat(starts[indices], asked_lengths) + within] = asked_pieces
        return lengths, pieces

    @staticmethod
    def _rust_pieces(word_tokenizer, words: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(lengths, pieces)`` of words from one call of the Rust tokenizer (see _word_pieces)."""
        # words hold no white space (they come from str.split), so the tokenizer's pre-tokenizer
        # never merges two of them; offsets are into the joined string, whatever the normaliser did
        characters = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
        starts = np.cumsum(characters + 1) - characters - 1
        encoding = word_tokenizer.encode(" ".join(words), add_special_tokens=False)
        pieces = np.asarray(encoding.ids, dtype=np.int64)
        piece_starts = np.fromiter((start for start, _ in encoding.offsets), dtype=np.int64, count=len(pieces))
        owner = np.searchsorted(starts, piece_starts, side="right") - 1
        return np.bincount(owner, minlength=len(words)).astype(np.int64), pieces

    def _add_words(self, words: list[str]) -> None:
        """Ask the tokenizer once for every new white-space token and append its pieces."""
        lengths, flat = self._word_pieces(words)
        starts = len(self._pieces) + np.cumsum(lengths) - lengths
        first = len(self._piece_start)
        self._cache.update(zip(words, range(first, first + len(words))))
        self._piece_start = np.concatenate([self._piece_start, starts])
        self._piece_length = np.concatenate([self._piece_length, lengths])
        self._pieces = np.concatenate([self._pieces, flat])

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
        try:
            word_index = np.fromiter(map(cache.__getitem__, words), dtype=np.int64, count=len(words))
        except KeyError:  # tokens never seen: ask the tokenizer once for all of them
            self._add_words(sorted({w for w in words if w not in cache}))
            word_index = np.fromiter(map(cache.__getitem__, words), dtype=np.int64, count=len(words))
        # Everything below is array arithmetic on word indices (no per-word Python work).
        is_end = word_index == 0
        row_of_word = np.cumsum(is_end) - is_end  # text index of each word
        piece_lengths = self._piece_length[word_index]
        total = int(piece_lengths.sum())
        row = np.repeat(row_of_word, piece_lengths)
        word_offset = np.cumsum(piece_lengths) - piece_lengths  # first output slot of each word
        within_word = np.arange(total) - np.repeat(word_offset, piece_lengths)
        flat = self._pieces[np.repeat(self._piece_start[word_index], piece_lengths) + within_word]
        # position of each wordpiece within its text: index minus the text's first index
        text_start = np.searchsorted(row, np.arange(len(texts)))
        column = np.arange(total) - text_start[row]
        keep = column < max_length
        out[row[keep], column[keep]] = flat[keep]
        return out
