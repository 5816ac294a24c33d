"""BM25 over product texts with ``bm25s`` (Lù, 2024, arXiv 2407.03618).

Tokenisation is bm25s's: lower-cased words of 2+ word characters, English stop words removed,
no stemming (PyStemmer is not a dependency). BM25 scores are Lucene's variant with k1 = 1.5,
b = 0.75 (bm25s's defaults). Every query is scored against the whole catalogue and cut with
:func:`graphrel.retrieval.search.topk.top_k`, so ties (frequent in BM25: duplicate titles, equal
term statistics) break by product id.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from graphrel.retrieval.search.topk import top_k

TOKENIZER_DIR = "tokenizer"
INDEX_DIR = "index"


class BM25Index:
    """A BM25 index of the catalogue's texts (row i = catalogue row i).

    Args:
        texts: (N,) product texts, N >= 1.
        k1, b: BM25 parameters (k1 > 0, 0 <= b <= 1).
    """

    def __init__(self, texts=None, *, k1: float = 1.5, b: float = 0.75, _loaded=None) -> None:
        import bm25s
        from bm25s.tokenization import Tokenizer

        if _loaded is not None:
            self.tokenizer, self.model = _loaded
            return
        if not k1 > 0 or not 0 <= b <= 1:
            raise ValueError(f"BM25 needs k1 > 0 and 0 <= b <= 1, got k1={k1}, b={b}")
        texts = [str(t) for t in texts]
        if not texts:
            raise ValueError("BM25 needs at least one product text")
        self.tokenizer = Tokenizer(stopwords="en", stemmer=None)
        ids = self.tokenizer.tokenize(texts, update_vocab=True, show_progress=False, return_as="ids")
        self.model = bm25s.BM25(k1=k1, b=b)
        self.model.index(self.tokenizer.to_tokenized_tuple(ids), show_progress=False)

    def __len__(self) -> int:
        return int(self.model.scores["num_docs"])

    def query_token_ids(self, queries) -> list[list[int]]:
        """Index vocabulary ids of each query's words (words the catalogue never uses dropped)."""
        words = self.tokenizer.tokenize([str(q) for q in queries], update_vocab=False, show_progress=False,
                                        return_as="string")
        vocab = self.model.vocab_dict
        return [[vocab[w] for w in row if w and w in vocab] for row in words]

    def scores(self, queries) -> np.ndarray:
        """BM25 score of every product for every query.

        Returns:
            (Q, N) float32, >= 0; a query without a catalogue word scores 0 everywhere.
        """
        out = np.zeros((len(queries), len(self)), dtype=np.float32)
        for row, ids in enumerate(self.query_token_ids(queries)):
            if ids:
                out[row] = self.model.get_scores_from_ids(ids)
        return out

    def search(self, queries, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` catalogue rows per query (ties by row = product id), best first.

        Returns:
            indices (Q, min(k, N)) int64 and scores (Q, min(k, N)) float32.
        """
        indices = np.empty((len(queries), min(int(k), len(self))), dtype=np.int64)
        values = np.empty(indices.shape, dtype=np.float32)
        for start in range(0, len(queries), 256):  # bounded memory: 256 x N scores at a time
            chunk = list(queries[start:start + 256])
            indices[start:start + len(chunk)], values[start:start + len(chunk)] = top_k(self.scores(chunk), k)
        return indices, values

    def save(self, directory: str | Path) -> None:
        """Write the index and the tokenizer's vocabulary under ``directory``."""
        directory = Path(directory)
        self.model.save(str(directory / INDEX_DIR), show_progress=False)
        self.tokenizer.save_vocab(str(directory / TOKENIZER_DIR))
        self.tokenizer.save_stopwords(str(directory / TOKENIZER_DIR))

    @classmethod
    def load(cls, directory: str | Path) -> "BM25Index":
        """Read an index written by :meth:`save`."""
        import bm25s
        from bm25s.tokenization import Tokenizer

        directory = Path(directory)
        model = bm25s.BM25.load(str(directory / INDEX_DIR), show_progress=False)
        tokenizer = Tokenizer(stopwords="en", stemmer=None)
        tokenizer.load_vocab(str(directory / TOKENIZER_DIR))
        tokenizer.load_stopwords(str(directory / TOKENIZER_DIR))
        return cls(_loaded=(tokenizer, model))
