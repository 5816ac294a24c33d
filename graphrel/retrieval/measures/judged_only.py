"""Judged-only retrieval figures: the condensed list of Sakai (2007).

Sakai, "Alternatives to Bpref" (SIGIR 2007): for each query, every product without a human
judgement for that query is removed from the ranking, the rest keep their order (the
*condensed list*), and the usual metrics are computed on it. The main retrieval figures count
an unjudged product as a miss, so a system is penalised for finding products nobody rated (a
catalogue of tens of thousands of products, a few judged products per test query); the
judged-only figures say how well it orders the products that were judged. Both are reported.

Relevance, gains and queries are the main figures' (:func:`~graphrel.retrieval.measures.evaluation.retrieval_metrics`
computes both: binary gains, relevant = label at or above the threshold, test queries with no
relevant judged product left out). Recall keeps its denominator (the query's relevant judged
products; none is ever removed, a relevant product is judged). A query whose condensed list is
empty scores 0, as a query without results does in the main figures. Every judged-only figure
is at least its main figure (a judged product only moves up), and products without a judgement
do not change it, wherever they are ranked. Intervals: 95%, the paired bootstrap over queries
(:class:`graphrel.intervals.PairedBootstrap`), the same query draws for every system of a stage.

The same draws give the main figures (unjudged products as misses) their intervals
(:meth:`JudgedOnly.intervals`: recall@10, recall@100, NDCG@10 of every entry) and the
differences between two systems on the same queries (:meth:`JudgedOnly.differences`: the
interval of the mean per-query difference, paired).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from graphrel.intervals import PairedBootstrap
from graphrel.retrieval.search.catalogue import TEST_SPLITS
from graphrel.retrieval.measures.evaluation import per_query_metrics, read_trec_run, retrieval_metrics

#: Bootstrap resamples of the judged-only intervals.
RESAMPLES = 1000
#: Main figures of every retrieval entry given a 95% interval (``entry["intervals"]``).
INTERVAL_KEYS = ("recall@10", "recall@100", "ndcg@10")
#: Main figures of the differences between two systems (``entry["differences"]``).
DIFFERENCE_KEYS = ("recall@100", "ndcg@10")


def judged_products(pairs: pd.DataFrame, *, splits=TEST_SPLITS) -> dict:
    """query id -> the products a human judged for it (a label that is not NaN).

    Args:
        pairs: a run's pairs (``query_id``, ``product_id``, ``label``, ``split``), test labels
            joined (:func:`graphrel.run.load_run_pairs` with ``test_labels``).
        splits: the splits whose pairs are judged pairs of test queries.

    Returns:
        ``{query_id: {product_id, ...}}``, ids as strings; judged non-relevant products included.

    Raises:
        KeyError: a column is missing.
    """
    judged = pairs[pairs["split"].isin(list(splits)) & pairs["label"].notna()]
    return {str(q): set(map(str, g)) for q, g in judged.groupby("query_id", sort=True)["product_id"]}


def condensed_run(run: pd.DataFrame, judged: dict) -> pd.DataFrame:
    """The condensed list of every query: ``run`` with only its judged (query, product) rows.

    Args:
        run: ``query_id, rank, product_id`` and any other columns (a ranking, as
            :func:`~graphrel.retrieval.measures.evaluation.run_frame` or a re-ranked list).
        judged: query id -> judged product ids (as strings; :func:`judged_products`).

    Returns:
        A new frame with ``run``'s columns: each query's judged products in their order in
        ``run``, ranks renumbered 1..m; queries in their order of first appearance. ``run`` is
        not modified.
    """
    keep = np.fromiter((str(p) in judged.get(str(q), ()) for q, p in zip(run["query_id"], run["product_id"])),
                       dtype=bool, count=len(run))
    out = run[keep]
    order = {q: i for i, q in enumerate(dict.fromkeys(out["query_id"]))}
    out = (out.assign(_q=out["query_id"].map(order)).sort_values(["_q", "rank"], kind="stable")
           .drop(columns="_q").reset_index(drop=True))
    out["rank"] = out.groupby(out["query_id"], sort=False).cumcount().to_numpy() + 1
    return out


class JudgedOnly:
    """Judged-only figures and their intervals for every system evaluated on one set of queries,
    and the intervals of the main figures and of differences, on the same query draws.

    Args:
        qrels: query id -> relevant product ids (``JudgedQueries.qrels``); queries without one
            are left out, as the main figures leave them out.
        judged: query id -> judged product ids (:func:`judged_products`); each query's relevant
            products count as judged even when missing here.
        resamples, seed, confidence: of the :class:`~graphrel.intervals.PairedBootstrap` over
            the queries (>= 1; any int; in (0, 1)).

    Raises:
        ValueError: no query with a relevant product, or a bad bootstrap option.
    """

    def __init__(self, qrels: dict, judged: dict, *, resamples: int = RESAMPLES, seed: int = 0,
                 confidence: float = 0.95) -> None:
        self.qrels = {str(q): set(map(str, rel)) for q, rel in qrels.items() if rel}
        if not self.qrels:
            raise ValueError("judged-only figures need at least one query with a relevant product")
        self.judged = {str(q): set(map(str, products)) for q, products in judged.items()}
        for q, rel in self.qrels.items():
            self.judged[q] = self.judged.get(q, set()) | rel
        #: the evaluated query ids, sorted (the bootstrap's and the per-query figures' order)
        self.query_ids = sorted(self.qrels)
        self.bootstrap = PairedBootstrap(self.query_ids, np.zeros(len(self.query_ids)), resamples=resamples,
                                         seed=seed, confidence=confidence)

    def figures(self, run: pd.DataFrame, keys=None) -> dict:
        """Judged-only figures of a ranking, each with its 95% interval.

        Args:
            run: ``query_id, rank, product_id`` (a retriever's run or a re-ranked list).
            keys: figures of :func:`~graphrel.retrieval.measures.evaluation.retrieval_metrics` to report
                (e.g. ``("recall@10", "ndcg@10")``); None: all of them.

        Returns:
            ``{key: value, ..., "intervals": {key: [low, high], ...}}``; values in [0, 1].

        Raises:
            KeyError: a key that is not a figure of ``retrieval_metrics``.
        """
        condensed = condensed_run(run, self.judged)
        values = retrieval_metrics(condensed, self.qrels)
        per_query = per_query_metrics(condensed, self.qrels)
        keys = list(per_query.columns) if keys is None else list(keys)
        return {**{k: float(values[k]) for k in keys},
                "intervals": {k: list(self.bootstrap.mean_interval(per_query[k].to_numpy())) for k in keys}}

    def intervals(self, run: pd.DataFrame, keys=INTERVAL_KEYS) -> dict:
        """95% intervals of a ranking's main figures (unjudged products count as misses: the
        figures of :func:`~graphrel.retrieval.measures.evaluation.retrieval_metrics`), paired bootstrap
        over the queries, the draws of the judged-only intervals.

        Args:
            run: ``query_id, rank, product_id`` (a retriever's run or a re-ranked list).
            keys: figures of ``retrieval_metrics``.

        Returns:
            ``{key: [low, high], ...}``, bounds in [0, 1].

        Raises:
            KeyError: a key that is not a figure of ``retrieval_metrics``.
        """
        per_query = per_query_metrics(run, self.qrels)
        return {k: list(self.bootstrap.mean_interval(per_query[k].to_numpy())) for k in keys}

    def differences(self, run: pd.DataFrame, baselines: dict, keys=DIFFERENCE_KEYS) -> dict:
        """Main figures of ``run`` minus each baseline's on the same queries, with 95% intervals
        (paired bootstrap: the mean per-query difference on each draw of queries).

        Args:
            run: ``query_id, rank, product_id``.
            baselines: name -> another ranking of the same queries.
            keys: figures of :func:`~graphrel.retrieval.measures.evaluation.retrieval_metrics`.

        Returns:
            ``{name: {key: {"difference": d, "interval": [low, high]}}}``; d in [-1, 1] is the
            difference of the two main figures.

        Raises:
            KeyError: a key that is not a figure of ``retrieval_metrics``.
        """
        mine = per_query_metrics(run, self.qrels)
        out = {}
        for name, baseline in baselines.items():
            theirs = per_query_metrics(baseline, self.qrels)
            out[name] = {k: {"difference": float(mine[k].mean() - theirs[k].mean()),
                             "interval": list(self.bootstrap.mean_interval(mine[k].to_numpy(), theirs[k].to_numpy()))}
                         for k in keys}
        return out

    def fill(self, entries: dict, runs_dir: str | Path) -> dict:
        """Add ``judged_only`` (all figures) and, if missing, ``intervals`` (:meth:`intervals`)
        to every entry without ``judged_only``, from its run file.

        Args:
            entries: retriever name -> metrics entry (changed in place).
            runs_dir: where ``NAME.trec`` of each such entry is
                (:func:`~graphrel.retrieval.measures.evaluation.write_trec_run`).

        Returns:
            ``entries``.

        Raises:
            FileNotFoundError: an entry without judged-only figures has no run file.
        """
        for name, entry in entries.items():
            if "judged_only" not in entry:
                run = read_trec_run(Path(runs_dir) / f"{name}.trec", self.query_ids)
                entry["judged_only"] = self.figures(run)
                entry.setdefault("intervals", self.intervals(run))
        return entries


def figure_cell(figures: dict, key: str) -> str:
    """A report cell of figure ``key`` of an entry: ``"0.712 [0.690, 0.730]"`` with its interval
    (``figures["intervals"][key]``), ``"0.712"`` without one."""
    if key in figures.get("intervals", {}):
        return interval_cell(figures, key)
    return f"{figures[key]:.3f}"


def interval_cell(figures: dict | None, key: str) -> str:
    """A report cell ``"0.712 [0.690, 0.730]"``: figure ``key`` of a ``judged_only`` dict and its
    interval; ``–`` when ``figures`` is None or lacks ``key``."""
    if not figures or key not in figures:
        return "–"
    low, high = figures.get("intervals", {}).get(key, (float("nan"), float("nan")))
    return f"{figures[key]:.3f} [{low:.3f}, {high:.3f}]"
