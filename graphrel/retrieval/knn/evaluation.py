"""The CE k-NN evaluation: ``run_knn_evaluation(run_dir, output_dir, config)``.

Reads a finished pipeline run (``pairs.parquet``, ``teacher/``) and its retrieval stage's
``dual_encoder`` and ``bm25`` retrievers (read only), and writes under ``output_dir``::

    items.parquet, queries.parquet   the item set (``judged``: a judged product of a test query,
                                     else sampled) and the test / training queries
    scores/ground_truth/             exact CE scores, test queries x items (chunked, resumable)
    scores/index_SOURCE/             the index's sparse CE scores G per source (resumable)
    scores/anchors/                  CUR's dense anchor-query rows (resumable)
    index/mf_ind/, index/mf_trns/    the headline AXN indexes (``graphrel knn`` searches them)
    knn.json, knn.md, knn.png        metrics (``metrics.json``'s ``knn`` entries + the full grid,
                                     targets), the report section, recall against CE calls

Every method is searched on the one grid of budgets ``config.budgets`` and spends exactly B CE
calls per test query at each (checked); its index CE calls (AXN k_d x |Q_train|, ANNCUR / adaCUR
k_q x N, retrieve-and-rerank none) are one-off and reported apart. The test queries' search calls
are served from the cached ground truth. The item set (its size, the catalogue's, its judged and
sampled products) is in every table and in the metrics: Top-k-Recall is against the exact CE
top-k over the item set, not over the catalogue, unless ``n_items`` is None / 0. Yadav et al.,
"Adaptive Retrieval and Scalable Indexing for k-NN Search with Cross-Encoders" (ICLR 2024,
arXiv 2405.03651); a reconstruction.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from graphrel.errors import GraphrelInputError
from graphrel.retrieval.knn import methods as M
from graphrel.retrieval.knn.config import MODELS, KnnConfig
from graphrel.retrieval.knn.data import bm25_scores, dual_encoder_scores, knn_data, ranking
from graphrel.retrieval.knn.index_build import fit_index, index_entries
from graphrel.retrieval.knn.report import METHODS, item_set_note, knn_markdown, knn_targets, plot_knn
from graphrel.retrieval.knn.score_cache import cached_pair_scores, cached_score_matrix, text_key
from graphrel.retrieval.knn.search import cur_item_embeddings

log = logging.getLogger("graphrel")


def _file_digest(*paths: Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        if path.is_file():
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()[:16]


def _inputs(run_dir: Path, config: KnnConfig):
    """The run's pairs and the dual encoder / BM25 retrievers, checked."""
    from graphrel.retrieval.serving.retriever import Retriever

    retrievers = Path(config.retrievers_dir) if config.retrievers_dir else run_dir / "retrieval" / "retrievers"
    for path, what in ((run_dir / "pairs.parquet", "run pairs"), (run_dir / "teacher" / "config.json", "teacher")):
        if not path.is_file():
            raise GraphrelInputError(f"no {what} ({path.name})", path=path.parent,
                                     fix="pass a finished pipeline run directory")
    dual_encoder, bm25 = Retriever.load(retrievers / "dual_encoder"), Retriever.load(retrievers / "bm25")
    if dual_encoder.query_encoder is None or bm25.bm25 is None:
        raise GraphrelInputError("expected a dense dual_encoder and a bm25 retriever", path=retrievers,
                                 fix="run the retrieval stage first (or set knn.retrievers_dir)")
    if list(dual_encoder.catalogue.product_ids) != list(bm25.catalogue.product_ids):
        raise GraphrelInputError("the dual_encoder and bm25 retrievers have different catalogues", path=retrievers,
                                 fix="rebuild both with the same retrieval stage")
    return pd.read_parquet(run_dir / "pairs.parquet"), dual_encoder, bm25, retrievers


def run_knn_evaluation(run_dir: str | Path, output_dir: str | Path, config: KnnConfig | None = None) -> dict:
    """Build the indexes, run every method at every budget, write the report.

    Args:
        run_dir: a finished pipeline run with its retrieval stage (read only).
        output_dir: where everything goes (created; not ``run_dir`` itself), e.g. ``RUN/knn``.
        config: options (validated); default :class:`KnnConfig`.

    Returns:
        ``{"knn": entries, "grid": rows, "targets": ..., "evaluation": meta}`` (also ``knn.json``;
        ``meta["item_set"]`` as below); entries = ``metrics.json``'s ``knn``: method ->
        ``ce_calls_index``, ``index_seconds``, ``settings``, ``item_set`` (``{"items", "catalogue",
        "judged", "sampled", "test_queries", "whole_catalogue", "note"}``: N, the catalogue's
        size, judged products of the test queries and randomly sampled ones among the N, Q_test,
        N == catalogue, the sentence the tables print) and per budget ``"B=<n>"`` of ``budgets``:
        ``top1_recall``, ``top10_recall``, ``top100_recall`` (where k <= B; in [0, 1]),
        ``ce_calls_search`` (mean CE calls per query, exactly B), ``search_seconds`` (per query,
        CE excluded: served from the cache), ``search_seconds_with_ce`` (plus the CE at the
        teacher's measured pairs/s). Methods: ``axn_mf_ind``, ``axn_mf_trns``,
        ``retrieve_rerank_de``, ``retrieve_rerank_bm25``, ``anncur``, ``adacur``.

    Raises:
        GraphrelInputError: a bad option, a budget above the sampled item set's size, or a run
            directory missing what is read.
    """
    import torch

    from graphrel.retrieval.knn.calls import teacher_pair_scores
    from graphrel.retrieval.knn.index_store import save_knn_index
    from graphrel.run import atomic_path, write_json, write_parquet
    from graphrel.scoring.teacher_labelling import load_teacher

    config = (config or KnnConfig()).check()
    run_dir, output_dir = Path(run_dir), Path(output_dir)
    if output_dir.resolve() == run_dir.resolve():
        raise GraphrelInputError("the knn output directory is the run directory", path=output_dir,
                                 fix="pass a sub-directory, e.g. RUN/knn")
    torch.set_num_threads(config.threads)
    started = time.perf_counter()
    pairs, dual_encoder, bm25, retrievers = _inputs(run_dir, config)
    data = knn_data(pairs, dual_encoder.catalogue, n_items=config.n_items, test_queries=config.test_queries,
                    train_queries=config.train_queries, seed=config.seed)
    q_test, q_train, n = len(data.test_queries), len(data.train_queries), len(data.items)
    if max(config.budgets) > n:
        raise GraphrelInputError(f"knn.budgets must be whole numbers <= the item set's {n} products "
                                 f"(catalogue {data.catalogue_size}), got {list(config.budgets)}",
                                 fix=f"set knn.budgets to values <= {n}")
    item_set = {**data.item_set(), "note": item_set_note(data.item_set())}
    log.info("knn: %s", item_set["note"])
    output_dir.mkdir(parents=True, exist_ok=True)
    write_parquet(pd.DataFrame({"row": np.arange(n), "catalogue_row": data.items, "product_id": data.item_ids,
                                "product_text": data.item_texts, "judged": data.judged}), output_dir / "items.parquet")
    write_parquet(pd.DataFrame({"row": np.arange(q_test + q_train), "role": ["test"] * q_test + ["train"] * q_train,
                                "query_id": np.concatenate([data.test_query_ids, data.train_query_ids]),
                                "query": data.query_texts}), output_dir / "queries.parquet")
    teacher_dir = run_dir / "teacher"
    key = text_key(_file_digest(teacher_dir / "model.safetensors", teacher_dir / "config.json"),
                   data.query_texts, data.item_texts)
    scorer = teacher_pair_scores(load_teacher(teacher_dir), data.query_texts, data.item_texts,
                                 batch_size=config.teacher_batch_size)
    scores_dir = output_dir / "scores"
    truth, truth_figures = cached_score_matrix(scorer, np.arange(q_test), n, scores_dir / "ground_truth", key=key,
                                               chunk_pairs=config.chunk_pairs, description="ground truth")
    products = np.load(retrievers / "dual_encoder" / "product_embeddings.npy")
    de_test, de_test_queries = dual_encoder_scores(dual_encoder, data.test_queries, data.items, products)
    de_train, de_train_queries = dual_encoder_scores(dual_encoder, data.train_queries, data.items, products)
    rng = np.random.default_rng(config.seed + 1)
    rankings = {"dual_encoder": ranking(de_test), "bm25": ranking(bm25_scores(bm25.bm25, data.test_queries, data.items)),
                "random": np.stack([rng.permutation(n) for _ in range(q_test)])}
    item_vectors = products[data.items]

    indexes, g_figures = {}, {}
    for source in config.index_sources:
        query_rows, item_rows = index_entries(source, de_train, config.items_per_query, seed=config.seed)
        g, g_figures[source] = cached_pair_scores(scorer, query_rows + q_test, item_rows, scores_dir / f"index_{source}",
                                                  key=key, chunk_pairs=config.chunk_pairs, description=f"index G ({source})")
        counts = [q_train] + ([m for m in config.index_query_counts if m < q_train] if source == config.index_source else [])
        for m in counts:
            keep = query_rows < m
            for model in (MODELS if m == q_train else ("mf_ind",)):
                indexes[(model, source, m)] = fit_index(
                    model, source=source, query_embeddings=de_train_queries[:m], item_embeddings=item_vectors,
                    query_rows=query_rows[keep], item_rows=item_rows[keep], scores=g[keep],
                    ce_seconds=g_figures[source]["seconds"] * keep.mean(), config=config)
    anchor_counts = sorted({min(k, q_train) for k in config.anchor_queries})
    anchors, anchor_figures = cached_score_matrix(scorer, q_test + np.arange(anchor_counts[-1]), n, scores_dir / "anchors",
                                                  key=key, chunk_pairs=config.chunk_pairs, description="CUR anchor rows")
    grid = _grid(config, truth, rankings, indexes, de_test_queries, anchors, anchor_counts, anchor_figures, q_train)
    axn_settings = {"index_source": config.index_source, "index_queries": q_train, "first_round": config.first_round,
                    "blend": config.blend, "rounds": config.report_rounds}
    entries = _entries(grid, config, axn_settings, anchor_counts[-1], truth_figures["pairs_per_second"], item_set)
    targets = knn_targets(grid, entries, axn_settings, config.report_rounds, config.budgets)
    for model in MODELS:
        fitted = indexes[(model, config.index_source, q_train)]
        save_knn_index(output_dir / "index" / model, fitted.module, name=model, run_dir=run_dir,
                       dual_encoder_dir=retrievers / "dual_encoder", bm25_dir=retrievers / "bm25", item_rows=data.items,
                       offset=fitted.offset, scale=fitted.scale,
                       extra={"index_source": config.index_source, "train_queries": q_train,
                              "items_per_query": config.items_per_query, "ce_calls_index": fitted.ce_calls,
                              "train_seconds": fitted.train_seconds, "losses": fitted.losses, "items": n})
    meta = {"test_queries": q_test, "train_queries": q_train, "items": n, "item_set": item_set,
            "items_per_query": config.items_per_query,
            "budgets": list(config.budgets), "rounds": list(config.rounds), "top_ks": sorted(config.top_ks),
            "anchor_queries": anchor_counts[-1], "axn_settings": axn_settings,
            "ground_truth": {k: truth_figures[k] for k in ("ce_calls", "seconds", "pairs_per_second")},
            "index_scores": {s: {k: f[k] for k in ("ce_calls", "seconds")} for s, f in g_figures.items()},
            "anchor_scores": {k: anchor_figures[k] for k in ("ce_calls", "seconds")},
            "training": {f"{m}/{s}/{q}": {"seconds": f.train_seconds, "losses": f.losses}
                         for (m, s, q), f in indexes.items()},
            "seconds": time.perf_counter() - started, "config": dataclasses.asdict(config)}
    result = {"knn": entries, "grid": grid, "targets": targets, "evaluation": meta}
    write_json(result, output_dir / "knn.json")
    with atomic_path(output_dir / "knn.md") as tmp:
        tmp.write_text(knn_markdown(result), encoding="utf-8")
    plot_knn(result, output_dir / "knn.png")
    return result


def _grid(config, truth, rankings, indexes, test_queries, anchors, anchor_counts, anchor_figures, q_train) -> list:
    """Every method and setting at every budget of the one grid ``config.budgets``: one row each.

    Raises:
        RuntimeError: a search spent other than exactly B CE calls on some test query (each
            spends at most B, so a total of B x Q_test means exactly B on every query).
    """
    rows, n = [], truth.shape[1]
    anchor_items = np.random.default_rng(config.seed + 2).permutation(n)

    def add(method, result, **settings):
        if result["ce_calls_search_total"] != settings["budget"] * len(truth):
            raise RuntimeError(f"knn: {method} spent {result['ce_calls_search_total']} CE calls on {len(truth)} "
                               f"queries at budget {settings['budget']}, not exactly B per query")
        rows.append({"method": method, **settings, **result})

    for budget in config.budgets:
        for name, source in (("retrieve_rerank_de", "dual_encoder"), ("retrieve_rerank_bm25", "bm25")):
            add(name, M.retrieve_rerank(truth, rankings[source], budget, config.top_ks), budget=budget, rounds=1,
                ce_calls_index=0, index_seconds=0.0)
        for (model, source, m), index in indexes.items():
            headline = source == config.index_source and m == q_train
            u_param = index.query_embeddings(test_queries)
            for first_round in (config.first_rounds if headline else [config.first_round]):
                for rounds in (config.rounds if headline else [config.report_rounds]):
                    for blend in (config.blends if headline and rounds > 1 else [config.blend]):
                        add(f"axn_{model}", M.axn(truth, rankings[first_round], budget, rounds, config.top_ks, index,
                                                  query_embeddings=u_param, blend=blend),
                            budget=budget, rounds=rounds, index_source=source, index_queries=m, first_round=first_round,
                            blend=float(blend), ce_calls_index=index.ce_calls,
                            index_seconds=index.ce_seconds + index.train_seconds)
        for k_q in anchor_counts:
            embeddings = cur_item_embeddings(anchors[:k_q])
            cost = {"anchor_queries": k_q, "ce_calls_index": k_q * n,
                    "index_seconds": anchor_figures["seconds"] * k_q / anchor_counts[-1]}
            k_i = config.anncur_anchor_items(budget)
            add("anncur", M.anncur(truth, anchor_items[:k_i], budget, config.top_ks, embeddings), budget=budget,
                rounds=2 if budget > k_i else 1, anchor_items=k_i, **cost)
            for rounds in config.rounds:
                add("adacur", M.adacur(truth, rankings[config.adacur_first_round], budget, rounds, config.top_ks,
                                       embeddings), budget=budget, rounds=rounds,
                    first_round=config.adacur_first_round, **cost)
        log.info("knn: budget %d done (%d rows)", budget, len(rows))
    return rows


def _entries(grid: list, config: KnnConfig, axn_settings: dict, anchor_queries: int, pairs_per_second,
             item_set: dict) -> dict:
    """``metrics.json``'s ``knn``: the headline row of each method at each budget (each entry
    carrying the ``item_set`` counts); the search's wall time with the CE estimated at the
    teacher's measured ground-truth throughput."""
    chosen = {"axn_mf_ind": axn_settings, "axn_mf_trns": axn_settings, "retrieve_rerank_de": {},
              "retrieve_rerank_bm25": {}, "anncur": {"anchor_queries": anchor_queries},
              "adacur": {"anchor_queries": anchor_queries, "rounds": config.report_rounds}}
    entries = {}
    for method in METHODS:
        fixed = chosen[method]
        picked = [r for r in grid if r["method"] == method and all(r.get(k) == v for k, v in fixed.items())]
        first = picked[0]
        entry = {"ce_calls_index": first["ce_calls_index"], "index_seconds": first["index_seconds"],
                 "settings": {k: first[k] for k in ("rounds", "index_source", "index_queries", "first_round",
                                                    "blend", "anchor_queries") if k in first},
                 "item_set": dict(item_set)}
        for row in picked:
            cell = {k: v for k, v in row.items()
                    if k.endswith("_recall") or k in ("ce_calls_search", "search_seconds", "anchor_items")}
            cell["search_seconds_with_ce"] = (row["search_seconds"] + row["ce_calls_search"] / pairs_per_second
                                              if pairs_per_second else None)
            entry[f"B={row['budget']}"] = cell
        entries[method] = entry
    return entries
