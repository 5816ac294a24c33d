"""The two-stage system a relevance team runs, evaluated: a retriever's top k per test query,
re-ranked by pair models (the k-order graph student, the cross-encoder teacher).

Every re-ranker re-orders the same retrieved lists, so recall@k at the retrieval depth is the
first stage's; NDCG@10 and recall@10 say what the re-ranker adds. Test queries are new to the
log: a graph student reads the run's ``graph_new_query.pt`` (no edge of any test query), so
no evaluated pair is an edge of the graph it scores with. Each re-ranked list is cached
(``two_stage/RETRIEVER+MODEL.parquet``, with the key of its inputs), so a resumed stage does
not score again; pairs/s is the scoring time of that one pass (texts to scores, the model
loaded, no warm-up), a rough figure: the main report times students properly. Judged-only
figures (:mod:`graphrel.retrieval.measures.judged_only`) score each list with its unjudged products removed;
the main NDCG@10 and recall@10 get the same 95% intervals (paired bootstrap over queries).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pandas as pd

from graphrel.retrieval.measures.evaluation import retrieval_metrics
from graphrel.retrieval.measures.judged_only import figure_cell, interval_cell
from graphrel.retrieval.serving.rerank import load_pair_scorer, rerank
from graphrel.retrieval.serving.retriever import Retriever
from graphrel.run import write_parquet

log = logging.getLogger("graphrel")

#: Judged-only figures of the two-stage table (the table's own figures).
JUDGED_ONLY_KEYS = ("ndcg@10", "recall@10")


def two_stage_metrics(retriever_dir: str | Path, judged, pair_models: dict, *, depth: int, cache_dir: str | Path,
                      key: str, threads: int | None = None, judged_only=None) -> dict:
    """NDCG@10 and recall@10 of a retriever's top ``depth``, alone and re-ranked by each pair model.

    Args:
        retriever_dir: the first stage (a retriever directory).
        judged: :class:`~graphrel.retrieval.search.catalogue.JudgedQueries` (the test queries and qrels).
        pair_models: name -> ``(directory, graph)``: a pair model directory
            (:func:`~graphrel.retrieval.serving.rerank.load_pair_scorer`) and the ``graph.pt`` a graph
            student reads (None for text-only models and the teacher).
        depth: products retrieved per query and re-ranked (>= 1; clamped to the catalogue).
        cache_dir: where the re-ranked lists are kept.
        key: fingerprint of everything upstream (retriever, models); a cached list is reused
            only under the same key and depth.
        threads: faiss threads of the first stage.
        judged_only: a :class:`~graphrel.retrieval.measures.judged_only.JudgedOnly` of ``judged``: the
            first stage and each re-ranker also get ``judged_only`` = ``{"ndcg@10", "recall@10",
            "intervals": {"ndcg@10": [low, high], "recall@10": [low, high]}}`` (the top ``depth``
            with every unjudged product removed; Sakai 2007) and ``intervals`` = ``{"ndcg@10": [low,
            high], "recall@10": [low, high]}`` of the main figures; None: neither.

    Returns:
        ``{"retriever", "depth", "first_stage": {"ndcg@10", "recall@10", "recall@depth"},
        "rerankers": {name: {"ndcg@10", "recall@10", "pairs", "pairs_per_second", "paths"}}}``
        (and each ``judged_only`` and ``intervals``, and each re-ranker's ``differences``:
        ``{"first_stage" or another re-ranker: {"ndcg@10": {"difference", "interval"}}}``, its
        NDCG@10 minus theirs with a 95% interval); metrics in [0, 1], pairs/s of the single
        scoring pass (None when read from the cache), ``paths`` the pairs each scoring path took (the scorer's
        ``paths()``; ``{}`` for the teacher).

    Raises:
        ValueError: depth < 1.
        GraphrelInputError: a pair model directory that is neither a student nor a teacher.
    """
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    retriever = Retriever.load(retriever_dir, threads=threads)
    run = retriever.search(list(judged.queries), depth, query_ids=list(judged.query_ids))
    first = retrieval_metrics(run, judged.qrels)
    out = {"retriever": retriever.name, "depth": int(run["rank"].max()),
           "first_stage": {"ndcg@10": first["ndcg@10"], "recall@10": first["recall@10"],
                           "recall@depth": _recall_at(run, judged.qrels)},
           "rerankers": {}}
    if judged_only is not None:
        out["first_stage"]["intervals"] = judged_only.intervals(run, JUDGED_ONLY_KEYS)
        out["first_stage"]["judged_only"] = judged_only.figures(run, JUDGED_ONLY_KEYS)
    queries = dict(zip(judged.query_ids, judged.queries))
    texts = dict(zip(retriever.catalogue.product_ids, retriever.catalogue.texts))
    cache_dir = Path(cache_dir)
    lists = {}
    for name, (directory, graph) in pair_models.items():
        path = cache_dir / f"{retriever.name}+{name}.parquet"
        key_path = path.with_suffix(".key")
        wanted = json.dumps({"key": key, "depth": depth, "queries": len(judged)})
        speed = None
        paths_path = path.with_suffix(".paths.json")
        if (path.is_file() and key_path.is_file() and key_path.read_text() == wanted
                and paths_path.is_file()):
            reranked = pd.read_parquet(path)
            paths = json.loads(paths_path.read_text())
        else:
            scorer = load_pair_scorer(directory, graph=graph)
            start = time.perf_counter()
            reranked = rerank(run, queries, texts, scorer)
            speed = len(run) / (time.perf_counter() - start)
            # pairs per scoring path: a graph student's text fallback takes the pairs of queries
            # the graph does not hold (every test query under new_query)
            paths = scorer.paths(run["query_id"].astype(str), run["product_id"].astype(str),
                                 queries=[queries[q] for q in run["query_id"]]) \
                if hasattr(scorer, "paths") else {}
            write_parquet(reranked, path)
            paths_path.write_text(json.dumps(paths))
            key_path.write_text(wanted)
        lists[name] = reranked
        metrics = retrieval_metrics(reranked, judged.qrels)
        out["rerankers"][name] = {"ndcg@10": metrics["ndcg@10"], "recall@10": metrics["recall@10"],
                                  "pairs": len(reranked), "pairs_per_second": speed, "paths": paths}
        if judged_only is not None:
            out["rerankers"][name]["intervals"] = judged_only.intervals(reranked, JUDGED_ONLY_KEYS)
            out["rerankers"][name]["judged_only"] = judged_only.figures(reranked, JUDGED_ONLY_KEYS)
        log.info("retrieval: %s top %d re-ranked by %s: NDCG@10 %.3f (first stage %.3f)", retriever.name,
                 out["depth"], name, metrics["ndcg@10"], first["ndcg@10"])
    if judged_only is not None:  # each re-ranker against the first stage and every other re-ranker
        for name, reranked in lists.items():
            others = {"first_stage": run, **{n: r for n, r in lists.items() if n != name}}
            out["rerankers"][name]["differences"] = judged_only.differences(reranked, others, keys=("ndcg@10",))
    return out


def _recall_at(run: pd.DataFrame, qrels: dict) -> float:
    """Mean over the qrels' queries of the share of relevant products anywhere in the run."""
    found = run.groupby(run["query_id"].astype(str))["product_id"].agg(lambda s: set(map(str, s)))
    shares = [len(found.get(str(q), set()) & set(map(str, rel))) / len(rel) for q, rel in qrels.items() if rel]
    return float(sum(shares) / len(shares)) if shares else 0.0


def two_stage_markdown(result: dict, teacher: str = "teacher") -> str:
    """The report's two-stage table: the first stage, then one row per re-ranker."""
    depth, first = result["depth"], result["first_stage"]
    rows = [f"| {result['retriever']} alone | {figure_cell(first, 'ndcg@10')} | {figure_cell(first, 'recall@10')} | "
            f"{_judged(first)} |  |  |"]
    reference = result["rerankers"].get(teacher, {}).get("ndcg@10")
    for name, m in result["rerankers"].items():
        share = f"{100 * m['ndcg@10'] / reference:.1f}%" if reference else ""
        speed = f"{m['pairs_per_second']:,.0f}" if m.get("pairs_per_second") else "(cached)"
        paths = m.get("paths") or {}
        if paths.get("text_fallback") and not paths.get("graph"):  # the whole computation is the text student's
            name, speed = (f"{name} (= its text-only student: text fallback for {paths['text_fallback']:,} of "
                           f"{paths['text_fallback']:,} pairs)"), "–"
        elif paths.get("text_fallback"):
            name = f"{name} (text fallback for {paths['text_fallback']:,} of {m['pairs']:,} pairs)"
        rows.append(f"| {result['retriever']} top {depth} -> {name} | {figure_cell(m, 'ndcg@10')} | "
                    f"{figure_cell(m, 'recall@10')} | "
                    f"{_judged(m)} | {share} | {speed} |")
    return "\n".join([
        "### Two-stage: retrieve, then re-rank", "",
        f"The {result['retriever']} retriever's top {depth} per test query (recall@{depth} "
        f"{first['recall@depth']:.3f}: no re-ranker can find more), re-ranked by each pair model. "
        "The k-order student reads the graph without any test query's edges (protocol `new_query`). "
        "Judged-only: every unjudged product removed from each list before scoring (condensed list, Sakai 2007; "
        "95% interval, paired bootstrap over queries, as for the main figures); the other figures count "
        "unjudged products as misses.", "",
        f"| system | NDCG@10 | recall@10 | judged-only NDCG@10 | judged-only recall@10 "
        f"| % of {teacher} re-ranker NDCG@10 | pairs/s (one pass) |",
        "|---|---|---|---|---|---|---|", *rows, "", *_differences(result)])


def _differences(result: dict) -> list[str]:
    """One line per re-ranker: its NDCG@10 minus the first stage's and each other re-ranker's."""
    lines = []
    for name, m in result["rerankers"].items():
        if not m.get("differences"):
            continue
        parts = [f"{'the first stage' if other == 'first_stage' else other} {d['ndcg@10']['difference']:+.4f} "
                 f"[{d['ndcg@10']['interval'][0]:+.4f}, {d['ndcg@10']['interval'][1]:+.4f}]"
                 for other, d in m["differences"].items()]
        lines.append(f"- NDCG@10 of {name} minus: " + "; ".join(parts) + " (95%, paired bootstrap over queries).")
    return [*lines, ""] if lines else []


def _judged(figures: dict) -> str:
    """The judged-only NDCG@10 and recall@10 cells of one row (``–`` without them)."""
    judged = figures.get("judged_only")
    return f"{interval_cell(judged, 'ndcg@10')} | {interval_cell(judged, 'recall@10')}"
