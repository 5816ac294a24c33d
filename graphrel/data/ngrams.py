"""Bags of word n-grams for BERT2DNN students: fast, deterministic ids for ``nn.EmbeddingBag``.

Follows the BERT2DNN authors' public code (Jiang et al., ICDM 2020, arXiv 2010.10442;
``e-commerce-search/bert2dnn``, ``tokenizer.py``) where it is specific: a text is
lower-cased and split on white space; its features are every word (unigram) and every
pair of adjacent words (bigram), the first and last words also paired with boundary
markers (``<s> w1`` ... ``wn </s>``; the authors write ``^`` and ``$s``), in the authors'
interleaved order ``<s> w1, w1, w1 w2, w2, ..., wn </s>``. Reconstruction choices:

- **words**: lower-cased white-space tokens with leading / trailing punctuation stripped
  (``in.`` -> ``in``, ``(2-pack)`` -> ``2-pack``; inner punctuation stays: ``1-1/4``);
  tokens made of punctuation only (``-``, ``&``) are dropped;
- **ids**: a vocabulary of the n-grams seen at least ``min_count`` times in the training
  texts (ids ``0 .. V-1``, most frequent first) plus ``num_buckets`` hashing buckets
  (ids ``V .. V+B-1``) for every other n-gram, so unseen queries still get features (the
  authors' vocabulary column drops unknown n-grams: ``num_oov_buckets=0``);
- **hash**: 64-bit BLAKE2b of the word's UTF-8 bytes (never Python's randomised
  ``hash()``); a bigram's key mixes its two word hashes (splitmix64). Ids are therefore
  the same in every process, on every machine, whatever ``PYTHONHASHSEED`` is.

Speed: like :class:`graphrel.data.tokens.WordpieceCache`, all texts are joined and split
once (``str.split``, C speed); each distinct white-space token is normalised and hashed
once and cached; everything after that is vectorised numpy.
"""

from __future__ import annotations

import hashlib
import json
import string
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

#: Boundary markers: ``<s>`` before a text's first word, ``</s>`` after its last.
BOS, EOS = "<s>", "</s>"
#: File format tag of :meth:`NgramFeaturizer.save`.
FORMAT = "graphrel-ngrams/1"

# Marks the end of each text in the joined string (private use: no meaning in text).
_END = "\ue000"
_PUNCTUATION = string.punctuation
# Codes of the per-featuriser word table: 0 = end of a text, 1 = dropped token.
_END_CODE, _DROP_CODE = 0, 1
_U64 = np.uint64


def word_hash(word: str) -> int:
    """Stable 64-bit hash of a (normalised) word: BLAKE2b, little-endian, as a Python int."""
    digest = hashlib.blake2b(word.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def word_hashes(words: Sequence[str]) -> np.ndarray:
    """:func:`word_hash` of every word as one (W,) uint64 array: the digests joined and read as
    little-endian uint64, without a Python int per word."""
    blake2b = hashlib.blake2b
    digests = b"".join([blake2b(w.encode("utf-8", "surrogatepass"), digest_size=8).digest() for w in words])
    return np.frombuffer(digests, dtype="<u8").astype(_U64)


def _splitmix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on uint64 arrays (wraps modulo 2**64)."""
    x = x ^ (x >> _U64(30))
    x = x * _U64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> _U64(27))
    x = x * _U64(0x94D049BB133111EB)
    return x ^ (x >> _U64(31))


def bigram_keys(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """64-bit keys of bigrams from the hashes of their left and right words (uint64 arrays)."""
    with np.errstate(over="ignore"):
        return _splitmix(left * _U64(0x9E3779B97F4A7C15) + right)


def normalise_word(token: str) -> str:
    """Lower-cased token without leading / trailing punctuation ('' if nothing is left)."""
    return token.lower().strip(_PUNCTUATION)


def ngram_key(ngram: str) -> int:
    """64-bit key of an n-gram string as written in a vocabulary (``"w"`` or ``"a b"``)."""
    parts = ngram.split(" ")
    if len(parts) == 1:
        return word_hash(parts[0])
    if len(parts) != 2:
        raise ValueError(f"not a unigram or bigram: {ngram!r}")
    left = np.array([word_hash(parts[0])], dtype=_U64)
    right = np.array([word_hash(parts[1])], dtype=_U64)
    return int(bigram_keys(left, right)[0])


def text_ngrams(text: str) -> list[str]:
    """Readable n-grams of one text, in feature order (slow reference path; tests, inspection).

    >>> text_ngrams("Angle Bracket (2-pack)")
    ['<s> angle', 'angle', 'angle bracket', 'bracket', 'bracket 2-pack', '2-pack', '2-pack </s>']
    """
    words = [w for w in (normalise_word(t) for t in text.split()) if w]
    if not words:
        return []
    out = []
    for left, word in zip([BOS] + words, words):
        out += [f"{left} {word}", word]
    return out + [f"{words[-1]} {EOS}"]


class NgramFeaturizer:
    """Unigram + bigram ids of texts for a shared ``nn.EmbeddingBag``.

    Args:
        ngrams: the vocabulary, V n-gram strings (``"drill"``, ``"drill bit"``,
            ``"<s> drill"``, ``"bit </s>"``); n-gram ``ngrams[i]`` has id ``i``.
        num_buckets: B hashing buckets for n-grams outside the vocabulary (ids V..V+B-1).

    Build one from training texts with :meth:`fit`; :meth:`save` / :meth:`load` keep it
    in a small JSON file next to a model.

    Shapes:
        - encode(texts) -> ids (M,) int64 in [0, V+B), offsets (N,) int64: text i's
          features are ``ids[offsets[i]:offsets[i+1]]`` (``nn.EmbeddingBag`` convention);
          a text of w >= 1 words has 2w+1 features, an empty text none.
    """

    def __init__(self, ngrams: Sequence[str] = (), *, num_buckets: int = 1 << 16) -> None:
        if num_buckets < 1:
            raise ValueError(f"num_buckets must be >= 1, got {num_buckets}")
        self.ngrams = list(ngrams)
        self.num_buckets = int(num_buckets)
        keys = np.fromiter((ngram_key(g) for g in self.ngrams), dtype=_U64, count=len(self.ngrams))
        # key -> id through a hash table (pandas' khash: several times faster than a
        # binary search over sorted keys)
        self._index = pd.Index(keys)
        if not self._index.is_unique:
            raise ValueError("the vocabulary holds the same n-gram twice (or two n-grams with one key)")
        self.forget_words()

    def forget_words(self) -> None:
        """Empty the cache of words met so far (the vocabulary stays): ids are unchanged,
        the next texts are normalised and hashed afresh (timing from a cold cache)."""
        # Word table, one entry per distinct normalised word (codes 0 and 1: end, dropped).
        self._codes: dict[str, int] = {_END: _END_CODE}
        self._words: list[str] = [EOS, ""]
        self._left: list[int] = [word_hash(BOS), 0]  # hash as the left word of a bigram
        self._right: list[int] = [word_hash(EOS), 0]  # hash as the right word of a bigram
        self._unigram: list[int] = [-1, -1]  # feature id of the word itself
        self._word_index: dict[str, int] = {}
        self._tables: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    # -- vocabulary ----------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        """V, n-grams with their own id."""
        return len(self.ngrams)

    @property
    def num_embeddings(self) -> int:
        """V + B: rows of the embedding table."""
        return len(self.ngrams) + self.num_buckets

    @classmethod
    def fit(cls, texts: Iterable[str], *, min_count: int = 2, max_size: int | None = None,
            num_buckets: int = 1 << 16) -> "NgramFeaturizer":
        """Vocabulary of the n-grams occurring at least ``min_count`` times in ``texts``.

        Each distinct text counts once (a catalogue title repeated over many pairs is one
        title). Ids go to the most frequent n-grams first (ties: by key, deterministic).

        Args:
            texts: training texts (queries and product texts).
            min_count: least number of distinct texts an n-gram must occur in.
            max_size: keep at most this many n-grams (None: no cap).
            num_buckets: hashing buckets for everything else.
        """
        unique = list(dict.fromkeys(texts))
        probe = cls(num_buckets=num_buckets)
        codes, prev, row = probe._tokens(unique)
        is_word = codes != _END_CODE
        valid = ~((prev == _END_CODE) & ~is_word)
        left, right, _ = probe._arrays()
        unigram_keys = right[codes[is_word]]  # a word's own hash (as the right word of a bigram)
        keys = np.concatenate([unigram_keys, bigram_keys(left[prev[valid]], right[codes[valid]])])
        first_left = np.concatenate([np.full(int(is_word.sum()), -1), prev[valid]])
        first_right = np.concatenate([codes[is_word], codes[valid]])
        rows = np.concatenate([row[is_word], row[valid]])
        # count distinct texts per key: drop repeats of a key within one text
        pair = np.unique(np.stack([keys.view(np.int64), rows]), axis=1, return_index=True)[1]
        keys, first_left, first_right = keys[pair], first_left[pair], first_right[pair]
        uniq, first, counts = np.unique(keys, return_index=True, return_counts=True)
        keep = counts >= min_count
        uniq, first, counts = uniq[keep], first[keep], counts[keep]
        order = np.lexsort((uniq, -counts))
        if max_size is not None:
            order = order[:max_size]
        words = probe._words
        ngrams = []
        for i in first[order]:
            right_word = words[first_right[i]]
            ngrams.append(right_word if first_left[i] < 0 else
                          f"{BOS if first_left[i] == _END_CODE else words[first_left[i]]} {right_word}")
        return cls(ngrams, num_buckets=num_buckets)

    def save(self, path: str | Path) -> None:
        """Write the vocabulary as JSON (``format``, ``num_buckets``, ``ngrams``)."""
        Path(path).write_text(json.dumps(self.to_dict(), ensure_ascii=False), encoding="utf-8")

    def to_dict(self) -> dict:
        return {"format": FORMAT, "num_buckets": self.num_buckets, "ngrams": self.ngrams}

    @classmethod
    def from_dict(cls, state: dict) -> "NgramFeaturizer":
        if state.get("format") != FORMAT:
            raise ValueError(f"not an n-gram vocabulary of format {FORMAT}: {state.get('format')!r}")
        return cls(state["ngrams"], num_buckets=state["num_buckets"])

    @classmethod
    def load(cls, path: str | Path) -> "NgramFeaturizer":
        """Read a vocabulary written by :meth:`save`."""
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    def ngram_words(self, index: int) -> list[str]:
        """The words of vocabulary n-gram ``index``, boundary markers left out."""
        return [w for w in self.ngrams[index].split(" ") if w not in (BOS, EOS)]

    # -- encoding ------------------------------------------------------------------------
    def _lookup(self, keys: np.ndarray) -> np.ndarray:
        """Feature ids of n-gram keys: vocabulary id, else V + key mod B."""
        buckets = (keys % _U64(self.num_buckets)).astype(np.int64) + len(self.ngrams)
        if not len(self.ngrams) or not len(keys):
            return buckets
        ids = self._index.get_indexer(keys)
        return np.where(ids >= 0, ids, buckets)

    def _add_tokens(self, tokens: Iterable[str]) -> None:
        """Normalise, hash and look up tokens never seen before; extend the word table. New words
        are hashed in one batch (:func:`word_hashes`): a call each was 45% of a 100-pair request."""
        tokens = list(tokens)
        codes, index, words = self._codes, self._word_index, self._words
        new_words = []
        for token, word in zip(tokens, [t.strip(_PUNCTUATION) for t in tokens]):  # already lower-cased
            if not word:
                codes[token] = _DROP_CODE
                continue
            code = index.get(word)
            if code is None:
                code = index[word] = len(words)
                words.append(word)
                new_words.append(word)
            codes[token] = code
        if new_words:
            hashes = word_hashes(new_words)
            as_ints = hashes.tolist()
            self._left.extend(as_ints)
            self._right.extend(as_ints)
            self._unigram.extend(self._lookup(hashes).tolist())
        self._tables = None

    def _arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._tables is None:
            self._tables = (np.array(self._left, dtype=_U64), np.array(self._right, dtype=_U64),
                            np.array(self._unigram, dtype=np.int64))
        return self._tables

    def _tokens(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Word codes of all texts with an end code after each text, dropped tokens removed.

        Returns codes (T,), prev (T,) (code of the previous position; end code before the
        first word of every text, i.e. a ``<s>``) and row (T,) (text of each position).
        """
        separator = f" {_END} "
        joined = separator.join(texts) + separator
        if joined.count(_END) != len(texts):  # a text holds the marker itself: blank it out
            joined = separator.join(t.replace(_END, " ") for t in texts) + separator
        tokens = joined.lower().split()
        codes_of = self._codes
        try:
            codes = np.fromiter(map(codes_of.__getitem__, tokens), dtype=np.int64, count=len(tokens))
        except KeyError:
            self._add_tokens({t for t in tokens if t not in codes_of})
            codes = np.fromiter(map(codes_of.__getitem__, tokens), dtype=np.int64, count=len(tokens))
        codes = codes[codes != _DROP_CODE]
        prev = np.empty_like(codes)
        prev[:1] = _END_CODE
        prev[1:] = codes[:-1]
        is_end = codes == _END_CODE
        row = np.cumsum(is_end) - is_end
        return codes, prev, row

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Feature ids of texts, flat, with bag offsets (see class Shapes).

        Args:
            texts: N strings (any; empty and white-space-only texts give empty bags).

        Returns:
            ids (M,) int64 in [0, num_embeddings), offsets (N,) int64.
        """
        n = len(texts)
        if n == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        codes, prev, row = self._tokens(texts)
        left, right, unigram = self._arrays()
        is_word = codes != _END_CODE
        has_bigram = ~((prev == _END_CODE) & ~is_word)  # no "<s> </s>" for an empty text
        per_position = has_bigram.astype(np.int64) + is_word
        start = np.cumsum(per_position) - per_position
        ids = np.empty(int(per_position.sum()), dtype=np.int64)
        ids[start[has_bigram]] = self._lookup(bigram_keys(left[prev[has_bigram]], right[codes[has_bigram]]))
        ids[start[is_word] + has_bigram[is_word]] = unigram[codes[is_word]]
        counts = np.bincount(row, weights=per_position, minlength=n).astype(np.int64)
        return ids, np.cumsum(counts) - counts

    def __repr__(self) -> str:
        return f"NgramFeaturizer(vocab_size={self.vocab_size}, num_buckets={self.num_buckets})"


def bag_lengths(offsets: np.ndarray, total: int) -> np.ndarray:
    """Bag sizes (N,) from offsets (N,) and the number of ids ``total``."""
    return np.diff(offsets, append=total)


def gather_bags(ids: np.ndarray, offsets: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bags ``rows`` (K,) of an encoded collection, as a new (ids, offsets) pair (vectorised).

    Args:
        ids: (M,) int64, offsets: (N,) int64 (as :meth:`NgramFeaturizer.encode` returns).
        rows: (K,) int64 indices into the N bags (repeats allowed).

    Returns:
        ids (M',) int64, offsets (K,) int64.
    """
    rows = np.asarray(rows, dtype=np.int64)
    lengths = bag_lengths(offsets, len(ids))[rows]
    new_offsets = np.cumsum(lengths) - lengths
    index = np.repeat(offsets[rows] - new_offsets, lengths) + np.arange(int(lengths.sum()))
    return ids[index], new_offsets


#: Columns of :func:`match_features`.
MATCH_FEATURES = ("query_unigram_coverage", "query_bigram_coverage", "product_unigram_coverage")


def match_features(query_ids: np.ndarray, query_offsets: np.ndarray, product_ids: np.ndarray,
                   product_offsets: np.ndarray) -> np.ndarray:
    """Exact n-gram overlap of each pair's two bags (vectorised over pairs).

    Bags are laid out as :meth:`NgramFeaturizer.encode` writes them: a text of w words
    has bigram, word, bigram, ..., word, bigram (boundary bigrams included), so unigrams
    sit at odd positions. Two n-grams match when their feature ids are equal (hashed
    out-of-vocabulary words match when they share a bucket, rare with 65,536 buckets).

    Args:
        query_ids, query_offsets: B query bags, (Mq,) and (B,) int64.
        product_ids, product_offsets: B product bags, (Mp,) and (B,) int64.

    Returns:
        (B, 3) float32 in [0, 1], columns :data:`MATCH_FEATURES`: the fraction of the
        query's unigrams (bigrams) found among the product's unigrams (bigrams), and the
        fraction of the product's unigrams found among the query's. 0 for an empty bag.

    Raises:
        ValueError: if the two sides hold a different number of bags.
    """
    n = len(query_offsets)
    if len(product_offsets) != n:
        raise ValueError(f"{n} query bags but {len(product_offsets)} product bags")

    def layout(ids, offsets):
        lengths = bag_lengths(offsets, len(ids))
        pair = np.repeat(np.arange(n, dtype=np.int64), lengths)
        unigram = (np.arange(len(ids)) - np.repeat(offsets, lengths)) & 1
        # one key per (pair, n-gram kind, id): matches stay within a pair and a kind
        key = ((pair << 1) | unigram) << 32 | np.asarray(ids, dtype=np.int64)
        return pair, unigram.astype(bool), key

    def found_in(keys, pool):
        # membership by binary search in the sorted pool: ~4x faster than np.isin's hashing
        if not len(pool):
            return np.zeros(len(keys), dtype=bool)
        pool = np.sort(pool)
        return pool[np.searchsorted(pool, keys).clip(max=len(pool) - 1)] == keys

    query_pair, query_unigram, query_key = layout(query_ids, query_offsets)
    product_pair, product_unigram, product_key = layout(product_ids, product_offsets)
    query_hit = found_in(query_key, product_key)
    product_hit = found_in(product_key, query_key)

    def fraction(pair, select, hit):
        total = np.bincount(pair[select], minlength=n)
        found = np.bincount(pair[select & hit], minlength=n)
        return np.divide(found, total, out=np.zeros(n), where=total > 0)

    return np.stack([fraction(query_pair, query_unigram, query_hit),
                     fraction(query_pair, ~query_unigram, query_hit),
                     fraction(product_pair, product_unigram, product_hit)], axis=1).astype(np.float32)
