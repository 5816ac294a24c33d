"""Blend and Match in the retrieval stage: the XMC model, the BM dual encoder, the KD baseline and
rank fusion, built (or reused by build key) under ``OUTPUT/retrievers``.

:func:`build_blend_and_match` is called by the retrieval stage after the dual encoder is built;
it writes the retriever directories ``xmc``, ``blend_and_match``, ``dual_encoder_xmc_kd`` (and,
with an ablation, ``blend_and_match_k{K}`` / ``blend_and_match_w{W}``) and returns the fusion
entries ``fusion_rrf`` and ``fusion_combsum`` (the dual encoder's and the XMC model's top 1000
fused with ``ranx.fuse``, evaluated and timed by :func:`fusion_entries`) in the ``retrieval``
entry shape of ``metrics.json``. Every option is a field of
:class:`~graphrel.retrieval.config.BlendOptions`, named as the ``RetrievalConfig`` field that carries it.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import numpy as np

from graphrel.errors import GraphrelInputError
from graphrel.retrieval.config import BlendOptions
from graphrel.retrieval.serving.fusion import DEPTH, fuse_retrievers, fuse_runs

log = logging.getLogger("graphrel")


def build_xmc_retriever(pairs, catalogue, options: BlendOptions, *, threshold: float, seed: int, threads: int,
                        directory: Path, key: str):
    """Fit the XMC model on the training pairs (+ transfer pairs) and write its retriever directory."""
    from graphrel.retrieval.serving.retriever import save_xmc_retriever
    from graphrel.retrieval.build_keys import reusable as _reusable
    from graphrel.retrieval.build_keys import set_key as _set_key
    from graphrel.retrieval.encoding.xmc import XMCModel, xmc_training_examples

    if not _reusable(directory, key):
        import tempfile

        queries, labels, counts = xmc_training_examples(pairs, threshold=threshold,
                                                        transfer_threshold=options.xmc_transfer_threshold)
        with tempfile.TemporaryDirectory(dir=directory.parent) as tmp:
            model = XMCModel.fit(queries, labels, Path(tmp) / "xmc", options=options.xmc_options(seed=seed,
                                                                                               threads=threads))
            save_xmc_retriever(directory, model=model, catalogue=catalogue, extra={"pairs": counts})
        _set_key(directory, key)
        log.info("retrieval: XMC model on %d queries, %d labels in %.0f s", model.training["examples"],
                 len(model), model.training["train_seconds"])
    return XMCModel.load(directory / "xmc")


def _relevant(pairs, threshold: float) -> tuple[dict, dict]:
    """query id -> products judged relevant, and query id -> every judged product (train split)."""
    train = pairs[pairs["split"] == "train"].astype({"product_id": str})
    judged = train.groupby("query_id")["product_id"].agg(set).to_dict()
    good = train[train["label"].to_numpy(dtype=float) >= threshold - 1e-9]
    return good.groupby("query_id")["product_id"].agg(set).to_dict(), judged


def blend_examples(examples, pairs, catalogue, positives_by_query: dict, *, config, threshold: float, bm25=None):
    """The training examples with their BM25 hard negatives re-drawn outside the judged-relevant
    products **and** the XMC positives of each query (same count, depth and seed as the dual encoder's)."""
    import pandas as pd

    from graphrel.retrieval.search.bm25 import BM25Index
    from graphrel.retrieval.students.mining import mine_hard_negatives

    xmc_rows = pd.DataFrame([(q, p, 1.0) for q, (ids, _) in positives_by_query.items() for p in ids],
                            columns=["query_id", "product_id", "label"])
    excluded = pd.concat([pairs[["query_id", "product_id", "label"]].astype({"product_id": str}), xmc_rows])
    base = examples[[c for c in examples.columns if not c.startswith(("negative_", "teacher_negative_"))]]
    bm25 = bm25 or BM25Index(catalogue.texts, k1=config.bm25_k1, b=config.bm25_b)
    return mine_hard_negatives(base, excluded, bm25, catalogue, negatives=config.hard_negatives,
                               depth=config.negative_depth, threshold=threshold, seed=config.seed)


def train_variant(kind: str, examples, catalogue, product_embeddings, config, *, positives_by_query=None,
                  relevant=None, top_k: int = 0, xmc_weight: float = 0.0, weighting: str = "constant",
                  xmc_scores_by_query=None, distillation_weight: float = 1.0, steps: int | None = None):
    """A fresh backbone trained with the BM loss (``kind="blend"``) or label loss + XMC KD
    (``kind="kd"``), the dual encoder's budget (``config.dual_encoder_*``) unless ``steps`` is given.

    Returns:
        ``(model, losses, seconds)``.
    """
    from graphrel.retrieval.students.blend_and_match import train_blend_and_match, train_xmc_distillation
    from graphrel.retrieval.encoding.encoders import load_encoder

    model = load_encoder(config.backbone)
    rows = {p: i for i, p in enumerate(catalogue.product_ids)}
    budget = dict(steps=steps or config.dual_encoder_steps, batch_size=config.dual_encoder_batch_size,
                  learning_rate=config.dual_encoder_learning_rate, seed=config.seed, scale=config.scale,
                  product_embeddings=product_embeddings, product_rows=rows)
    start = time.perf_counter()
    if kind == "blend":
        top = {q: (ids[:top_k], scores[:top_k]) for q, (ids, scores) in positives_by_query.items()}
        losses = train_blend_and_match(model, examples, positives_by_query=top, relevant=relevant,
                                       xmc_weight=xmc_weight, weighting=weighting, **budget)
    else:
        losses = train_xmc_distillation(model, examples, xmc_scores_by_query=xmc_scores_by_query,
                                        distillation_weight=distillation_weight, **budget)
    return model, losses, time.perf_counter() - start


def build_blend_and_match(pairs, catalogue, examples, judged, *, config, threshold: float,
                          product_embeddings: np.ndarray, upstream_key: str, output_dir, warmup=()) -> dict:
    """Build (or reuse) the Blend and Match retrievers and return the rank-fusion entries.

    Args:
        pairs: the run's pairs (``load_run_pairs``: labels normalised, ``teacher_score``).
        catalogue: the stage's :class:`~graphrel.retrieval.search.catalogue.Catalogue`.
        examples: the stage's training examples (the dual encoder's).
        judged: the judged test queries (:class:`~graphrel.retrieval.search.catalogue.JudgedQueries`).
        config: the ``RetrievalConfig`` (budget fields ``dual_encoder_*``, ``scale``, ``seed``,
            ``backbone``, ``threads``, ``hard_negatives``, ``negative_depth``, ``bm25_*``, timing
            fields; Blend and Match fields as :class:`BlendOptions`).
        threshold: normalised relevance threshold.
        product_embeddings: (N, d) the dual encoder's frozen product embeddings (zero-shot MiniLM).
        upstream_key: the dual encoder's build key (covers the run, examples and embeddings).
        output_dir: the stage's output directory (``retrievers/dual_encoder`` must exist).
        warmup: queries run once before timing the fused system.

    Raises:
        GraphrelInputError: a bad option, or ``dual_encoder_product_side`` not ``frozen``.

    Returns:
        ``{"retrievers": [names built, report order], "fusion": {"fusion_rrf": entry,
        "fusion_combsum": entry}}``; entries have the keys of
        :func:`~graphrel.retrieval.report.evaluate_retrievers` (``teacher`` None).
    """
    from graphrel.retrieval.students.blend_and_match import xmc_positives
    from graphrel.retrieval.encoding.encoders import count_parameters
    from graphrel.retrieval.serving.retriever import save_dense_retriever
    from graphrel.retrieval.build_keys import key as _key
    from graphrel.retrieval.build_keys import reusable as _reusable

    options = BlendOptions.from_config(config)
    if getattr(config, "dual_encoder_product_side", "frozen") != "frozen":
        raise GraphrelInputError("Blend and Match trains the query side against frozen product embeddings, so it "
                                 "compares only with a dual encoder whose product side is frozen",
                                 fix="set retrieval.dual_encoder_product_side to frozen, or turn Blend and Match off")
    root = Path(output_dir) / "retrievers"
    xmc_fields = {f.name: getattr(options, f.name) for f in dataclasses.fields(options) if f.name.startswith("xmc_")}
    xmc_key = _key(up=upstream_key, threshold=threshold, seed=config.seed, **xmc_fields)
    xmc = build_xmc_retriever(pairs, catalogue, options, threshold=threshold, seed=config.seed,
                              threads=config.threads, directory=root / "xmc", key=xmc_key)
    budget = dict(xmc=xmc_key, steps=config.dual_encoder_steps, bs=config.dual_encoder_batch_size,
                  lr=config.dual_encoder_learning_rate, scale=config.scale, seed=config.seed,
                  neg=config.hard_negatives, depth=config.negative_depth)
    relevant, judged_train = _relevant(pairs, threshold)
    variants = options.variants()
    cache = {}

    def positives():
        if "positives" not in cache:
            deepest = max(k for k, _ in variants.values())
            cache["positives"] = xmc_positives(examples, xmc, k=deepest, judged=judged_train)
            cache["examples"] = blend_examples(examples, pairs, catalogue, cache["positives"], config=config,
                                               threshold=threshold)
        return cache["positives"], cache["examples"]

    def save(name, model, losses, seconds, key, extra):
        save_dense_retriever(root / name, query_encoder=model, catalogue=catalogue, product_embeddings=product_embeddings,
                             name=name, product_encoder_parameters=count_parameters(model),
                             extra={"build_key": key, "train_seconds": seconds, "first_loss": losses[0],
                                    "last_loss": float(np.mean(losses[-20:])), "secondary": "xmc", **extra})

    for name, (k, weight) in variants.items():
        key = _key(kind="blend", k=k, w=weight, weighting=options.blend_weighting, **budget)
        if not _reusable(root / name, key):
            top, blend_rows = positives()
            model, losses, seconds = train_variant("blend", blend_rows, catalogue, product_embeddings, config,
                                                   positives_by_query=top, relevant=relevant, top_k=k,
                                                   xmc_weight=weight, weighting=options.blend_weighting)
            save(name, model, losses, seconds, key, {"top_k": k, "xmc_weight": weight,
                                                     "weighting": options.blend_weighting})
    key = _key(kind="kd", w=options.xmc_distillation_weight, d=options.xmc_distillation_depth, **budget)
    if not _reusable(root / "dual_encoder_xmc_kd", key):
        scores = xmc_positives(examples, xmc, k=options.xmc_distillation_depth, judged={})
        by_query = {q: dict(zip(ids, map(float, s))) for q, (ids, s) in scores.items()}
        model, losses, seconds = train_variant("kd", examples, catalogue, product_embeddings, config,
                                               xmc_scores_by_query=by_query,
                                               distillation_weight=options.xmc_distillation_weight)
        save("dual_encoder_xmc_kd", model, losses, seconds, key,
             {"distillation_weight": options.xmc_distillation_weight, "depth": options.xmc_distillation_depth})
    fusion = fusion_entries([root / "dual_encoder", root / "xmc"], judged, Path(output_dir) / "runs",
                            rrf_k=options.fusion_rrf_k, warmup=warmup, repeats=config.timing_repeats,
                            timing_k=config.timing_k, threads=config.threads)
    return {"retrievers": ["xmc", *variants, "dual_encoder_xmc_kd"], "fusion": fusion}


def fusion_entries(directories: list, judged, runs_dir: Path, *, rrf_k: int = 60, warmup=(), repeats: int = 3,
                   timing_k: int = 100, threads: int = 1) -> dict:
    """``fusion_rrf`` and ``fusion_combsum`` of retrievers' top 1000 on the judged test queries.

    Speed = the whole serve-both system: every model's search of the top ``timing_k`` plus the
    fusion, median of ``repeats`` runs over the test queries after a warm-up; parameters and
    index sizes are the models' sums.
    """
    from graphrel.retrieval.measures.evaluation import retrieval_metrics, run_frame, write_trec_run
    from graphrel.retrieval.serving.retriever import Retriever

    retrievers = [Retriever.load(d, threads=threads) for d in directories]
    queries, ids = list(judged.queries), judged.query_ids
    runs = []
    for retriever in retrievers:
        rows, scores = retriever.search_rows(queries, min(DEPTH, len(retriever.catalogue)))
        runs.append(run_frame(ids, retriever.catalogue.product_ids, rows, scores))
    sizes = [_index_bytes(r, Path(d)) for r, d in zip(retrievers, directories)]
    entries = {}
    for method in ("rrf", "combsum"):
        name = f"fusion_{method}"
        fused = fuse_runs(runs, method=method, depth=DEPTH, rrf_k=rrf_k)
        write_trec_run(fused, Path(runs_dir) / f"{name}.trec", tag=name)
        metrics = retrieval_metrics(fused, judged.qrels)
        entries[name] = {**{k: v for k, v in metrics.items() if k != "queries"},
                         "parameters": int(sum(r.manifest.get("parameters", 0) for r in retrievers)),
                         "teacher": None, "models": [r.name for r in retrievers], "index_build_seconds": 0.0,
                         "index_bytes": int(sum(sizes)),
                         **_time_fused(retrievers, queries, method, rrf_k, warmup, repeats, timing_k)}
        log.info("retrieval: %s recall@100 %.3f ndcg@10 %.3f", name, metrics["recall@100"], metrics["ndcg@10"])
    return entries


def _index_bytes(retriever, directory: Path) -> int:
    if retriever.xmc is not None:
        return retriever.xmc.size_bytes()
    path = directory / "product_embeddings.npy"
    return int(np.load(path, mmap_mode="r").nbytes) if path.is_file() else 0


def _time_fused(retrievers, queries, method, rrf_k, warmup, repeats, timing_k) -> dict:
    warm = list(warmup) or queries[:64]
    fuse_retrievers(retrievers, warm, k=timing_k, method=method, rrf_k=rrf_k)
    encode_times, search_times = [], []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        for retriever in retrievers:
            retriever.prepare_queries(queries)
        encode_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        fuse_retrievers(retrievers, queries, k=timing_k, method=method, rrf_k=rrf_k)
        search_times.append(time.perf_counter() - start)
    return {"query_encodings_per_second": len(queries) / float(np.median(encode_times)),
            "queries_per_second": len(queries) / float(np.median(search_times))}
