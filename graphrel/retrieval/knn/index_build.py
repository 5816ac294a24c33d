"""Building AXN indexes: the sparse CE score matrix G of the training queries, then MF-Trns / MF-Ind.

G holds k_d items per training query, chosen by the dual encoder (its top k_d over the item
set) or at random; its CE scores cost k_d x |Q_train| calls, cached on disk
(:func:`~graphrel.retrieval.knn.score_cache.cached_pair_scores`). Indexes fitted on the first m
training queries only (the index-cost curve) reuse the same scores: their cost is k_d x m calls.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from graphrel.retrieval.search.topk import top_k
from graphrel.retrieval.knn.factorisation import (InductiveFactorisation, TransductiveFactorisation,
                                                  fit_factorisation, input_scale, standardisation)

log = logging.getLogger("graphrel")


def index_entries(source: str, train_scores: np.ndarray, items_per_query: int, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The observed entries of G: k_d item rows per training query.

    Args:
        source: ``dual_encoder`` (each query's top k_d by ``train_scores``, ties by row) or ``random``
            (k_d distinct items drawn per query, seeded).
        train_scores: (Q_train, N) dual-encoder scores of the training queries.
        items_per_query: k_d (clamped to N).

    Returns:
        query rows (Q_train x k_d,) in 0..Q_train-1, query-major, and item rows (same length).

    Raises:
        ValueError: an unknown source.
    """
    q, n = train_scores.shape
    depth = min(int(items_per_query), n)
    if source == "dual_encoder":
        items = top_k(train_scores, depth)[0]
    elif source == "random":
        rng = np.random.default_rng(seed)
        items = np.stack([rng.choice(n, size=depth, replace=False) for _ in range(q)]) if q else np.zeros((0, depth))
    else:
        raise ValueError(f"unknown index source {source!r}")
    return np.repeat(np.arange(q, dtype=np.int64), depth), np.asarray(items, dtype=np.int64).ravel()


@dataclass
class FittedIndex:
    """An AXN index ready to search.

    Attributes:
        model: ``mf_ind`` or ``mf_trns``; source: G's source; train_queries: |Q_train| used.
        module: the fitted torch module.
        item_embeddings: V, (N, d) float64 over the item set.
        offset, scale: standardisation of CE scores.
        ce_calls: k_d x |Q_train|; ce_seconds: their scoring time; train_seconds: fitting time.
        losses: training MSE per epoch (standardised scores).
    """

    model: str
    source: str
    train_queries: int
    module: torch.nn.Module
    item_embeddings: torch.Tensor
    offset: float
    scale: float
    ce_calls: int
    ce_seconds: float
    train_seconds: float
    losses: list = field(default_factory=list)

    def query_embeddings(self, dual_encoder_queries: np.ndarray) -> torch.Tensor:
        """Parametric u_param (Q, d) float64 of queries from their dual-encoder embeddings (Q, d)."""
        with torch.no_grad():
            return self.module.embed_queries(dual_encoder_queries).to(torch.float64)


def fit_index(model: str, *, source: str, query_embeddings: np.ndarray, item_embeddings: np.ndarray,
              query_rows: np.ndarray, item_rows: np.ndarray, scores: np.ndarray, ce_seconds: float, config) -> FittedIndex:
    """Fit one AXN index on observed entries of G.

    Args:
        model: ``mf_ind`` or ``mf_trns``.
        source: G's source (reported).
        query_embeddings: (Q_train, d) dual-encoder embeddings of the training queries.
        item_embeddings: (N, d) dual-encoder embeddings of the items.
        query_rows, item_rows, scores: (E,) the observed entries and their CE scores.
        ce_seconds: CE time of these entries.
        config: :class:`~graphrel.retrieval.knn.config.KnnConfig` (epochs, learning rate, batch,
            weight decay, gate init, seed).

    Raises:
        ValueError: an unknown model.
    """
    offset, scale = standardisation(scores)
    targets = (np.asarray(scores, dtype=np.float64) - offset) / scale
    root_slope = input_scale(query_embeddings, item_embeddings, query_rows, item_rows, targets)
    torch.manual_seed(config.seed)
    if model == "mf_ind":
        module = InductiveFactorisation(query_embeddings, item_embeddings, input_scale=root_slope,
                                        gate_init=config.gate_init)
    elif model == "mf_trns":
        module = TransductiveFactorisation(query_embeddings, item_embeddings, input_scale=root_slope)
    else:
        raise ValueError(f"unknown index model {model!r}")
    start = time.perf_counter()
    losses = fit_factorisation(module, query_rows, item_rows, targets, epochs=config.epochs,
                               learning_rate=config.learning_rate, batch_size=config.batch_size,
                               weight_decay=config.weight_decay, seed=config.seed)
    seconds = time.perf_counter() - start
    log.info("knn: %s on %s G (%d queries, %d entries): MSE %.3f -> %.3f in %.0f s", model, source,
             int(query_rows.max()) + 1, len(scores), losses[0], losses[-1], seconds)
    return FittedIndex(model, source, int(query_rows.max()) + 1, module, module.item_embeddings().to(torch.float64),
                       offset, scale, int(len(scores)), float(ce_seconds), seconds, losses)
