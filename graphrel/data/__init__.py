"""Data: files, tables and graphs (no Lightning, no run-directory layout).

The pairs API documented in README.md and data/README.md: the loaders
(:mod:`graphrel.data.sources`), their table (:mod:`graphrel.data.schema`) and the
query-disjoint split (:mod:`graphrel.data.split`); loading by dataset kind in
:mod:`graphrel.data.datasets`.
"""

from graphrel.data.datasets import load_dataset
from graphrel.data.schema import RelevancePairs
from graphrel.data.sources import load_esci, load_home_depot, load_pairs
from graphrel.data.split import split_by_query

__all__ = [
    "RelevancePairs",
    "load_dataset",
    "load_esci",
    "load_home_depot",
    "load_pairs",
    "split_by_query",
]
