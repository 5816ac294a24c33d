"""A lexical gradient-boosted teacher: a second, cheap and different teacher to stack with
the cross-encoder (BERT2DNN's teacher stacking, Jiang et al., ICDM 2020, arXiv 2010.10442).

It sees only word overlap, never meaning, so its errors differ from the cross-encoder's:
the reason a stack of the two can beat either. Features of a pair (query, product text):

- cosine of word TF-IDF vectors and of character 3-5-gram TF-IDF vectors (``TfidfVectorizer``
  fitted on the pairs' queries and product texts);
- share of query words found in the product text, exactly and as a prefix of a title word
  (``drill`` in ``drills``), and the IDF-weighted exact share;
- query and product text length in words.

Model: scikit-learn ``HistGradientBoostingRegressor`` on the normalised human label in
[0, 1]; its logit is ``log(p / (1 - p))`` of the prediction clipped to [0.01, 0.99].
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.feature_extraction.text import TfidfVectorizer

_WORD = re.compile(r"[a-z0-9]+")
FEATURE_NAMES = ("word_tfidf_cosine", "char_tfidf_cosine", "query_words_found", "query_words_prefix_found",
                 "query_idf_share_found", "query_words", "product_words")
#: Predictions are clipped to [CLIP, 1 - CLIP] before taking the logit.
CLIP = 0.01


def _rowwise_cosine(left, right) -> np.ndarray:
    """Cosine of row i of ``left`` with row i of ``right`` (both L2-normalised sparse)."""
    return np.asarray(left.multiply(right).sum(1)).ravel()


class LexicalTeacher:
    """Gradient-boosted relevance model on lexical overlap features (see module docstring).

    Args:
        max_iter, learning_rate, max_leaf_nodes: of ``HistGradientBoostingRegressor``.
        seed: random state.
    """

    def __init__(self, *, max_iter: int = 300, learning_rate: float = 0.05, max_leaf_nodes: int = 31,
                 seed: int = 0) -> None:
        self.model = HistGradientBoostingRegressor(max_iter=max_iter, learning_rate=learning_rate,
                                                   max_leaf_nodes=max_leaf_nodes, random_state=seed,
                                                   early_stopping=True, validation_fraction=0.1)
        self.words: TfidfVectorizer | None = None
        self.characters: TfidfVectorizer | None = None

    def fit_vocabulary(self, texts: Sequence[str]) -> "LexicalTeacher":
        """Fit the TF-IDF vocabularies on query and product texts (no labels used)."""
        texts = list(texts)
        self.words = TfidfVectorizer(token_pattern=r"[a-z0-9]+", sublinear_tf=True, dtype=np.float32).fit(texts)
        self.characters = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), min_df=2, sublinear_tf=True,
                                          max_features=200_000, dtype=np.float32).fit(texts)
        return self

    def features(self, queries: Sequence[str], products: Sequence[str]) -> np.ndarray:
        """Lexical features of N pairs: (N, 7) float32, columns ``FEATURE_NAMES``.

        Raises:
            RuntimeError: if the vocabularies were not fitted.
        """
        if self.words is None:
            raise RuntimeError("call fit_vocabulary() (or fit()) first")
        queries, products = [str(q).lower() for q in queries], [str(p).lower() for p in products]
        # Texts repeat across pairs (a product is shown for many queries): vectorise each once.
        query_codes, unique_queries = pd.factorize(np.asarray(queries, dtype=object))
        product_codes, unique_products = pd.factorize(np.asarray(products, dtype=object))
        word_cos = _rowwise_cosine(self.words.transform(unique_queries)[query_codes],
                                   self.words.transform(unique_products)[product_codes])
        char_cos = _rowwise_cosine(self.characters.transform(unique_queries)[query_codes],
                                   self.characters.transform(unique_products)[product_codes])
        idf = dict(zip(self.words.get_feature_names_out(), self.words.idf_))
        default_idf = float(self.words.idf_.max())
        out = np.zeros((len(queries), len(FEATURE_NAMES)), dtype=np.float32)
        out[:, 0], out[:, 1] = word_cos, char_cos
        for i, (query, product) in enumerate(zip(queries, products)):
            query_words, product_words = _WORD.findall(query), _WORD.findall(product)
            title = set(product_words)
            if query_words:
                found = [w in title for w in query_words]
                prefix = [w in title or any(t.startswith(w) or w.startswith(t) for t in title if len(t) > 2)
                          for w in query_words]
                weights = np.array([idf.get(w, default_idf) for w in query_words])
                out[i, 2] = np.mean(found)
                out[i, 3] = np.mean(prefix)
                out[i, 4] = float(weights[np.array(found)].sum() / weights.sum())
            out[i, 5], out[i, 6] = len(query_words), len(product_words)
        return out

    def fit(self, queries: Sequence[str], products: Sequence[str], labels: np.ndarray,
            vocabulary_texts: Sequence[str] | None = None) -> "LexicalTeacher":
        """Fit on labelled pairs.

        Args:
            queries, products: N strings each.
            labels: (N,) float normalised relevance in [0, 1].
            vocabulary_texts: texts for the TF-IDF vocabularies (default: these pairs' texts).
        """
        if self.words is None:
            self.fit_vocabulary(list(vocabulary_texts) if vocabulary_texts is not None
                                else list(queries) + list(products))
        self.model.fit(self.features(queries, products), np.asarray(labels, dtype=np.float64))
        return self

    def logits(self, queries: Sequence[str], products: Sequence[str]) -> np.ndarray:
        """(N,) float32 logits; ``sigmoid(logit)`` is the predicted relevance in [CLIP, 1 - CLIP]."""
        predicted = np.clip(self.model.predict(self.features(queries, products)), CLIP, 1 - CLIP)
        return np.log(predicted / (1 - predicted)).astype(np.float32)
