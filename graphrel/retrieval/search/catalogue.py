"""The product catalogue of a run and the judged test queries retrieval is evaluated on.

The catalogue is every distinct product of the run's pairs (all splits, transfer candidates
included): Home Depot has 54,667 product titles. Products are kept **sorted by product id**
(string order), so a product's row in the catalogue is its rank in the deterministic tie-break
every retriever uses: between equal scores, the smaller product id ranks first.

Evaluation set (graphrel's retrieval protocol on Home Depot): the unseen test queries of the
run (splits ``test`` and ``test_context``, i.e. every judged pair of a test query); a product is
relevant to a query when its label is at or above the relevance threshold (2.5 on Home Depot's
1-3 scale). Unjudged products count as misses, so compare systems, not absolute values.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from graphrel.errors import GraphrelInputError
from graphrel.run import write_parquet

#: Splits whose pairs are the judged pairs of unseen test queries.
TEST_SPLITS = ("test", "test_context")
CATALOGUE_FILE = "catalogue.parquet"


@dataclass(frozen=True)
class Catalogue:
    """Every product a retriever can return.

    Attributes:
        product_ids: (N,) product ids as strings, sorted ascending, unique.
        texts: (N,) product texts (titles), aligned with ``product_ids``.
    """

    product_ids: np.ndarray
    texts: np.ndarray

    def __post_init__(self) -> None:
        if len(self.product_ids) != len(self.texts):
            raise ValueError(f"{len(self.product_ids)} product ids but {len(self.texts)} texts")
        if len(self.product_ids) == 0:
            raise ValueError("a catalogue needs at least one product")

    def __len__(self) -> int:
        return len(self.product_ids)

    @classmethod
    def from_pairs(cls, pairs: pd.DataFrame) -> "Catalogue":
        """Distinct products of ``pairs`` (columns ``product_id``, ``product_text``), sorted by id.

        A product id seen with two texts keeps its first text (the run's loader guarantees one).
        """
        products = pairs[["product_id", "product_text"]].astype({"product_id": str})
        products = products.drop_duplicates("product_id").sort_values("product_id", kind="stable")
        return cls(products["product_id"].to_numpy(dtype=object), products["product_text"].to_numpy(dtype=object))

    def save(self, directory: str | Path) -> None:
        """Write ``directory/catalogue.parquet`` (``product_id``, ``product_text``) atomically."""
        write_parquet(pd.DataFrame({"product_id": self.product_ids, "product_text": self.texts}),
                      Path(directory) / CATALOGUE_FILE)

    @classmethod
    def load(cls, directory: str | Path) -> "Catalogue":
        """Read ``directory/catalogue.parquet``.

        Raises:
            GraphrelInputError: the file is missing.
        """
        path = Path(directory) / CATALOGUE_FILE
        if not path.is_file():
            raise GraphrelInputError("no catalogue.parquet: not a retriever directory", path=Path(directory),
                                     fix="pass a directory written by graphrel's retrieval stage")
        frame = pd.read_parquet(path)
        return cls(frame["product_id"].astype(str).to_numpy(dtype=object),
                   frame["product_text"].to_numpy(dtype=object))


@dataclass(frozen=True)
class JudgedQueries:
    """Test queries and their judged-relevant products.

    Attributes:
        query_ids: (Q,) query ids with at least one relevant product, sorted.
        queries: (Q,) query texts aligned with ``query_ids``.
        qrels: query id -> set of relevant product ids (label >= threshold).
        without_relevant: test queries left out because none of their judged products is relevant.
    """

    query_ids: np.ndarray
    queries: np.ndarray
    qrels: dict
    without_relevant: int

    def __len__(self) -> int:
        return len(self.query_ids)


def judged_test_queries(pairs: pd.DataFrame, *, threshold: float, splits=TEST_SPLITS) -> JudgedQueries:
    """The unseen test queries of a run with their relevant products.

    Args:
        pairs: the run's pairs (``query_id``, ``query``, ``product_id``, ``label``, ``split``);
            ``label`` on the run's normalised [0, 1] scale.
        threshold: normalised label at or above which a product is relevant (0.75 = 2.5 on 1-3).
        splits: the splits whose pairs are judged pairs of test queries.

    Raises:
        GraphrelInputError: no pair of those splits, or no test query with a relevant product.
    """
    judged = pairs[pairs["split"].isin(list(splits))]
    if judged.empty:
        raise GraphrelInputError(f"the run has no pairs of split {'/'.join(splits)}",
                                 fix="pass a run directory written by graphrel pipeline")
    relevant = judged[judged["label"].to_numpy(dtype=float) >= threshold - 1e-9]
    qrels = {str(q): set(map(str, g)) for q, g in relevant.groupby("query_id", sort=True)["product_id"]}
    if not qrels:
        raise GraphrelInputError(f"no test query has a product with label >= {threshold:g} (normalised)",
                                 fix="lower retrieval.relevance_threshold")
    texts = judged.drop_duplicates("query_id").set_index("query_id")["query"]
    ids = np.array(sorted(qrels), dtype=object)
    return JudgedQueries(ids, texts.loc[ids].to_numpy(dtype=object), qrels,
                         without_relevant=int(judged["query_id"].nunique() - len(ids)))


def normalised_threshold(threshold: float, label_scale: dict | None) -> float:
    """A relevance threshold given on the data's label scale, on the run's [0, 1] label scale.

    Args:
        threshold: e.g. 2.5 on Home Depot's 1-3 scale.
        label_scale: ``{"label_min": 1.0, "label_max": 3.0}`` from the run's ``label_scale.json``,
            or None when the run's labels are already on their own scale.

    Raises:
        GraphrelInputError: the threshold lies outside the scale.
    """
    if label_scale is None:
        return float(threshold)
    low, high = float(label_scale["label_min"]), float(label_scale["label_max"])
    if not low <= threshold <= high:
        raise GraphrelInputError(f"relevance threshold {threshold:g} is outside the label scale [{low:g}, {high:g}]",
                                 fix=f"pass retrieval.relevance_threshold between {low:g} and {high:g}")
    return (float(threshold) - low) / (high - low)
