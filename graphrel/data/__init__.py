"""Data: query-product pairs (loaders, validation, query-disjoint split)."""

from graphrel.data.pairs import (
    ESCI_GAINS,
    PAIR_COLUMNS,
    RelevancePairs,
    load_dataset,
    load_esci,
    load_home_depot,
    load_pairs,
    split_by_query,
)

__all__ = [
    "ESCI_GAINS",
    "PAIR_COLUMNS",
    "RelevancePairs",
    "load_dataset",
    "load_esci",
    "load_home_depot",
    "load_pairs",
    "split_by_query",
]
