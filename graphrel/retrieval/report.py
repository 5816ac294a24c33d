"""Evaluation and timing of retriever directories, and the report section "retrieval".

Every retriever is evaluated on the same test queries (recall@10/100/1000, NDCG@10 via
:func:`graphrel.retrieval.measures.evaluation.retrieval_metrics`, its top 1000 written as a TREC run
file; with a :class:`~graphrel.retrieval.measures.judged_only.JudgedOnly`, also the 95% intervals of
recall@10, recall@100 and NDCG@10 (paired bootstrap over queries) and the judged-only figures
on its condensed lists, Sakai 2007), then all are timed in one loop with the same protocol: a warm-up on other (validation)
queries, then ``repeats`` rounds, each running every retriever once over every test query
(interleaved, so a change of load on a shared machine falls on all alike), once for the query
encoder alone (``query_encodings_per_second``) and once for encoding + exact search of the top
``timing_k`` over the whole catalogue (``queries_per_second``); the median of each is reported.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from graphrel.retrieval.measures.evaluation import RECALL_CUTOFFS, retrieval_metrics, run_frame, write_trec_run
from graphrel.retrieval.measures.judged_only import figure_cell, interval_cell
from graphrel.retrieval.serving.retriever import Retriever

log = logging.getLogger("graphrel")

DEPTH = max(RECALL_CUTOFFS)


def _index_cost(retriever: Retriever, directory: Path) -> tuple[float, int]:
    """Seconds to build the search index from the saved products, and its size in bytes (a
    hybrid: the sums of its inputs')."""
    if getattr(retriever, "inputs", None):
        costs = [_index_cost(r, d) for r, d in zip(retriever.inputs, retriever.input_directories)]
        return float(sum(c[0] for c in costs)), int(sum(c[1] for c in costs))
    if getattr(retriever, "xmc", None) is not None:  # the model is trained, not indexed
        return 0.0, int(retriever.xmc.size_bytes())
    start = time.perf_counter()
    if retriever.bm25 is not None:
        from graphrel.retrieval.search.bm25 import BM25Index

        index = BM25Index(retriever.catalogue.texts, k1=retriever.manifest.get("k1", 1.5), b=retriever.manifest.get("b", 0.75))
        seconds = time.perf_counter() - start
        return seconds, int(sum(index.model.scores[k].nbytes for k in ("data", "indices", "indptr")))
    from graphrel.retrieval.search.index import ExactIndex

    vectors = np.load(directory / "product_embeddings.npy")
    ExactIndex(vectors)
    return time.perf_counter() - start, int(vectors.nbytes)


def evaluate_retrievers(directories: dict, judged, runs_dir: Path, *, warmup, repeats: int, timing_k: int,
                        threads: int, judged_only=None) -> dict:
    """Quality and speed of every retriever directory on the judged test queries.

    Args:
        directories: name -> retriever directory, in report order.
        judged: :class:`~graphrel.retrieval.search.catalogue.JudgedQueries`.
        runs_dir: where ``NAME.trec`` run files go.
        warmup: queries run once before each retriever's timing.
        repeats: timed runs (median), >= 1.
        timing_k: search depth timed.
        threads: faiss threads.
        judged_only: a :class:`~graphrel.retrieval.measures.judged_only.JudgedOnly` of ``judged``: each
            entry also gets ``intervals`` (95% intervals of its recall@10, recall@100, NDCG@10)
            and ``judged_only`` (its figures on the condensed lists, with intervals); None:
            neither.

    Returns:
        name -> ``recall@10, recall@100, recall@1000, ndcg@10, precision@10,
        query_encodings_per_second, queries_per_second, parameters, teacher, index_build_seconds,
        index_bytes`` (and ``intervals``: ``{"recall@10": [low, high], "recall@100": ...,
        "ndcg@10": ...}``, ``judged_only``: ``{"recall@10", ..., "intervals": {"recall@10": [low,
        high], ...}}``); figures in [0, 1].
    """
    entries, loaded = {}, {}
    for name, directory in directories.items():
        retriever = Retriever.load(directory, threads=threads)
        indices, scores = retriever.search_rows(list(judged.queries), min(DEPTH, len(retriever.catalogue)))
        run = run_frame(judged.query_ids, retriever.catalogue.product_ids, indices, scores)
        write_trec_run(run, Path(runs_dir) / f"{name}.trec", tag=name)
        metrics = retrieval_metrics(run, judged.qrels)
        build_seconds, index_bytes = _index_cost(retriever, Path(directory))
        entries[name] = {**{k: v for k, v in metrics.items() if k != "queries"},
                         "parameters": int(retriever.manifest.get("parameters", 0)),
                         "teacher": retriever.manifest.get("teacher"),
                         "index_build_seconds": build_seconds, "index_bytes": index_bytes}
        if judged_only is not None:
            entries[name]["intervals"] = judged_only.intervals(run)
            entries[name]["judged_only"] = judged_only.figures(run)
        loaded[name] = retriever
        log.info("retrieval: %s recall@100 %.3f ndcg@10 %.3f", name, metrics["recall@100"], metrics["ndcg@10"])
    # one timing loop, same protocol for all: every retriever warmed up, then the repeats
    # interleaved (round r times each retriever once), so a change of load on the shared
    # machine falls on every retriever alike; the median of each retriever's runs is reported
    queries = list(judged.queries)
    for retriever in loaded.values():
        retriever.search_rows(list(warmup) or queries[:64], min(timing_k, len(retriever.catalogue)))
    runs: dict = {name: [] for name in loaded}
    for _ in range(repeats):
        for name, retriever in loaded.items():
            runs[name].append(retriever.time_search(queries, timing_k, repeats=1, warmup=[]))
    for name, timings in runs.items():
        entries[name].update({key: float(np.median([t[key] for t in timings])) for key in timings[0]})
    return entries


def retrieval_markdown(entries: dict, meta: dict, extra_sections=()) -> str:
    """The report section "Retrieval": one row per retriever, how it was measured, then the
    ``extra_sections`` (markdown: two-stage, index comparison, teacher geometry)."""
    lines = ["## Retrieval", "",
             f"{meta['test_queries']:,} unseen test queries with at least one judged-relevant product "
             f"(label >= {meta['relevance_threshold']:g}; {meta['test_queries_without_relevant']} test queries "
             f"have none and are left out), catalogue of {meta['catalogue_products']:,} products. "
             "**Unjudged products count as misses**: a retriever is credited only for the products raters judged, "
             "so compare systems, not absolute values." + (
                 " Brackets: 95% interval, paired bootstrap over the test queries (the same draws for every row)."
                 if any(e.get("intervals") for e in entries.values()) else ""), "",
             "| retriever | teacher | recall@10 | recall@100 | recall@1000 | NDCG@10 | P@10 | % teacher recall@100 "
             "| query parameters | query encodings/s | queries/s | index build s | index MB |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, e in entries.items():
        teacher = e.get("teacher")
        share = (f"{100 * e['recall@100'] / entries[teacher]['recall@100']:.1f}%"
                 if teacher in entries and entries[teacher]["recall@100"] else "")
        lines.append(f"| {name} | {teacher or ''} | {figure_cell(e, 'recall@10')} | {figure_cell(e, 'recall@100')} | "
                     f"{e['recall@1000']:.3f} | {figure_cell(e, 'ndcg@10')} | "
                     f"{e.get('precision@10', float('nan')):.3f} | {share} | "
                     f"{e['parameters']:,} | "
                     f"{e['query_encodings_per_second']:,.0f} | {e['queries_per_second']:,.0f} | "
                     f"{e['index_build_seconds']:.2f} | {e['index_bytes'] / 2**20:.1f} |")
    c = meta.get("config", {})
    lines += ["", f"Ties are broken by product id. Speeds: one run, every retriever alike: warm-up on "
              f"{c.get('warmup_queries', '?')} validation queries, then the median of {c.get('timing_repeats', '?')} "
              f"runs over the test queries, interleaved (each round runs every retriever once); queries/s = query encoding + exact search (faiss IndexFlatIP, or "
              f"BM25 over every product) of the top {c.get('timing_k', '?')}, {c.get('threads', '?')} threads. "
              "Query parameters: the query-side encoder (BM25: 0); products are encoded offline. "
              "The embeddistill_* rows are the loss ablation of the asymmetric student (label = in-batch softmax, "
              "score = in-batch score distillation from the dual encoder, embedding = L2 query embedding matching). "
              "Blend and Match rows (when built): xmc = the extreme multi-label classifier alone (napkinxc "
              "probabilistic label tree on TF-IDF query n-grams; parameters estimated from its saved size; it can "
              "only return products it saw as labels); blend_and_match* = the dual encoder trained with the XMC "
              "top-K as extra weighted positives (_k / _w: the ablation of K and of the XMC weight); "
              "dual_encoder_xmc_kd = plain score distillation from the XMC; fusion_* = both models served, "
              "ranked by reciprocal rank fusion / CombSUM (timed in their own loop). "
              "hybrid = BM25 fused with one dense retriever, the fusion chosen on validation queries (below).", ""]
    lines += judged_only_markdown(entries)
    lines += [section.rstrip() + "\n" for section in extra_sections]
    return "\n".join(lines)


def judged_only_markdown(entries: dict) -> list[str]:
    """Lines of the judged-only table: every entry with ``judged_only``, beside its main figures
    (no lines when none has them)."""
    rows = [(name, e) for name, e in entries.items() if e.get("judged_only")]
    if not rows:
        return []
    lines = ["### Judged-only figures", "",
             "Judged-only (condensed-list evaluation, Sakai, \"Alternatives to Bpref\", SIGIR 2007): every product "
             "without a human judgement for the query is removed from each ranking before scoring, the rest keep "
             "their order; relevance, gains and recall's denominator are the main table's, which counts unjudged "
             "products as misses. Brackets: 95% interval, paired bootstrap over queries.", "",
             "| retriever | recall@10 | judged-only recall@10 | NDCG@10 | judged-only NDCG@10 |",
             "|---|---|---|---|---|"]
    for name, e in rows:
        lines.append(f"| {name} | {e['recall@10']:.3f} | {interval_cell(e['judged_only'], 'recall@10')} | "
                     f"{e['ndcg@10']:.3f} | {interval_cell(e['judged_only'], 'ndcg@10')} |")
    return lines + [""]



def hybrid_markdown(entry: dict) -> str:
    """The report's hybrid section: the fusion chosen on validation queries, its validation
    figures beside its inputs', and its test differences from each input with 95% intervals."""
    s, v = entry["setting"], entry["setting"]["validation"]
    lexical, dense = s["inputs"]
    what = (f"RRF, k {s['rrf_k']}" if s["method"] == "rrf" else
            f"weighted sum of {s['norm']}-normalised scores, {1 - s['weight']:.1f} x {lexical} + "
            f"{s['weight']:.1f} x {dense}")
    if v.get("queries"):
        figures = " ".join(f"{name} {f['recall@100']:.3f} / {f['ndcg@10']:.3f};" for name, f in
                           {"hybrid": v["figures"], **v["inputs"]}.items())
        chosen = (f"chosen on {v['queries']:,} validation queries (never a test query) by recall@100, ties by "
                  f"NDCG@10, among RRF and weighted sums (dense weight 0.1 to 0.9) of min-max, zmuv (z-score) and "
                  f"sum normalised scores. Validation recall@100 / NDCG@10: {figures.rstrip(';')}.")
    else:
        chosen = "not chosen: the run has no validation query with a relevant product (RRF by default)."
    lines = ["### Hybrid lexical + dense retrieval", "",
             f"`hybrid` = `{lexical}` fused with `{dense}` (each one's top {s['depth']:,} per query) by "
             f"`ranx.fuse` (Bassani, ECIR 2022): **{what}**, {chosen} Served by `graphrel retrieve --model "
             "RUN/retrieval/retrievers/hybrid` (its `hybrid.json`). Differences on the test queries, hybrid minus "
             "input, with 95% intervals (paired bootstrap over queries):", "",
             "| hybrid minus | recall@100 | NDCG@10 |", "|---|---|---|"]
    for name, d in entry.get("differences", {}).items():
        cells = [f"{d[k]['difference']:+.3f} [{d[k]['interval'][0]:+.3f}, {d[k]['interval'][1]:+.3f}]"
                 for k in ("recall@100", "ndcg@10")]
        lines.append(f"| {name} | {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"
