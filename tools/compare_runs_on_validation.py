"""Two runs of the same split compared on the validation queries: every model's AUC and
Spearman on the same validation pairs, and the difference (run B minus run A) with its 95%
interval (paired bootstrap over queries). For a default chosen on validation, e.g. the teacher
scoring backend: run A labelled with fp32, run B with bf16, students trained on each.

    python tools/compare_runs_on_validation.py --run-a runs/fp32_labels --run-b runs/bf16_labels

Graph students score the validation pairs with ``graph_new_query.pt`` (no validation query
has an edge in it: the ``new_query`` protocol's view of validation queries).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from graphrel.intervals import PairedBootstrap
from graphrel.metrics import auc, spearman
from graphrel.pipeline.calibration_stage import validation_scores
from graphrel.pipeline.evaluation import label_scale, validation_threshold
from graphrel.pipeline.config_file import run_config
from graphrel.pipeline.report import markdown_table

STUDENTS = ("student_k0", "student_korder", "student_online", "student_bert2dnn")


def scores(run: Path) -> pd.DataFrame:
    scored = pd.read_parquet(run / "pairs.parquet").merge(pd.read_parquet(run / "teacher_scores.parquet"),
                                                          on=["query_id", "product_id"])
    return validation_scores(run, scored, {name: run / name for name in STUDENTS if (run / name).is_dir()},
                             temperature=run_config(run).teacher.temperature)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-a", type=Path, required=True)
    parser.add_argument("--run-b", type=Path, required=True)
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args()
    a, b = scores(args.run_a), scores(args.run_b)
    if not (a["query_id"].equals(b["query_id"]) and a["product_id"].equals(b["product_id"])):
        raise SystemExit("the two runs have different validation pairs: compare runs of one split")
    low, high = label_scale(args.run_a)
    threshold = validation_threshold(run_config(args.run_a), args.run_a)
    boot = PairedBootstrap(a["query_id"].to_numpy(), a["label"].to_numpy(), threshold=threshold,
                           label_range=high - low, resamples=args.resamples, seed=0)
    rows = []
    for column in [c for c in a.columns if c not in ("query_id", "product_id", "label") and c in b]:
        for name, figure in (("auc", lambda s, y: auc(s, y, threshold=threshold)), ("spearman", spearman)):
            va, vb = figure(a[column].to_numpy(), a["label"].to_numpy()), figure(b[column].to_numpy(), b["label"].to_numpy())
            lo, hi = boot.difference(b[column].to_numpy(), a[column].to_numpy(), name)
            rows.append({"model": column, "figure": name, "run A": f"{va:.4f}", "run B": f"{vb:.4f}",
                         "B - A [95%]": f"{vb - va:+.4f} [{lo:+.4f}, {hi:+.4f}]"})
    print(f"{len(a):,} validation pairs of {a['query_id'].nunique():,} queries; A = {args.run_a}, B = {args.run_b}\n")
    print(markdown_table(rows))


if __name__ == "__main__":
    main()
