"""Which catalogue negatives the cross-encoder teacher is fine-tuned with
(``teacher.random_negatives`` / ``teacher.mined_negatives``), chosen on the validation queries
only. Everything else is the run's (pairs, seed, settings); the run's own teacher is the mix
without negatives.

    # fit each mix (separate processes may fit different mixes side by side)
    python tools/choose_teacher_negatives_on_validation.py --run-dir RUN --out SCRATCH --mix 1,0 --fit-only
    python tools/choose_teacher_negatives_on_validation.py --run-dir RUN --out SCRATCH --mix 1,1 --fit-only
    # compare every fitted mix
    python tools/choose_teacher_negatives_on_validation.py --run-dir RUN --out SCRATCH

``RUN`` is a finished run with a retrieval stage (its dual encoder is the first stage). For
every teacher, on the validation queries (no test label is read; every teacher scores with the
bf16 backend, so only the fine-tuning differs):

1. the labelled validation pairs: AUC and Spearman against the human labels;
2. two-stage: the dual encoder's top ``--depth`` products from the whole catalogue per
   validation query, re-ranked by the teacher: NDCG@10 and recall@10 (unjudged products count
   as misses, as in the retrieval stage);

each with its difference from the teacher without negatives and a 95% interval (paired
bootstrap over queries). The rule: the mix with the best two-stage NDCG@10 among those whose
pair AUC and Spearman are not lower than without negatives beyond their intervals (the upper
end of each difference's interval >= 0).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

from graphrel import run as R
from graphrel.intervals import PairedBootstrap
from graphrel.metrics import auc, spearman
from graphrel.options import whole_number
from graphrel.pipeline.config_file import run_config
from graphrel.pipeline.evaluation import label_scale, validation_threshold
from graphrel.pipeline.report import markdown_table
from graphrel.pipeline.teacher_stages import fit_teacher
from graphrel.retrieval.config import RetrievalConfig
from graphrel.retrieval.measures.evaluation import per_query_metrics
from graphrel.retrieval.search.catalogue import judged_test_queries, normalised_threshold
from graphrel.retrieval.serving.rerank import rerank
from graphrel.retrieval.serving.retriever import Retriever
from graphrel.scoring.teacher_labelling import load_teacher, teacher_logits

BASELINE = "0,0"


def mix_name(mix: str) -> str:
    random, mined = mix.split(",")
    return f"random{random}_mined{mined}"


def parse_mix(text: str) -> str:
    parts = text.split(",")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"a mix is RANDOM,MINED (two whole numbers >= 0), got {text!r}")
    return f"{int(parts[0])},{int(parts[1])}"


def fit_mix(config, run_dir: Path, out: Path, pairs: pd.DataFrame, mix: str, mined_depth: int) -> None:
    random, mined = map(int, mix.split(","))
    teacher = dataclasses.replace(config.teacher, random_negatives=random, mined_negatives=mined,
                                  mined_depth=mined_depth)
    directory = out / mix_name(mix)
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(run_dir / R.LABEL_SCALE, directory / R.LABEL_SCALE)
    if (directory / R.TEACHER_DIR / "config.json").is_file():
        print(f"{mix_name(mix)}: fitted before")
        return
    start = time.perf_counter()
    fit_teacher(dataclasses.replace(config, teacher=teacher), directory, pairs, progress=False)
    seconds = time.perf_counter() - start
    (directory / "fit_seconds.txt").write_text(f"{seconds:.1f}\n")
    print(f"{mix_name(mix)}: fitted in {seconds:.0f} s")


@functools.lru_cache(maxsize=None)  # each teacher scores two sets of pairs: loaded once (~90 MB each)
def _teacher(teacher_dir: Path, max_length: int, temperature: float):
    return load_teacher(teacher_dir, max_length=max_length, temperature=temperature)


def cached_logits(path: Path, teacher_dir: Path, config, queries, products) -> np.ndarray:
    """The teacher's logits of these pairs (bf16 backend), kept in ``path``."""
    if path.is_file():
        return np.load(path)
    teacher = _teacher(teacher_dir, config.teacher.max_length, config.teacher.temperature)
    logits = teacher_logits(teacher, list(queries), list(products), progress=False, backend="bf16",
                            batch_size=config.teacher.score_batch_size)
    np.save(path, logits)
    return logits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, required=True, help="a finished run with a retrieval stage")
    parser.add_argument("--out", type=Path, required=True, help="scratch directory for the teachers and scores")
    parser.add_argument("--mix", type=parse_mix, action="append", default=[],
                        help="RANDOM,MINED negatives per query to fit (repeatable)")
    parser.add_argument("--fit-only", action="store_true", help="fit the --mix teachers and stop")
    parser.add_argument("--mined-depth", type=whole_number(1, example=50), default=50,
                        help="BM25 hits the mined negatives come from")
    parser.add_argument("--depth", type=whole_number(1, example=100), default=100,
                        help="products re-ranked per validation query")
    parser.add_argument("--resamples", type=whole_number(1, example=1000), default=1000)
    args = parser.parse_args()
    config = run_config(args.run_dir)
    # what the run's teacher was fitted with: its teacher_fit record (a run's config.yaml written
    # before the options existed lacks them, and would read as today's defaults)
    fitted = json.loads((args.run_dir / "stages.json").read_text())["teacher_fit"]["key"]["teacher"]
    if fitted.get("random_negatives", 0) or fitted.get("mined_negatives", 0):
        parser.error(f"{args.run_dir}'s teacher was fine-tuned with catalogue negatives: pass a run without")
    pairs = pd.read_parquet(args.run_dir / R.PAIRS)
    args.out.mkdir(parents=True, exist_ok=True)
    for mix in args.mix:
        if mix != BASELINE:
            fit_mix(config, args.run_dir, args.out, pairs, mix, args.mined_depth)
    if args.fit_only:
        return

    teachers = {BASELINE: args.run_dir / R.TEACHER_DIR}
    for directory in sorted(args.out.glob("random*_mined*")):
        if (directory / R.TEACHER_DIR / "config.json").is_file():
            random, mined = directory.name.removeprefix("random").split("_mined")
            teachers[f"{int(random)},{int(mined)}"] = directory / R.TEACHER_DIR

    # 1. labelled validation pairs
    val = pairs[(pairs.split == "val") & pairs.label.notna()].reset_index(drop=True)
    low, high = label_scale(args.run_dir)
    threshold = validation_threshold(config, args.run_dir)
    boot = PairedBootstrap(val.query_id.to_numpy(), val.label.to_numpy(), threshold=threshold,
                           label_range=high - low, resamples=args.resamples, seed=0)
    labels = val.label.to_numpy()
    pair_scores = {mix: cached_logits(args.out / f"val_pairs_{mix_name(mix)}.npy", d, config, val["query"],
                                      val["product_text"]) for mix, d in teachers.items()}

    # 2. two-stage on the validation queries: the dual encoder's top depth from the catalogue
    judged = judged_test_queries(pairs, splits=("val",), threshold=normalised_threshold(
        RetrievalConfig().relevance_threshold, {"label_min": low, "label_max": high}))
    first_path = args.out / f"val_dual_encoder_top{args.depth}.parquet"
    retriever = Retriever.load(args.run_dir / "retrieval" / "retrievers" / "dual_encoder", threads=2)
    if first_path.is_file():
        first = pd.read_parquet(first_path)
    else:
        first = retriever.search(list(judged.queries), args.depth, query_ids=list(judged.query_ids))
        first.to_parquet(first_path)
    queries = dict(zip(map(str, judged.query_ids), judged.queries))
    texts = dict(zip(map(str, retriever.catalogue.product_ids), retriever.catalogue.texts))
    first = first.assign(query_id=first.query_id.astype(str), product_id=first.product_id.astype(str))
    ids = sorted(map(str, judged.qrels))
    per = {"first stage": per_query_metrics(first, judged.qrels).reindex(ids)}
    for mix, directory in teachers.items():
        logits = cached_logits(args.out / f"val_top{args.depth}_{mix_name(mix)}.npy", directory, config,
                               [queries[q] for q in first.query_id], [texts[p] for p in first.product_id])
        reranked = rerank(first, queries, texts, lambda *_, values=logits: values)
        per[mix] = per_query_metrics(reranked, judged.qrels).reindex(ids)
    query_boot = PairedBootstrap(np.array(ids), np.zeros(len(ids)), resamples=args.resamples, seed=0)

    rows, eligible = [], {}
    base = pair_scores[BASELINE]
    for mix in teachers:
        s = pair_scores[mix]
        row = {"random,mined per query": mix, "fit s": _fit_seconds(args.out, mix)}
        keeps = True
        for figure, fn in (("auc", lambda x: auc(x, labels, threshold=threshold)), ("spearman", lambda x: spearman(x, labels))):
            row[f"pair {figure}"] = f"{fn(s):.4f}"
            if mix != BASELINE:
                lo, hi = boot.difference(s, base, figure)
                row[f"pair {figure}"] += f" ({fn(s) - fn(base):+.4f} [{lo:+.4f}, {hi:+.4f}])"
                keeps = keeps and hi >= 0
        for figure in ("ndcg@10", "recall@10"):
            value = per[mix][figure].mean()
            row[f"two-stage {figure}"] = f"{value:.4f}"
            if mix != BASELINE:
                lo, hi = query_boot.mean_interval(per[mix][figure].to_numpy(), per[BASELINE][figure].to_numpy())
                row[f"two-stage {figure}"] += f" ({value - per[BASELINE][figure].mean():+.4f} [{lo:+.4f}, {hi:+.4f}])"
        rows.append(row)
        if keeps:
            eligible[mix] = per[mix]["ndcg@10"].mean()
    print(f"{len(val):,} labelled validation pairs of {val.query_id.nunique():,} queries; two-stage: "
          f"{len(ids):,} validation queries with a relevant product, dual encoder top {args.depth} from "
          f"{len(texts):,} products (alone: NDCG@10 {per['first stage']['ndcg@10'].mean():.4f}, recall@10 "
          f"{per['first stage']['recall@10'].mean():.4f}); every teacher scored with the bf16 backend\n")
    print(markdown_table(rows))
    best = max(eligible, key=eligible.get)
    print(f"\nchosen: {best} (random,mined per query): the best validation two-stage NDCG@10 among the mixes whose "
          "pair AUC and Spearman are not lower than without negatives beyond their intervals")


def _fit_seconds(out: Path, mix: str) -> str:
    path = out / mix_name(mix) / "fit_seconds.txt"
    return path.read_text().strip() if path.is_file() else "(the run's)"


if __name__ == "__main__":
    main()
