"""The extreme multi-label classifier (XMC) of Blend and Match: queries in, product labels out.

Blend and Match (Bonab et al., WWW '23 Companion, doi 10.1145/3543873.3587629) blends a dual
encoder with a secondary XMC model that treats every product as a label. Here the XMC model is:

- **query features**: TF-IDF of word n-grams and of character n-grams within word boundaries
  (scikit-learn ``TfidfVectorizer``, sublinear tf), stacked side by side;
- **classifier**: napkinxc's probabilistic label tree (PLT; Jasinska-Kobus et al., "Probabilistic
  label trees for extreme multi-label classification", arXiv 2009.11218): a balanced k-means
  tree over the labels, a logistic node classifier per tree node (liblinear), exact top-k
  search. A product's score is the PLT's estimate of P(product relevant | query), in [0, 1].

Only products seen as a label in training can ever come out: :meth:`XMCModel.top_k` returns at
most ``len(model.product_ids)`` products per query. napkinxc was chosen over omikuji (Parabel /
Bonsai) because both install as cp311 wheels here but napkinxc takes scipy CSR matrices and
predicts a batch with probabilities (omikuji trains from a file and predicts one query at a time).
"""

from __future__ import annotations

import json
import pickle
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from graphrel.errors import GraphrelInputError

FEATURES_FILE = "features.pkl"
LABELS_FILE = "labels.json"
TREE_DIR = "plt"


@dataclass(frozen=True)
class XMCOptions:
    """Hyper-parameters of the XMC model (validated on construction).

    Attributes:
        max_word_ngram: word n-grams 1..n (>= 1).
        min_char_ngram, max_char_ngram: character n-gram lengths (1 <= min <= max).
        max_features: vocabulary cap of each vectoriser (>= 1; most frequent kept).
        liblinear_c: inverse L2 strength of each node classifier (> 0; napkinxc's default 10).
        max_leaves: labels per tree leaf (>= 2).
        ensemble: trees averaged (>= 1).
        threads: napkinxc threads (>= 1).
        seed: tree-building seed.
    """

    max_word_ngram: int = 2
    min_char_ngram: int = 2
    max_char_ngram: int = 4
    max_features: int = 200_000
    liblinear_c: float = 10.0
    max_leaves: int = 100
    ensemble: int = 1
    threads: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        whole = {"max_word_ngram": 1, "min_char_ngram": 1, "max_features": 1, "max_leaves": 2, "ensemble": 1,
                 "threads": 1}
        for name, low in whole.items():
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < low:
                raise GraphrelInputError(f"XMC option {name} must be a whole number >= {low}, got {value!r}",
                                         fix=f"set {name} to a whole number >= {low}")
        if not isinstance(self.max_char_ngram, (int, np.integer)) or self.max_char_ngram < self.min_char_ngram:
            raise GraphrelInputError(f"XMC option max_char_ngram must be >= min_char_ngram ({self.min_char_ngram}), "
                                     f"got {self.max_char_ngram!r}", fix="set max_char_ngram >= min_char_ngram")
        if not np.isfinite(self.liblinear_c) or self.liblinear_c <= 0:
            raise GraphrelInputError(f"XMC option liblinear_c must be a finite number > 0, got {self.liblinear_c!r}",
                                     fix="set liblinear_c > 0 (default 10)")


def check_queries(queries) -> list[str]:
    """Query texts as a list of str.

    Raises:
        GraphrelInputError: a query that is not text or is empty (naming its 0-based position).
    """
    out = []
    for position, query in enumerate(queries):
        if not isinstance(query, str) or not query.strip():
            raise GraphrelInputError(f"query {position} is empty or not text ({query!r})",
                                     fix="give the XMC model non-empty query texts")
        out.append(query)
    return out


class QueryFeatures:
    """TF-IDF word + character n-gram features of queries (fitted on the training queries)."""

    def __init__(self, options: XMCOptions) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.word = TfidfVectorizer(analyzer="word", ngram_range=(1, options.max_word_ngram), sublinear_tf=True,
                                    max_features=options.max_features, token_pattern=r"(?u)\b\w+\b",
                                    dtype=np.float32)
        self.char = TfidfVectorizer(analyzer="char_wb", ngram_range=(options.min_char_ngram, options.max_char_ngram),
                                    sublinear_tf=True, max_features=options.max_features, dtype=np.float32)

    def fit(self, queries) -> "QueryFeatures":
        self.word.fit(queries)
        self.char.fit(queries)
        return self

    def __len__(self) -> int:
        return len(self.word.vocabulary_) + len(self.char.vocabulary_)

    def transform(self, queries):
        """(Q, F) float32 CSR matrix, each half L2-normalised."""
        import scipy.sparse as sp

        return sp.hstack([self.word.transform(queries), self.char.transform(queries)], format="csr",
                         dtype=np.float32)


class XMCModel:
    """Queries -> products as labels: TF-IDF features and a probabilistic label tree.

    Build with :meth:`fit`, persist with :meth:`save` / :meth:`load`.

    Attributes:
        product_ids: (L,) the products seen as labels, sorted; label index i = product_ids[i].
        options: the hyper-parameters.
        training: figures of the fit (examples, labels, seconds).
    """

    def __init__(self, features: QueryFeatures, tree, product_ids: np.ndarray, options: XMCOptions,
                 training: dict | None = None) -> None:
        self.features = features
        self.tree = tree
        self.product_ids = product_ids
        self.options = options
        self.training = training or {}
        self._label_of = {p: i for i, p in enumerate(product_ids)}

    @classmethod
    def fit(cls, queries, labels, directory: str | Path, *, options: XMCOptions | None = None) -> "XMCModel":
        """Fit on training queries and the products relevant to each; writes ``directory``.

        Args:
            queries: E query texts (non-empty); one training example each.
            labels: E iterables of product ids (each non-empty): the example's relevant products.
            directory: where the model goes (created; its ``plt/`` is written by napkinxc).
            options: hyper-parameters (default :class:`XMCOptions`).

        Raises:
            GraphrelInputError: no example, an empty query, an example without labels, or
                queries and labels of different lengths.
        """
        import time

        from napkinxc.models import PLT

        options = options or XMCOptions()
        queries = check_queries(queries)
        labels = [sorted({str(p) for p in row}) for row in labels]
        if len(queries) != len(labels):
            raise GraphrelInputError(f"{len(queries)} queries but {len(labels)} label lists",
                                     fix="give one list of relevant products per query")
        if not queries:
            raise GraphrelInputError("no training example for the XMC model",
                                     fix="give at least one query with a relevant product")
        empty = next((i for i, row in enumerate(labels) if not row), None)
        if empty is not None:
            raise GraphrelInputError(f"training query {empty} ({queries[empty]!r}) has no relevant product",
                                     fix="drop queries without relevant products")
        start = time.perf_counter()
        product_ids = np.array(sorted({p for row in labels for p in row}), dtype=object)
        label_of = {p: i for i, p in enumerate(product_ids)}
        features = QueryFeatures(options).fit(queries)
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tree = PLT(str(directory / TREE_DIR), max_leaves=options.max_leaves, liblinear_c=options.liblinear_c,
                   ensemble=options.ensemble, seed=options.seed, threads=options.threads, verbose=0)
        tree.fit(features.transform(queries), [[label_of[p] for p in row] for row in labels])
        training = {"examples": len(queries), "labels": len(product_ids), "features": len(features),
                    "pairs": int(sum(map(len, labels))), "train_seconds": time.perf_counter() - start}
        model = cls(features, tree, product_ids, options, training)
        model._write_side_files(directory)
        return model

    def _write_side_files(self, directory: Path) -> None:
        with open(directory / FEATURES_FILE, "wb") as handle:
            pickle.dump(self.features, handle)
        (directory / LABELS_FILE).write_text(json.dumps({"product_ids": list(map(str, self.product_ids)),
                                                         "options": asdict(self.options), "training": self.training}))

    def save(self, directory: str | Path) -> None:
        """Copy the model into ``directory`` (a model fitted elsewhere)."""
        import shutil

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        source = Path(self.tree.get_params()["output"])
        if source.resolve() != (directory / TREE_DIR).resolve():
            shutil.copytree(source, directory / TREE_DIR, dirs_exist_ok=True)
        self._write_side_files(directory)

    @classmethod
    def load(cls, directory: str | Path) -> "XMCModel":
        """Read a model written by :meth:`fit` or :meth:`save`.

        Raises:
            GraphrelInputError: the directory is not an XMC model.
        """
        from napkinxc.models import PLT

        directory = Path(directory)
        if not (directory / LABELS_FILE).is_file() or not (directory / TREE_DIR).is_dir():
            raise GraphrelInputError("not an XMC model directory (no labels.json or plt/)", path=directory,
                                     fix="pass a directory written by graphrel's XMC model")
        meta = json.loads((directory / LABELS_FILE).read_text())
        options = XMCOptions(**meta["options"])
        with open(directory / FEATURES_FILE, "rb") as handle:
            features = pickle.load(handle)
        tree = PLT(str(directory / TREE_DIR), threads=options.threads, verbose=0)
        tree.load()
        return cls(features, tree, np.array(meta["product_ids"], dtype=object), options, meta.get("training"))

    def __len__(self) -> int:
        return len(self.product_ids)

    def size_bytes(self) -> int:
        """Bytes of the saved tree (weights and structure)."""
        return int(sum(f.stat().st_size for f in Path(self.tree.get_params()["output"]).rglob("*") if f.is_file()))

    def top_k(self, queries, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` most probable products of each query, best first, ties by product id.

        Args:
            queries: Q non-empty query texts.
            k: >= 1; clamped to the number of labels L (only labels ever come out).

        Returns:
            product ids (Q, min(k, L)) object array and scores (Q, min(k, L)) float32 in [0, 1].

        Raises:
            GraphrelInputError: an empty query. ValueError: k < 1.
        """
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        queries = check_queries(queries)
        k = min(int(k), len(self.product_ids))
        ids = np.empty((len(queries), k), dtype=object)
        scores = np.zeros((len(queries), k), dtype=np.float32)
        if not queries:
            return ids, scores
        predicted = self.tree.predict_proba(self.features.transform(queries), top_k=k)
        for row, pairs in enumerate(predicted):
            labels = np.array([label for label, _ in pairs], dtype=np.int64)
            probabilities = np.array([p for _, p in pairs], dtype=np.float32)
            if len(labels) < k:  # the tree search stopped early: the other labels score 0
                rest = np.setdiff1d(np.arange(len(self.product_ids)), labels)[:k - len(labels)]
                labels = np.concatenate([labels, rest])
                probabilities = np.concatenate([probabilities, np.zeros(len(rest), np.float32)])
            order = np.lexsort((labels, -probabilities))[:k]  # labels are sorted product ids
            ids[row], scores[row] = self.product_ids[labels[order]], probabilities[order]
        return ids, scores

    def pair_scores(self, queries, product_ids, *, depth: int = 1000) -> np.ndarray:
        """The model's score of each (query, product) pair: its probability if the product is in
        the query's top ``depth`` (napkinxc exposes no per-label scoring), else 0.

        Args:
            queries: P query texts; product_ids: P product ids (each a label of the model).
            depth: search depth of each distinct query (>= 1).

        Returns:
            (P,) float32 in [0, 1].

        Raises:
            GraphrelInputError: a product the model never saw as a label (it can never score it),
                or an empty query.
        """
        product_ids = [str(p) for p in product_ids]
        unknown = next((p for p in product_ids if p not in self._label_of), None)
        if unknown is not None:
            raise GraphrelInputError(f"product {unknown!r} was never a label of the XMC model, so it has no score",
                                     fix="score only products in XMCModel.product_ids (the training labels)")
        queries = check_queries(queries)
        distinct = list(dict.fromkeys(queries))
        ids, scores = self.top_k(distinct, depth)
        lookup = {q: dict(zip(ids[i], scores[i])) for i, q in enumerate(distinct)}
        return np.array([lookup[q].get(p, 0.0) for q, p in zip(queries, product_ids)], dtype=np.float32)


def xmc_training_examples(pairs, *, threshold: float, transfer_threshold: float | None = None):
    """The XMC model's training examples: each training query with its relevant products.

    Relevant = a ``train`` pair with label >= ``threshold`` (normalised); with
    ``transfer_threshold``, also every ``transfer`` pair **of a training query** whose teacher
    score (``teacher_score``, the sigmoid of the cross-encoder's logit, in [0, 1]) is >= it.
    Transfer pairs of validation and test queries are never used (those queries are unseen).

    Args:
        pairs: the run's pairs (``query_id, query, product_id, label, split`` and, for transfer,
            ``teacher_score``), labels on the run's [0, 1] scale.
        threshold: normalised relevance threshold (0.75 = 2.5 on 1-3).
        transfer_threshold: teacher score in [0, 1], or None for labelled pairs only.

    Returns:
        ``(queries, labels, counts)``: E query texts (sorted by query id), E lists of product ids,
        and ``{"labelled_pairs", "transfer_pairs"}``.

    Raises:
        GraphrelInputError: no relevant training pair, or a transfer threshold outside [0, 1] or
            without a ``teacher_score`` column.
    """
    import pandas as pd

    train = pairs[pairs["split"] == "train"]
    labelled = train[train["label"].to_numpy(dtype=float) >= threshold - 1e-9][["query_id", "query", "product_id"]]
    parts, transfer_count = [labelled], 0
    if transfer_threshold is not None:
        if not 0 <= transfer_threshold <= 1:
            raise GraphrelInputError(f"transfer threshold must be a teacher score in [0, 1], got {transfer_threshold!r}",
                                     fix="set the XMC transfer threshold between 0 and 1, or null")
        if "teacher_score" not in pairs.columns:
            raise GraphrelInputError("the pairs have no teacher_score column for the transfer threshold",
                                     fix="load the run's pairs with graphrel.run.load_run_pairs")
        transfer = pairs[(pairs["split"] == "transfer") & pairs["query_id"].isin(set(train["query_id"]))]
        transfer = transfer[transfer["teacher_score"].to_numpy(dtype=float) >= transfer_threshold]
        transfer_count = len(transfer)
        parts.append(transfer[["query_id", "query", "product_id"]])
    rows = pd.concat(parts).astype({"product_id": str}).drop_duplicates(["query_id", "product_id"])
    if rows.empty:
        raise GraphrelInputError("no training pair is relevant, so the XMC model has no label",
                                 fix="lower retrieval.relevance_threshold or check the run's train split")
    grouped = rows.groupby("query_id", sort=True).agg(query=("query", "first"), labels=("product_id", list))
    return (list(grouped["query"]), list(grouped["labels"]),
            {"labelled_pairs": len(labelled), "transfer_pairs": transfer_count})
