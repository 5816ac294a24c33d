"""Options of the CE k-NN evaluation (:func:`graphrel.retrieval.knn.evaluation.run_knn_evaluation`;
the ``knn`` section of the main job's config)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from graphrel.errors import GraphrelInputError

#: Sources of the index's sparse score matrix: each training query's dual-encoder top k_d, or k_d random items.
INDEX_SOURCES = ("dual_encoder", "random")
#: Sources of the first search round.
FIRST_ROUNDS = ("dual_encoder", "bm25", "random")
#: Matrix factorisation models of AXN.
MODELS = ("mf_ind", "mf_trns")


@dataclass
class KnnConfig:
    """Every option of the CE k-NN evaluation (checked by :meth:`check`).

    enabled: run the evaluation in the main job (``knn.enabled``, off by default: about 600k CE
        calls, 25-75 minutes on 2 shared cores); :func:`run_knn_evaluation` itself ignores it.

    Sizes (defaults: about 600k CE calls; at ~136 pairs/s on one shared core, 5,000 items and 50
    anchor queries take ~75 min, 3,000 items and 30 anchor queries ~45 min):
        n_items: products of the item set searched (>= 2): every judged product of the test
            queries plus a seeded sample of the rest of the catalogue. Every table states the
            item set's size, the catalogue's and the judged / sampled counts: a capped item set
            favours a method that finds judged products. None or 0: the whole catalogue
            (catalogue-scale search; expensive: the ground truth alone is test_queries x
            catalogue CE calls, 50 x 54,667 = 2.7M, ~5.6 h at ~136 pairs/s, and each anchor
            query of ANNCUR / adaCUR another catalogue's worth).
        test_queries: unseen test queries (split test / test_context) evaluated (>= 1).
        train_queries: training queries of the index (>= 1), |Q_train|.
        items_per_query: k_d, CE-scored products per training query in the index (>= 1, <= n_items).
        index_sources: the index's products per training query: ``dual_encoder`` (its top k_d)
            and/or ``random``; every source is built and measured.
        index_source: the source of the headline AXN entries (one of ``index_sources``).
        index_query_counts: smaller nested sets of training queries whose MF-Ind index is also
            fitted (the index-cost curve; each < ``train_queries``, may be empty).
        anchor_queries: ANNCUR / adaCUR anchor-query counts k_q (nested; each costs k_q x n_items
            CE calls; each <= ``train_queries``); the largest is the headline.
        anchor_item_share: share of the budget ANNCUR spends on its fixed anchor items (0 < s < 1;
            the rest re-ranks the approximation's top items).

    Factorisation (AdamW on the squared error of the observed entries):
        epochs (>= 1), learning_rate (> 0), batch_size (entries per step, >= 1), weight_decay (>= 0),
        gate_init (MF-Ind's skip gate before the sigmoid, finite; the paper's -5).

    Search:
        budgets: the one grid of CE calls per test query B (each >= 1, <= the item set) on which
            every method is searched and compared; each method spends exactly B search calls per
            query (index calls are one-off and reported apart); rounds: R values (each >= 1,
            <= every budget).
        report_rounds: R of the headline AXN / adaCUR entries (one of ``rounds``).
        first_rounds: first-round sources measured (``dual_encoder``, ``bm25``, ``random``);
            first_round: the headline's (one of ``first_rounds``).
        blends: lambda values measured (each in [0, 1]); blend: the headline's (one of ``blends``).
        adacur_first_round: adaCUR's first-round source (one of :data:`FIRST_ROUNDS`).
        top_ks: k of Top-k-Recall (each >= 1; reported where k <= B).

    Runtime:
        seed, teacher_batch_size (>= 1), chunk_pairs (pairs per saved chunk of CE scores, >= 1),
        threads (torch threads, >= 1), retrievers_dir (default ``RUN/retrieval/retrievers``:
        its ``dual_encoder`` and ``bm25``).
    """

    enabled: bool = False
    n_items: int | None = 5000
    test_queries: int = 50
    train_queries: int = 500
    items_per_query: int = 100
    index_sources: tuple[str, ...] = INDEX_SOURCES
    index_source: str = "dual_encoder"
    index_query_counts: tuple[int, ...] = (50, 100, 250)
    anchor_queries: tuple[int, ...] = (10, 20, 50)
    anchor_item_share: float = 0.5
    epochs: int = 10
    learning_rate: float = 5e-3
    batch_size: int = 1024
    weight_decay: float = 0.01
    gate_init: float = -5.0
    budgets: tuple[int, ...] = (50, 100, 200)
    rounds: tuple[int, ...] = (1, 5, 10)
    report_rounds: int = 5
    first_rounds: tuple[str, ...] = ("dual_encoder", "bm25")
    first_round: str = "dual_encoder"
    blends: tuple[float, ...] = (0.0, 0.8)
    blend: float = 0.0
    adacur_first_round: str = "dual_encoder"
    top_ks: tuple[int, ...] = (1, 10, 100)
    seed: int = 0
    teacher_batch_size: int = 128
    chunk_pairs: int = 25000
    threads: int = 2
    retrievers_dir: str | None = None

    def check(self) -> "KnnConfig":
        """Raise :class:`GraphrelInputError` naming the first option out of range; returns self."""
        def bad(name: str, rule: str):
            raise GraphrelInputError(f"knn.{name} must be {rule}, got {getattr(self, name)!r}",
                                     fix=f"set knn.{name} to {rule}")

        def whole(value, low: int) -> bool:
            return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= low

        def number(value) -> bool:
            return isinstance(value, (int, float, np.number)) and not isinstance(value, bool) and np.isfinite(value)

        if not isinstance(self.enabled, bool):
            bad("enabled", "true or false")
        whole_catalogue = self.n_items is None or (whole(self.n_items, 0) and self.n_items == 0)
        if not (whole_catalogue or whole(self.n_items, 2)):
            bad("n_items", "a whole number >= 2, or null / 0 for the whole catalogue")
        for name, low in (("test_queries", 1), ("train_queries", 1), ("items_per_query", 1),
                          ("epochs", 1), ("batch_size", 1), ("teacher_batch_size", 1), ("chunk_pairs", 1),
                          ("threads", 1), ("seed", 0)):
            if not whole(getattr(self, name), low):
                bad(name, f"a whole number >= {low}")
        if self.items_per_query > (self.n_items or self.items_per_query):
            bad("items_per_query", f"a whole number <= n_items ({self.n_items})")
        for name in ("budgets", "rounds", "top_ks", "anchor_queries"):
            values = getattr(self, name)
            if not isinstance(values, (list, tuple)) or not values or not all(whole(v, 1) for v in values):
                bad(name, "a non-empty list of whole numbers >= 1")
            if len(set(values)) != len(values):
                bad(name, "a list without repeated values")
        if not isinstance(self.index_query_counts, (list, tuple)) or \
                not all(whole(v, 1) and v < self.train_queries for v in self.index_query_counts):
            bad("index_query_counts", f"a list of whole numbers from 1 to train_queries - 1 ({self.train_queries - 1})")
        if max(self.anchor_queries) > self.train_queries:
            bad("anchor_queries", f"whole numbers <= train_queries ({self.train_queries})")
        if max(self.rounds) > min(self.budgets):
            bad("rounds", f"whole numbers <= the smallest budget ({min(self.budgets)}): a round scores >= 1 product")
        if max(self.budgets) > (self.n_items or max(self.budgets)):  # the whole catalogue: checked on the item set
            bad("budgets", f"whole numbers <= n_items ({self.n_items})")
        if self.report_rounds not in self.rounds:
            bad("report_rounds", f"one of knn.rounds {list(self.rounds)}")
        for many, one, choices in (("index_sources", "index_source", INDEX_SOURCES),
                                   ("first_rounds", "first_round", FIRST_ROUNDS)):
            values = getattr(self, many)
            if not isinstance(values, (list, tuple)) or not values or not set(values) <= set(choices) \
                    or len(set(values)) != len(values):
                bad(many, f"a non-empty list of distinct values from {list(choices)}")
            if getattr(self, one) not in values:
                bad(one, f"one of knn.{many} {list(values)}")
        if self.adacur_first_round not in FIRST_ROUNDS:
            bad("adacur_first_round", f"one of {list(FIRST_ROUNDS)}")
        if not isinstance(self.blends, (list, tuple)) or not self.blends or \
                not all(number(v) and 0 <= v <= 1 for v in self.blends):
            bad("blends", "a non-empty list of numbers in [0, 1]")
        if not number(self.blend) or self.blend not in self.blends:
            bad("blend", f"one of knn.blends {list(self.blends)}")
        if not number(self.anchor_item_share) or not 0 < self.anchor_item_share < 1:
            bad("anchor_item_share", "a number strictly between 0 and 1")
        if not number(self.learning_rate) or self.learning_rate <= 0:
            bad("learning_rate", "a finite number > 0")
        if not number(self.weight_decay) or self.weight_decay < 0:
            bad("weight_decay", "a finite number >= 0")
        if not number(self.gate_init):
            bad("gate_init", "a finite number")
        if self.retrievers_dir is not None and not isinstance(self.retrievers_dir, str):
            bad("retrievers_dir", "null or a directory path")
        return self

    def anncur_anchor_items(self, budget: int) -> int:
        """ANNCUR's anchor items at budget B: round(share x B), kept within [1, B - 1] (B >= 2)."""
        return int(min(max(1, round(self.anchor_item_share * budget)), max(1, budget - 1)))
