"""Choose the XMC transfer threshold of Blend and Match on validation queries, never on test queries.

    python tools/choose_xmc_on_validation.py --run-dir runs/home_depot \
        [--thresholds none,0.5,0.6,0.7,0.8,0.9] [--baseline 0.7] [--out xmc_validation.json]

``retrieval.xmc_transfer_threshold`` decides which transfer pairs of the training queries the XMC
model (:mod:`graphrel.retrieval.encoding.xmc`) also learns from: those whose teacher score is at or above
it (``none``: the labelled pairs only). For each threshold this script trains the XMC model
exactly as the retrieval stage does (:func:`graphrel.retrieval.blend_stage.build_xmc_retriever`:
:func:`~graphrel.retrieval.encoding.xmc.xmc_training_examples` on the ``train`` split plus the transfer
pairs of training queries, the run's ``retrieval`` options from its ``config.yaml``, one napkinxc
thread by default), retrieves the top 100 catalogue products of every **validation** query
(split ``val``) with at least one judged-relevant product (label >= ``relevance_threshold``, 2.5
on Home Depot's 1-3), and reports recall@10 and recall@100 against those judged products
(unjudged products count as misses), each with a 95% interval, and each threshold's recall@100
difference from ``--baseline`` with a 95% interval: the paired bootstrap over validation queries
(:class:`graphrel.intervals.PairedBootstrap`, the same query draws for every threshold).

Validation queries are unseen in training (their pairs and transfer pairs are never used), so
they stand in for the test queries. The test queries are not used: their labels stay withheld
(``test_labels.parquet`` is never read).

Choice rule (printed and stored as ``choice``): keep the baseline unless another threshold's
recall@100 difference from it has a 95% interval above 0; then the one with the best validation
recall@100 among those.

Prints a markdown table and writes it as JSON to ``--out``. Models go to ``--work-dir`` (reused
there by build key on a second run) or to a temporary directory removed at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

DEFAULT_THRESHOLDS = "none,0.5,0.6,0.7,0.8,0.9"
DEPTH = 100
CUTOFFS = (10, 100)


def parse_threshold(text: str) -> float | None:
    """``none`` / ``null`` -> None, else a teacher score in [0, 1]."""
    text = text.strip().lower()
    if text in ("none", "null"):
        return None
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"threshold {text} is not a teacher score in [0, 1] (or none)")
    return value


def name_of(threshold: float | None) -> str:
    return "none" if threshold is None else f"{threshold:g}"


def run_retrieval_config(run_dir: Path, threads: int):
    """The run's ``retrieval`` options (its ``config.yaml``), ``threads`` set."""
    from graphrel.pipeline.config_file import run_config

    return dataclasses.replace(run_config(run_dir).retrieval, threads=threads)


def per_query_recall(indices: np.ndarray, product_ids: np.ndarray, query_ids, qrels: dict, k: int) -> np.ndarray:
    """(Q,) recall@k of each query (order of ``query_ids``) by :func:`graphrel.metrics.recall_at_k`."""
    from graphrel.metrics import recall_at_k

    return np.array([recall_at_k([product_ids[row]], [qrels[q]], k=k) for q, row in zip(query_ids, indices)])


def interval_text(value: float, bounds) -> str:
    return f"{value:.3f} [{bounds[0]:.3f}, {bounds[1]:.3f}]"


def evaluate(args, work: Path) -> dict:
    from graphrel.intervals import PairedBootstrap
    from graphrel.retrieval.blend_stage import build_xmc_retriever
    from graphrel.retrieval.config import BlendOptions
    from graphrel.retrieval.build_keys import key as build_key
    from graphrel.retrieval.search.catalogue import Catalogue, judged_test_queries, normalised_threshold
    from graphrel.retrieval.measures.evaluation import retrieval_metrics, run_frame
    from graphrel.retrieval.serving.retriever import Retriever
    from graphrel.run import load_run_pairs

    run_dir = Path(args.run_dir)
    config = run_retrieval_config(run_dir, args.threads)
    base = BlendOptions.from_config(config)
    pairs = load_run_pairs(run_dir)  # test labels withheld (NaN)
    scale_path = run_dir / "label_scale.json"
    threshold = normalised_threshold(config.relevance_threshold,
                                     json.loads(scale_path.read_text()) if scale_path.is_file() else None)
    catalogue = Catalogue.from_pairs(pairs)
    val = judged_test_queries(pairs, threshold=threshold, splits=("val",))
    train_ids = set(pairs.loc[pairs["split"] == "train", "query_id"].astype(str))
    if train_ids & set(val.query_ids):
        sys.exit("validation queries overlap the training queries: not a query-disjoint split")
    boot = PairedBootstrap(val.query_ids, np.zeros(len(val.query_ids)), resamples=args.resamples, seed=args.seed)
    columns = ["query_id", "query", "product_id", "split", "label", "teacher_score"]
    fingerprint = hashlib.sha256(pd.util.hash_pandas_object(pairs[columns].astype(str), index=False)
                                 .to_numpy().tobytes()).hexdigest()

    rows, per_query = [], {}
    for transfer in args.thresholds:
        name = name_of(transfer)
        options = dataclasses.replace(base, xmc_transfer_threshold=transfer).check()
        xmc_fields = {f.name: getattr(options, f.name) for f in dataclasses.fields(options)
                      if f.name.startswith("xmc_")}
        key = build_key(pairs=fingerprint, threshold=threshold, seed=config.seed, **xmc_fields)
        directory = work / f"xmc_{name}"
        start = time.perf_counter()
        model = build_xmc_retriever(pairs, catalogue, options, threshold=threshold, seed=config.seed,
                                    threads=config.threads, directory=directory, key=key)
        build_seconds = time.perf_counter() - start
        retriever = Retriever.load(directory)
        indices, scores = retriever.search_rows(list(val.queries), DEPTH)
        run = run_frame(val.query_ids, catalogue.product_ids, indices, scores)
        checked = retrieval_metrics(run, val.qrels)  # ir_measures, as the retrieval stage's table
        figures = {k: per_query_recall(indices, catalogue.product_ids, val.query_ids, val.qrels, k) for k in CUTOFFS}
        for k in CUTOFFS:
            if abs(figures[k].mean() - checked[f"recall@{k}"]) > 1e-6:
                sys.exit(f"recall@{k} of {name}: {figures[k].mean()} here, {checked[f'recall@{k}']} by ir_measures")
        per_query[name] = figures
        counts = retriever.manifest.get("pairs", {})
        rows.append({"threshold": transfer, "name": name,
                     "labelled_pairs": int(counts.get("labelled_pairs", 0)),
                     "transfer_pairs": int(counts.get("transfer_pairs", 0)),
                     "training_pairs": int(model.training["pairs"]),
                     "training_queries": int(model.training["examples"]), "labels": len(model),
                     **{f"recall@{k}": float(figures[k].mean()) for k in CUTOFFS},
                     **{f"recall@{k}_interval": list(boot.mean_interval(figures[k])) for k in CUTOFFS},
                     "fit_seconds": float(model.training["train_seconds"]), "build_seconds": build_seconds})
        print(f"{name}: {model.training['pairs']} pairs, recall@100 {figures[100].mean():.3f} "
              f"({model.training['train_seconds']:.0f} s fit)", file=sys.stderr, flush=True)

    baseline = name_of(args.baseline)
    for row in rows:
        difference = per_query[row["name"]][100] - per_query[baseline][100]
        row["recall@100_minus_baseline"] = float(difference.mean())
        row["recall@100_minus_baseline_interval"] = list(boot.mean_interval(per_query[row["name"]][100],
                                                                            baseline=per_query[baseline][100]))
    better = [r for r in rows if r["name"] != baseline and r["recall@100_minus_baseline_interval"][0] > 0]
    choice = max(better, key=lambda r: r["recall@100"]) if better else next(r for r in rows if r["name"] == baseline)
    return {"run_dir": str(run_dir), "baseline": args.baseline, "choice": choice["threshold"],
            "choice_rule": "keep the baseline unless another threshold's recall@100 difference from it has a 95% "
                           "interval above 0; then the best validation recall@100 among those",
            "validation_queries": len(val), "validation_queries_without_relevant": val.without_relevant,
            "relevance_threshold": config.relevance_threshold, "relevance_threshold_normalised": threshold,
            "catalogue_products": len(catalogue), "depth": DEPTH, "resamples": args.resamples,
            "bootstrap_seed": args.seed, "threads": config.threads,
            "xmc_options": {f.name: getattr(base, f.name) for f in dataclasses.fields(base)
                            if f.name.startswith("xmc_") and f.name != "xmc_transfer_threshold"},
            "rows": rows}


def markdown(result: dict) -> str:
    from graphrel.pipeline.reading import format_difference

    baseline = name_of(result["baseline"])
    lines = [f"XMC transfer threshold on {result['validation_queries']} validation queries with a relevant judged "
             f"product (run {result['run_dir']}; {result['catalogue_products']} catalogue products; 95% intervals: "
             f"paired bootstrap over validation queries, {result['resamples']} resamples)", "",
             f"| threshold | training pairs (labelled + transfer) | recall@10 [95%] | recall@100 [95%] "
             f"| Δ recall@100 vs {baseline} [95%] | fit s |",
             "|---|---|---|---|---|---|"]
    for r in result["rows"]:
        delta = "—" if r["name"] == baseline else format_difference(
            {"difference": r["recall@100_minus_baseline"], "interval": r["recall@100_minus_baseline_interval"]})
        lines.append(f"| {r['name']} | {r['training_pairs']:,} ({r['labelled_pairs']:,} + {r['transfer_pairs']:,}) "
                     f"| {interval_text(r['recall@10'], r['recall@10_interval'])} "
                     f"| {interval_text(r['recall@100'], r['recall@100_interval'])} | {delta} "
                     f"| {r['fit_seconds']:.0f} |")
    lines += ["", f"Choice: {name_of(result['choice'])} ({result['choice_rule']})."]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run-dir", required=True, help="a finished pipeline run (pairs, teacher scores)")
    parser.add_argument("--thresholds", default=DEFAULT_THRESHOLDS,
                        help=f"comma-separated teacher-score thresholds, 'none' = labelled pairs only "
                             f"(default {DEFAULT_THRESHOLDS})")
    parser.add_argument("--baseline", type=parse_threshold, default=0.7,
                        help="the threshold differences are taken from (default 0.7, the current default)")
    parser.add_argument("--out", default="xmc_validation.json", help="JSON output (default: ./xmc_validation.json)")
    parser.add_argument("--work-dir", default=None, help="keep the XMC models here (default: a temporary dir)")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument("--threads", type=int, default=1, help="napkinxc threads (default 1)")
    args = parser.parse_args(argv)
    args.thresholds = [parse_threshold(t) for t in args.thresholds.split(",") if t.strip()]
    if args.baseline not in args.thresholds:
        args.thresholds.append(args.baseline)
    if len({name_of(t) for t in args.thresholds}) != len(args.thresholds):
        parser.error("a threshold is listed twice")
    if args.work_dir:
        work = Path(args.work_dir)
        work.mkdir(parents=True, exist_ok=True)
        result = evaluate(args, work)
    else:
        with tempfile.TemporaryDirectory(prefix="xmc_validation_") as tmp:
            result = evaluate(args, Path(tmp))
    table = markdown(result)
    result["markdown"] = table
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(table)


if __name__ == "__main__":
    main()
