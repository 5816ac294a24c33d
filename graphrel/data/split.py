"""The query-disjoint split of pairs into train / val / test.

Example:
    >>> splits = split_by_query(pairs, val_fraction=0.1, test_fraction=0.1, seed=0)  # doctest: +SKIP
    >>> sorted(splits)  # doctest: +SKIP
    ['test', 'train', 'val']
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from graphrel.data.schema import RelevancePairs
from graphrel.data.text_keys import text_keys
from graphrel.errors import GraphrelInputError

__all__ = ["split_by_query", "training_pairs"]


def split_by_query(pairs: RelevancePairs, *, val_fraction: float = 0.1, test_fraction: float = 0.1,
                   seed: int = 0) -> dict[str, RelevancePairs]:
    """Split pairs into train / val / test with disjoint query sets, by query *text*.

    Queries are grouped by their text key (:func:`graphrel.data.text_keys.text_keys`: NFKC,
    case-folded, white space collapsed), so two ids of one query text ("Angle Bracket",
    "angle  bracket") never fall into two splits. The sorted unique keys are permuted with
    ``numpy.random.default_rng(seed)``; the first ``round(test_fraction * n)`` go to test,
    the next ``round(val_fraction * n)`` to val, the rest to train (n: distinct keys). Pairs
    keep their order within each split. Same pairs and seed ⇒ same split.

    Args:
        pairs: the pairs to split.
        val_fraction: share of queries for validation, ``>= 0``.
        test_fraction: share of queries for test, ``>= 0``; ``val + test < 1``.
        seed: random seed.

    Returns:
        ``{"train": ..., "val": ..., "test": ...}``; every ``query_id``, and every query text
        key, is in exactly one.

    Raises:
        GraphrelInputError: invalid fractions, or too few queries to leave any for train.
    """
    fix = "choose val_fraction >= 0 and test_fraction >= 0 with val_fraction + test_fraction < 1"
    try:
        vf, tf = float(val_fraction), float(test_fraction)
    except (TypeError, ValueError):
        raise GraphrelInputError(f"fractions must be numbers, got val_fraction={val_fraction!r}, "
                                 f"test_fraction={test_fraction!r}", fix=fix) from None
    if not (math.isfinite(vf) and math.isfinite(tf)) or vf < 0 or tf < 0 or vf + tf >= 1:
        raise GraphrelInputError(f"invalid split fractions val_fraction={vf}, test_fraction={tf}",
                                 fix=fix)
    # a query id's key is that of its first text, so an id stays whole whatever its rows say
    keys = text_keys(pairs.frame["query"]).groupby(pairs.frame["query_id"].to_numpy(), sort=False)\
        .transform("first").to_numpy(dtype=object)
    queries = np.asarray(sorted(set(keys)), dtype=object)
    n = len(queries)
    order = queries[np.random.default_rng(seed).permutation(n)]
    n_test, n_val = int(round(tf * n)), int(round(vf * n))
    if n and n_test + n_val >= n:
        raise GraphrelInputError(
            f"only {n} distinct queries: the split leaves none for training",
            path=pairs.source or None, fix="lower val_fraction/test_fraction or use more queries")
    groups = {"test": order[:n_test], "val": order[n_test:n_test + n_val],
              "train": order[n_test + n_val:]}
    return {name: pairs.subset(pd.Series(keys).isin(set(groups[name])).to_numpy())
            for name in ("train", "val", "test")}


#: Splits whose queries are held out of training (evaluated, or context of evaluated queries).
HELD_OUT_SPLITS = ("val", "test", "test_context")


def training_pairs(pairs: pd.DataFrame) -> np.ndarray:
    """(N,) bool: the pairs a student trains on: ``train`` pairs, and ``transfer`` pairs of
    every query with no held-out pair (a training query, or a query the transfer set added
    that no split holds, e.g. one cut from a product title).

    Args:
        pairs: a run's pairs with ``query_id`` and ``split``.
    """
    split = pairs["split"]
    held_out = pairs.loc[split.isin(HELD_OUT_SPLITS), "query_id"].unique()
    return ((split == "train") | ((split == "transfer") & ~pairs["query_id"].isin(held_out))).to_numpy()
