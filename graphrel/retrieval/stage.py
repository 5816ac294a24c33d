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
``embeddistill_label_score``, ``embeddistill_embedding``). A retriever whose directory holds the
same build key (config values and inputs) is reused, so an interrupted stage resumes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from graphrel.errors import GraphrelInputError
from graphrel.retrieval.config import ABLATIONS, RetrievalConfig
from graphrel.retrieval.catalogue import Catalogue, judged_test_queries, normalised_threshold
from graphrel.retrieval.report import evaluate_retrievers, retrieval_markdown
from graphrel.retrieval.retriever import MANIFEST, Retriever, save_bm25_retriever, save_dense_retriever
from graphrel.run import write_json, write_parquet

log = logging.getLogger("graphrel")



def _key(**parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _reusable(directory: Path, key: str) -> bool:
    try:
        return json.loads((directory / MANIFEST).read_text()).get("build_key") == key
    except (OSError, ValueError):
        return False


def _product_embeddings(encoder, name: str, catalogue: Catalogue, cache: Path, key: str, batch_size: int) -> np.ndarray:
    """The catalogue encoded by ``encoder`` (unit rows), cached as ``cache/NAME.npy`` + key."""
    from graphrel.retrieval.encoders import encode

    path, key_path = cache / f"{name}.npy", cache / f"{name}.key"
    if path.is_file() and key_path.is_file() and key_path.read_text() == key:
        return np.load(path)
    start = time.perf_counter()
    vectors = encode(encoder, catalogue.texts, batch_size=batch_size)
    log.info("retrieval: encoded %d products with %s in %.0f s", len(catalogue), name, time.perf_counter() - start)
    from graphrel.run import atomic_path

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, vectors)
    key_path.write_text(key)
    return vectors


def _training_examples(pairs, catalogue, config, threshold, run_dir: Path, output_dir: Path, key: str) -> pd.DataFrame:
    """Mined and teacher-scored training examples, cached in ``training_examples.parquet``."""
    from graphrel.retrieval.bm25 import BM25Index
    from graphrel.retrieval.mining import add_teacher_logits, mine_hard_negatives, positive_examples

    path, key_path = output_dir / "training_examples.parquet", output_dir / "training_examples.key"
    if path.is_file() and key_path.is_file() and key_path.read_text() == key:
        return pd.read_parquet(path)
    from graphrel.scoring.teacher_labelling import load_teacher

    examples = positive_examples(pairs, threshold=threshold, max_examples=config.max_train_examples, seed=config.seed)
    bm25 = BM25Index(catalogue.texts, k1=config.bm25_k1, b=config.bm25_b)
    examples = mine_hard_negatives(examples, pairs, bm25, catalogue, negatives=config.hard_negatives,
                                   depth=config.negative_depth, threshold=threshold, seed=config.seed)
    start = time.perf_counter()
    examples = add_teacher_logits(examples, load_teacher(run_dir / "teacher"), batch_size=config.teacher_batch_size)
    log.info("retrieval: %d training examples, negatives scored by the teacher in %.0f s", len(examples),
             time.perf_counter() - start)
    write_parquet(examples, path)
    key_path.write_text(key)
    return examples


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
        ``index_build_seconds``, ``index_bytes``; ``two_stage`` as
        :func:`~graphrel.retrieval.two_stage.two_stage_metrics` (None without re-rankers);
        ``index_comparison`` as :func:`~graphrel.retrieval.index_comparison.compare_indexes` on
        the ``embeddistill`` student's test queries (None with ``index_comparison`` off);
        ``teacher_geometry`` as :func:`~graphrel.retrieval.teacher_geometry.dual_pooling_geometry`
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
    if pair_models and config.rerank_retriever not in planned:
        raise GraphrelInputError(f"retrieval.rerank_retriever {config.rerank_retriever!r} is not a retriever "
                                 "of this stage", fix=f"set retrieval.rerank_retriever to one of {', '.join(planned)}")
    torch.set_num_threads(config.threads)
    pairs = load_run_pairs(run_dir)
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
    names = _build_retrievers(pairs, catalogue, catalogue_key, config, threshold, run_dir, output_dir)
    val = pairs[pairs["split"] == "val"].drop_duplicates("query_id")["query"].head(config.warmup_queries)
    entries = evaluate_retrievers({n: output_dir / "retrievers" / n for n in names}, judged,
                                  output_dir / "runs", warmup=list(val), repeats=config.timing_repeats,
                                  timing_k=config.timing_k, threads=config.threads)
    two_stage = None
    if pair_models:
        from graphrel.retrieval.two_stage import two_stage_metrics

        first = output_dir / "retrievers" / config.rerank_retriever
        key = _key(retriever=json.loads((first / MANIFEST).read_text()).get("build_key"),
                   models={n: [_directory_fingerprint(d), _directory_fingerprint(g)] for n, (d, g) in pair_models.items()},
                   queries=list(judged.query_ids))
        two_stage = two_stage_metrics(first, judged, pair_models, depth=config.rerank_depth,
                                      cache_dir=output_dir / "two_stage", key=key, threads=config.threads)
    geometry = None
    if config.dual_pooling_steps:
        from graphrel.retrieval.teacher_geometry import dual_pooling_geometry

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
        from graphrel.retrieval.index_comparison import compare_indexes

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


def _sections(result: dict) -> list[str]:
    """The report's sections after the retriever table, for the parts this stage ran."""
    sections = []
    if result["two_stage"]:
        from graphrel.retrieval.two_stage import two_stage_markdown

        sections.append(two_stage_markdown(result["two_stage"]))
    if result["index_comparison"]:
        from graphrel.retrieval.index_comparison import index_comparison_markdown

        sections.append(index_comparison_markdown(result["index_comparison"], title=(
            "Index: exact search against HNSW (embeddistill test queries, the catalogue's product embeddings)"))
            + "\noverlap@k: the share of exact search's top k that HNSW finds (its recall loss is 1 - overlap).\n")
    if result["teacher_geometry"]:
        from graphrel.retrieval.teacher_geometry import geometry_markdown

        sections.append(geometry_markdown(result["teacher_geometry"]))
    return sections


def retriever_names(config: RetrievalConfig) -> list[str]:
    """The retrievers the stage builds with ``config``, in report order."""
    return ["bm25", "minilm_zero_shot", "dual_encoder", "embeddistill", *(ABLATIONS if config.ablation else ())]


def _run_pair_models(run_dir: Path) -> dict:
    """The run's k-order student (on the graph without test-query edges) and teacher, those present."""
    from graphrel import run as R

    models = {}
    if (run_dir / R.GRAPH_STUDENT / "student.json").is_file() and (run_dir / "graph_new_query.pt").is_file():
        models[R.GRAPH_STUDENT] = (run_dir / R.GRAPH_STUDENT, run_dir / "graph_new_query.pt")
    if (run_dir / R.TEACHER_DIR / "config.json").is_file():
        models["teacher"] = (run_dir / R.TEACHER_DIR, None)
    return models


def _directory_fingerprint(path) -> str | None:
    """Content hash of a file or of every file under a directory (None for None)."""
    if path is None:
        return None
    path = Path(path)
    digest = hashlib.sha256()
    for file in sorted([path] if path.is_file() else (f for f in path.rglob("*") if f.is_file())):
        digest.update(str(file.relative_to(path.parent if path.is_file() else path)).encode())
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def _run_fingerprint(pairs: pd.DataFrame, run_dir: Path) -> str:
    """What the training examples depend on in the run: its pairs and its teacher's weights
    (``model.safetensors`` and ``config.json``: the Lightning checkpoint beside them differs
    between runs of identical weights)."""
    from graphrel import run as R

    rows = pd.util.hash_pandas_object(pairs[["query_id", "product_id", "split", "label"]].astype(str), index=False)
    teacher = run_dir / R.TEACHER_DIR
    return _key(pairs=hashlib.sha256(rows.to_numpy().tobytes()).hexdigest(),
                teacher=[_directory_fingerprint(teacher / name) for name in ("model.safetensors", "config.json")])


def _build_retrievers(pairs, catalogue, catalogue_key, config, threshold, run_dir, output_dir) -> list[str]:
    """Build (or reuse) every retriever directory; return their names in report order."""
    root = output_dir / "retrievers"
    (output_dir / "cache").mkdir(parents=True, exist_ok=True)
    zero_products, zero_key = _build_baselines(catalogue, catalogue_key, config, output_dir)
    example_key = _key(catalogue=catalogue_key, threshold=threshold, n=config.max_train_examples,
                       neg=config.hard_negatives, depth=config.negative_depth, seed=config.seed, k1=config.bm25_k1,
                       b=config.bm25_b, run=_run_fingerprint(pairs, run_dir))
    examples = _training_examples(pairs, catalogue, config, threshold, run_dir, output_dir, example_key)
    de_key = _build_dual_encoder(examples, catalogue, zero_products, config, output_dir, _key(e=example_key, z=zero_key))
    variants = {"embeddistill": (config.label_weight, config.score_weight, config.embedding_weight)}
    if config.ablation:
        variants.update(ABLATIONS)
    _build_students(variants, examples, catalogue, config, root, de_key)
    return ["bm25", "minilm_zero_shot", "dual_encoder", *variants]


def _build_baselines(catalogue, catalogue_key, c, output_dir) -> tuple[np.ndarray, str]:
    """BM25 and zero-shot MiniLM; returns the zero-shot product embeddings and their key."""
    from graphrel.retrieval.encoders import count_parameters, load_encoder

    root = output_dir / "retrievers"
    key = _key(stage="bm25", catalogue=catalogue_key, k1=c.bm25_k1, b=c.bm25_b)
    if not _reusable(root / "bm25", key):
        save_bm25_retriever(root / "bm25", catalogue=catalogue, k1=c.bm25_k1, b=c.bm25_b)
        _set_key(root / "bm25", key)
    zero = load_encoder(c.backbone)
    zero_key = _key(encoder=c.backbone, catalogue=catalogue_key)
    products = _product_embeddings(zero, "minilm_zero_shot", catalogue, output_dir / "cache", zero_key,
                                   c.encode_batch_size)
    if not _reusable(root / "minilm_zero_shot", zero_key):
        save_dense_retriever(root / "minilm_zero_shot", query_encoder=zero, catalogue=catalogue,
                             product_embeddings=products, name="minilm_zero_shot",
                             product_encoder_parameters=count_parameters(zero), extra={"build_key": zero_key})
    return products, zero_key


def _build_dual_encoder(examples, catalogue, zero_products, c, output_dir, upstream: str) -> str:
    """Fine-tune the dual encoder (the EmbedDistill teacher) unless reusable; returns its key."""
    from graphrel.retrieval.encoders import count_parameters, load_encoder
    from graphrel.retrieval.training import fine_tune_dual_encoder

    directory = output_dir / "retrievers" / "dual_encoder"
    key = _key(up=upstream, steps=c.dual_encoder_steps, bs=c.dual_encoder_batch_size, lr=c.dual_encoder_learning_rate,
               side=c.dual_encoder_product_side, scale=c.scale, seed=c.seed)
    if _reusable(directory, key):
        return key
    model = load_encoder(c.backbone)
    frozen = c.dual_encoder_product_side == "frozen"
    rows = {p: i for i, p in enumerate(catalogue.product_ids)}
    start = time.perf_counter()
    losses = fine_tune_dual_encoder(model, examples, steps=c.dual_encoder_steps, batch_size=c.dual_encoder_batch_size,
                                    learning_rate=c.dual_encoder_learning_rate, seed=c.seed, scale=c.scale,
                                    product_embeddings=zero_products if frozen else None,
                                    product_rows=rows if frozen else None)
    seconds = time.perf_counter() - start
    products = zero_products if frozen else _product_embeddings(model, "dual_encoder", catalogue, output_dir / "cache",
                                                                 key, c.encode_batch_size)
    save_dense_retriever(directory, query_encoder=model, catalogue=catalogue, product_embeddings=products,
                         name="dual_encoder", product_encoder_parameters=count_parameters(model),
                         extra={"build_key": key, "train_seconds": seconds, "product_side": c.dual_encoder_product_side,
                                "first_loss": losses[0], "last_loss": float(np.mean(losses[-20:]))})
    return key


def _build_students(variants: dict, examples, catalogue, c, root: Path, teacher_key: str) -> None:
    """Train every EmbedDistill asymmetric student variant (name -> loss weights) unless reusable."""
    from graphrel.retrieval.embeddistill import LossWeights, build_asymmetric_student, distil_static_embeddings
    from graphrel.retrieval.embeddistill import train_asymmetric_student
    from graphrel.retrieval.encoders import encode

    teacher = Retriever.load(root / "dual_encoder")
    products = np.load(root / "dual_encoder" / "product_embeddings.npy")
    rows = {p: i for i, p in enumerate(catalogue.product_ids)}
    static = teacher_q = None
    for name, weights in variants.items():
        key = _key(teacher=teacher_key, dim=c.student_dim, steps=c.student_steps, bs=c.student_batch_size,
                   lr=c.student_learning_rate, weights=weights, scale=c.scale, seed=c.seed)
        if _reusable(root / name, key):
            continue
        if static is None:
            start = time.perf_counter()
            static = distil_static_embeddings(root / "dual_encoder" / "query_encoder", dim=c.student_dim)
            log.info("retrieval: model2vec static embeddings distilled in %.0f s", time.perf_counter() - start)
            teacher_q = encode(teacher.query_encoder, examples["query"], batch_size=c.encode_batch_size)
        student = build_asymmetric_student(static, output_dim=products.shape[1], seed=c.seed)
        start = time.perf_counter()
        losses = train_asymmetric_student(student, examples, product_embeddings=products, product_rows=rows,
                                          teacher_query_embeddings=teacher_q, weights=LossWeights(*weights),
                                          steps=c.student_steps, batch_size=c.student_batch_size,
                                          learning_rate=c.student_learning_rate, seed=c.seed, scale=c.scale)
        save_dense_retriever(root / name, query_encoder=student, catalogue=catalogue, product_embeddings=products,
                             name=name, teacher="dual_encoder",
                             product_encoder_parameters=teacher.manifest.get("product_encoder_parameters"),
                             extra={"build_key": key, "loss_weights": dict(zip(("label", "score", "embedding"), weights)),
                                    "train_seconds": time.perf_counter() - start,
                                    "first_loss": losses[0], "last_loss": float(np.mean(losses[-20:]))})


def _set_key(directory: Path, key: str) -> None:
    manifest = json.loads((directory / MANIFEST).read_text())
    manifest["build_key"] = key
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2))
