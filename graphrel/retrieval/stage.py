"""The retrieval stage: every retriever built, evaluated and timed on one run directory.

``run_retrieval(run_dir, output_dir, config)`` reads a finished pipeline run (pairs.parquet with
splits, teacher/, teacher_scores.parquet, label_scale.json; never written to) and writes, under
``output_dir``::

    catalogue.parquet           every product of the run (sorted by product id)
    training_examples.parquet   train (query, positive, BM25 hard negatives) + CE teacher logits
    cache/                      product embeddings per encoder (computed once)
    retrievers/NAME/            one retriever directory each (``graphrel retrieve --model``)
    runs/NAME.trec              each retriever's top 1000 for the test queries (TREC run file)
    two_stage/                  the first stage's top k re-ranked by each pair model (cached)
    teacher_geometry/           the dual-pooling scorer on the cross-encoder and its figures
    retrieval.json, retrieval.md   the metrics (``metrics.json``'s ``retrieval`` shape) and report section

Retrievers: ``bm25``; ``minilm_zero_shot`` (all-MiniLM-L6-v2 as shipped); ``dual_encoder``
(MiniLM fine-tuned on the training pairs, in-batch softmax + BM25 hard negatives; the EmbedDistill
teacher); ``embeddistill`` (asymmetric student: static query encoder, the teacher's frozen product
embeddings, label + score distillation + query embedding matching) and, with ``ablation``, the
same student with each loss combination (``embeddistill_label``, ``embeddistill_score``,
``embeddistill_label_score``, ``embeddistill_embedding``); ``hybrid`` (BM25 fused with one dense
retriever, the fusion chosen on the run's validation queries: :mod:`graphrel.retrieval.serving.hybrid`).
A retriever whose directory holds the same build key (config values and inputs) is reused, so an
interrupted stage resumes. Every entry's recall@10, recall@100 and NDCG@10 carry 95% intervals
(paired bootstrap over the test queries, the same draws for every system); the hybrid's entry
also its differences from each of its inputs, with intervals.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np

from graphrel.errors import GraphrelInputError
from graphrel.retrieval.config import ABLATIONS, RetrievalConfig
from graphrel.retrieval.search.catalogue import Catalogue, judged_test_queries, normalised_threshold
from graphrel.retrieval.report import evaluate_retrievers, retrieval_markdown
from graphrel.retrieval.build_keys import directory_fingerprint as _directory_fingerprint
from graphrel.retrieval.build_keys import key as _key
from graphrel.retrieval.build_keys import run_fingerprint as _run_fingerprint
from graphrel.retrieval.builders import build_retrievers
from graphrel.retrieval.measures.judged_only import JudgedOnly, judged_products
from graphrel.retrieval.serving.retriever import MANIFEST, Retriever
from graphrel.run import write_json

log = logging.getLogger("graphrel")


def run_retrieval(run_dir: str | Path, output_dir: str | Path, config: RetrievalConfig | None = None, *,
                  pair_models: dict | None = None) -> dict:
    """Build, evaluate and time every retriever on a finished run; write the report section.

    Args:
        run_dir: a finished pipeline run directory (read only).
        output_dir: where everything of the stage goes (created; must not be ``run_dir`` itself).
        config: options (validated); default :class:`RetrievalConfig`.
        pair_models: re-rankers of the two-stage system, name -> ``(directory, graph.pt or None)``;
            None: the run's ``student_korder`` (reading ``graph_new_query.pt``) and ``teacher``,
            those present; ``{}``: no two-stage evaluation.

    Returns:
        ``{"retrieval": entries, "two_stage", "index_comparison", "teacher_geometry", "evaluation"}``
        (also ``retrieval.json``):
        entries = the ``retrieval`` entry of ``metrics.json``, retriever name -> ``recall@10``,
        ``recall@100``, ``recall@1000``, ``ndcg@10`` (in [0, 1]), ``query_encodings_per_second``,
        ``queries_per_second``, ``parameters`` (query side), ``teacher`` (entry name or None),
        ``index_build_seconds``, ``index_bytes``, ``intervals`` (``{"recall@10": [low, high],
        "recall@100": ..., "ndcg@10": ...}``: 95%, paired bootstrap over queries),
        ``judged_only`` (the same figures on each ranking with every unjudged product removed,
        with 95% intervals: :class:`~graphrel.retrieval.measures.judged_only.JudgedOnly`); ``hybrid``
        also ``setting`` (its ``hybrid.json`` without the grid: inputs, method, norm, weight,
        rrf_k, depth, validation) and ``differences`` (``{input: {"recall@100": {"difference":
        d, "interval": [low, high]}, "ndcg@10": ...}}``, hybrid minus input); ``two_stage`` as
        :func:`~graphrel.retrieval.two_stage.two_stage_metrics` (None without re-rankers);
        ``index_comparison`` as :func:`~graphrel.retrieval.search.index_comparison.compare_indexes` on
        the ``embeddistill`` student's test queries (None with ``index_comparison`` off);
        ``teacher_geometry`` as :func:`~graphrel.retrieval.students.teacher_geometry.dual_pooling_geometry`
        (None when ``dual_pooling_steps`` is 0).

    Raises:
        GraphrelInputError: a bad option, or a run directory missing what the stage reads.
    """
    import torch

    from graphrel.run import atomic_path, load_run_pairs

    config = (config or RetrievalConfig()).check()
    run_dir, output_dir = Path(run_dir), Path(output_dir)
    if output_dir.resolve() == run_dir.resolve():
        raise GraphrelInputError("the retrieval output directory is the run directory", path=output_dir,
                                 fix="pass a sub-directory, e.g. RUN/retrieval")
    if pair_models is None:
        pair_models = _run_pair_models(run_dir)
    planned = retriever_names(config)
    if config.hybrid and config.hybrid_dense not in (*planned, "auto"):
        raise GraphrelInputError(f"retrieval.hybrid_dense {config.hybrid_dense!r} is not a retriever of this stage",
                                 fix=f"set retrieval.hybrid_dense to auto or one of {', '.join(planned)}")
    if pair_models and config.rerank_retriever not in planned:
        raise GraphrelInputError(f"retrieval.rerank_retriever {config.rerank_retriever!r} is not a retriever "
                                 "of this stage", fix=f"set retrieval.rerank_retriever to one of {', '.join(planned)}")
    torch.set_num_threads(config.threads)
    pairs = load_run_pairs(run_dir, test_labels=True)  # judged products of the test queries
    if "cross_encoder_logit" in pairs:  # a stacked run: the retrieval stage's teacher is the cross-encoder
        pairs["teacher_logit"] = pairs["cross_encoder_logit"]
    scale_path = run_dir / "label_scale.json"
    threshold = normalised_threshold(config.relevance_threshold,
                                     json.loads(scale_path.read_text()) if scale_path.is_file() else None)
    catalogue = Catalogue.from_pairs(pairs)
    judged = judged_test_queries(pairs, threshold=threshold)
    if config.max_test_queries is not None and config.max_test_queries < len(judged):
        rng = np.random.default_rng(config.seed)
        keep = np.sort(rng.choice(len(judged), size=config.max_test_queries, replace=False))
        judged = dataclasses.replace(judged, query_ids=judged.query_ids[keep], queries=judged.queries[keep],
                                     qrels={q: judged.qrels[q] for q in judged.query_ids[keep]})
    output_dir.mkdir(parents=True, exist_ok=True)
    catalogue.save(output_dir)
    catalogue_key = _key(ids=list(catalogue.product_ids), texts=list(catalogue.texts))
    val = pairs[pairs["split"] == "val"].drop_duplicates("query_id")["query"].head(config.warmup_queries)
    names, fused = build_retrievers(pairs, catalogue, catalogue_key, config, threshold, run_dir, output_dir,
                                    judged=judged, warmup=list(val))
    if config.hybrid:
        from graphrel.retrieval.builders import build_hybrid

        names.append(build_hybrid(pairs, catalogue_key, config, threshold, output_dir, names))
    judged_only = JudgedOnly(judged.qrels, judged_products(pairs), seed=config.seed)
    entries = evaluate_retrievers({n: output_dir / "retrievers" / n for n in names}, judged,
                                  output_dir / "runs", warmup=list(val), repeats=config.timing_repeats,
                                  timing_k=config.timing_k, threads=config.threads, judged_only=judged_only)
    entries.update(fused)
    judged_only.fill(entries, output_dir / "runs")  # the fused runs: read back from their run files
    if config.hybrid:
        _describe_hybrid(entries["hybrid"], judged_only, output_dir, judged.query_ids)
    two_stage = None
    if pair_models:
        from graphrel.retrieval.two_stage import two_stage_metrics

        first = output_dir / "retrievers" / config.rerank_retriever
        key = _key(retriever=json.loads((first / MANIFEST).read_text()).get("build_key"),
                   models={n: [_directory_fingerprint(d), _directory_fingerprint(g)] for n, (d, g) in pair_models.items()},
                   queries=list(judged.query_ids))
        two_stage = two_stage_metrics(first, judged, pair_models, depth=config.rerank_depth,
                                      cache_dir=output_dir / "two_stage", key=key, threads=config.threads,
                                      judged_only=judged_only)
    geometry = None
    if config.dual_pooling_steps:
        from graphrel.retrieval.students.teacher_geometry import dual_pooling_geometry

        geometry = dual_pooling_geometry(
            pairs, run_dir / "teacher", output_dir / "teacher_geometry", seed=config.seed,
            key=_key(run=_run_fingerprint(pairs, run_dir), steps=config.dual_pooling_steps,
                     batch=config.dual_pooling_batch_size, train=config.dual_pooling_train_pairs,
                     test=config.dual_pooling_test_pairs, seed=config.seed, threshold=threshold),
            steps=config.dual_pooling_steps, batch_size=config.dual_pooling_batch_size,
            train_pairs=config.dual_pooling_train_pairs, test_pairs=config.dual_pooling_test_pairs,
            relevance=threshold)
    comparison = None
    if config.index_comparison and "embeddistill" in names:
        from graphrel.retrieval.search.index_comparison import compare_indexes

        student = Retriever.load(output_dir / "retrievers" / "embeddistill", threads=config.threads)
        comparison = compare_indexes(np.load(output_dir / "retrievers" / "embeddistill" / "product_embeddings.npy"),
                                     student.encode_queries(list(judged.queries)), cutoffs=(10, 100),
                                     timing_k=config.timing_k, repeats=config.timing_repeats, threads=config.threads)
    meta = {"test_queries": len(judged), "test_queries_without_relevant": judged.without_relevant,
            "catalogue_products": len(catalogue), "relevance_threshold": config.relevance_threshold,
            "config": dataclasses.asdict(config)}
    result = {"retrieval": entries, "two_stage": two_stage, "index_comparison": comparison,
              "teacher_geometry": geometry, "evaluation": meta}
    write_json(result, output_dir / "retrieval.json")
    with atomic_path(output_dir / "retrieval.md") as tmp:
        tmp.write_text(retrieval_markdown(entries, meta, _sections(result)), encoding="utf-8")
    return result


def _describe_hybrid(entry: dict, judged_only: JudgedOnly, output_dir: Path, query_ids) -> None:
    """Add the hybrid's ``setting`` and its ``differences`` from each input (test run files)."""
    from graphrel.retrieval.measures.evaluation import read_trec_run
    from graphrel.retrieval.serving.hybrid import read_config

    config = read_config(output_dir / "retrievers" / "hybrid")
    entry["setting"] = {k: config[k] for k in ("inputs", "method", "norm", "weight", "rrf_k", "depth", "validation")}
    runs = {n: read_trec_run(output_dir / "runs" / f"{n}.trec", query_ids) for n in ["hybrid", *config["inputs"]]}
    entry["differences"] = judged_only.differences(runs.pop("hybrid"), runs)


def _sections(result: dict) -> list[str]:
    """The report's sections after the retriever table, for the parts this stage ran."""
    sections = []
    if result["retrieval"].get("hybrid", {}).get("setting"):
        from graphrel.retrieval.report import hybrid_markdown

        sections.append(hybrid_markdown(result["retrieval"]["hybrid"]))
    if result["two_stage"]:
        from graphrel.retrieval.two_stage import two_stage_markdown

        sections.append(two_stage_markdown(result["two_stage"]))
    if result["index_comparison"]:
        from graphrel.retrieval.search.index_comparison import index_comparison_markdown

        sections.append(index_comparison_markdown(result["index_comparison"], title=(
            "Index: exact search against HNSW (embeddistill test queries, the catalogue's product embeddings)"))
            + "\noverlap@k: the share of exact search's top k that HNSW finds (its recall loss is 1 - overlap).\n")
    if result["teacher_geometry"]:
        from graphrel.retrieval.students.teacher_geometry import geometry_markdown

        sections.append(geometry_markdown(result["teacher_geometry"]))
    return sections


def retriever_names(config: RetrievalConfig) -> list[str]:
    """The retrievers the stage builds with ``config``, in report order."""
    names = ["bm25", "minilm_zero_shot", "dual_encoder", "embeddistill", *(ABLATIONS if config.ablation else ()),
             *(["embeddistill_symmetric"] if config.symmetric_student else [])]
    if config.blend_and_match:
        from graphrel.retrieval.config import BlendOptions

        names += ["xmc", *BlendOptions.from_config(config).variants(), "dual_encoder_xmc_kd"]
    return names + (["hybrid"] if config.hybrid else [])


def _run_pair_models(run_dir: Path) -> dict:
    """The run's k-order student (on the graph without test-query edges) and teacher, those present."""
    from graphrel import run as R

    models = {}
    if (run_dir / R.GRAPH_STUDENT / "student.json").is_file() and (run_dir / "graph_new_query.pt").is_file():
        models[R.GRAPH_STUDENT] = (run_dir / R.GRAPH_STUDENT, run_dir / "graph_new_query.pt")
    if (run_dir / R.TEACHER_DIR / "config.json").is_file():
        models["teacher"] = (run_dir / R.TEACHER_DIR, None)
    return models
