"""Student quality against transfer-set size: more candidates per query, or more queries.

    python tools/transfer_scaling.py --run-dir runs/home_depot --work-dir runs/scaling \
        --multiples 2 4 [--set student.similar_queries=4]

For a finished run whose transfer set holds T teacher-labelled pairs, and each multiple f:

- ``candidates xf``: every training query gets deeper lexical candidates (TF-IDF ranks beyond
  the run's, :func:`graphrel.data.transfer.transfer_candidates`) until the transfer set holds
  about f x T pairs;
- ``queries xf``: queries the log never held, cut from product titles
  (:func:`graphrel.data.transfer.generated_queries`; none with the text of a labelled query),
  each with the run's candidates per query (TF-IDF + random), until about f x T pairs.

Validation and test queries keep exactly the run's pairs. New pairs are labelled by the run's
teacher once per axis (the largest multiple; smaller points are nested subsets), in chunks that
survive kill -9 (:func:`graphrel.scoring.teacher_labelling.teacher_logits_resumable`); the
teacher's CPU-hours (wall seconds x threads) are recorded beside each point. Each point
(``1x`` is the run's own transfer set) builds its graphs, trains ``student_k0`` and
``student_korder`` with the run's config (plus ``--set``), and scores the **validation** pairs
under the ``new_query`` and ``logged`` graphs with 95% intervals
(``tools/choose_on_validation.py``); test labels are never read.

Writes ``WORK/scaling.json``, ``WORK/scaling.md`` and ``WORK/scaling.png``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from choose_on_validation import compare, with_values  # noqa: E402  (a sibling tool)

LINKED = ("label_scale.json", "teacher")
STUDENTS = ("student_k0", "student_korder")


def extensions(pairs: pd.DataFrame, multiples: list[int], config) -> dict[str, pd.DataFrame]:
    """The largest extension of each axis: new transfer rows (``query_id, query, product_id,
    product_text, rank``); a point of multiple f keeps the rows with ``rank`` < its cut."""
    from graphrel.data.split import training_pairs
    from graphrel.data.transfer import generated_queries, transfer_candidates

    labelled = pairs[pairs.split != "transfer"]
    base = set(zip(pairs.query_id, pairs.product_id))
    size = int((pairs.split == "transfer").sum())
    train_queries = pairs.loc[training_pairs(pairs) & (pairs.split == "train"), "query_id"].unique()
    extra = (max(multiples) - 1) * size
    depth = math.ceil(extra / len(train_queries))
    tfidf, random, seed = config.transfer.tfidf_per_query, config.transfer.random_per_query, config.seed
    per_query = max(tfidf + random, 1)
    mined = transfer_candidates(labelled, tfidf_per_query=tfidf + depth, random_per_query=0, seed=seed,
                                for_queries=train_queries)
    mined = mined[[pair not in base for pair in zip(mined.query_id, mined.product_id)]]
    mined = mined.assign(rank=mined.groupby("query_id").cumcount())  # 0 = the best new candidate
    generated = generated_queries(labelled, math.ceil(extra / per_query), seed=seed)
    found = transfer_candidates(labelled, tfidf_per_query=tfidf, random_per_query=random, seed=seed,
                                for_queries=[], extra_queries=generated)
    order = {query_id: i for i, query_id in enumerate(generated.query_id)}
    found = found.assign(rank=found.query_id.map(order))  # the first g generated queries
    return {"candidates": mined.drop(columns="source"), "queries": found.drop(columns="source")}


def cut(extension: pd.DataFrame, axis: str, rows_wanted: int) -> pd.DataFrame:
    """The smallest nested subset of ``extension`` with about ``rows_wanted`` rows."""
    if rows_wanted <= 0:
        return extension.iloc[:0]
    ranks = np.sort(extension["rank"].to_numpy())
    last = ranks[min(rows_wanted, len(ranks)) - 1]
    return extension[extension["rank"] <= last]


def label(teacher_dir: Path, extension: pd.DataFrame, parts: Path, config) -> tuple[np.ndarray, float]:
    """Teacher logits of the extension's pairs (resumable) and the teacher's CPU-seconds."""
    import torch

    from graphrel.scoring.teacher_labelling import load_teacher, teacher_logits_resumable

    teacher = load_teacher(teacher_dir, max_length=config.teacher.max_length, temperature=config.teacher.temperature)
    start = time.perf_counter()
    logits = teacher_logits_resumable(teacher, extension["query"], extension["product_text"], parts,
                                      batch_size=config.teacher.score_batch_size, progress=True)
    return logits, (time.perf_counter() - start) * torch.get_num_threads()


def point_run(run_dir: Path, directory: Path, rows: pd.DataFrame, logits: np.ndarray, config) -> Path:
    """A run directory of the run's pairs plus ``rows`` (split ``transfer``) with their logits."""
    import torch

    from graphrel import run as R
    from graphrel.pipeline.graph_stage import build_graphs

    directory.mkdir(parents=True, exist_ok=True)
    for item in LINKED:
        if not (directory / item).exists():
            os.symlink((run_dir / item).resolve(), directory / item)
    if not (directory / R.PAIRS).is_file():
        pairs = pd.read_parquet(run_dir / R.PAIRS)
        new = rows[["query_id", "query", "product_id", "product_text"]].assign(
            row_id=-1, relevance=np.nan, label=np.nan, split="transfer")
        scores = pd.read_parquet(run_dir / R.TEACHER_SCORES)
        new_scores = pd.DataFrame({"query_id": rows.query_id.to_numpy(), "product_id": rows.product_id.to_numpy(),
                                   "teacher_logit": logits, "teacher_score": torch.sigmoid(
                                       torch.from_numpy(logits) / config.teacher.temperature).numpy()})
        R.write_parquet(pd.concat([scores, new_scores], ignore_index=True), directory / R.TEACHER_SCORES)
        R.write_parquet(pd.concat([pairs, new[pairs.columns]], ignore_index=True), directory / R.PAIRS)
        (directory / "config.yaml").write_text((run_dir / "config.yaml").read_text())
    build_graphs(directory, R.load_run_pairs(directory))
    return directory


def train(directory: Path, config) -> dict[str, Path]:
    from graphrel.pipeline.student_stages import StudentFeaturizer, fit_student
    from graphrel.run import load_run_graph, load_run_pairs

    scored = load_run_pairs(directory)
    featurizer = StudentFeaturizer(directory, load_run_graph(directory), config.student.cap,
                                   config.student.similar_queries, config.student.min_similarity)
    out = {}
    for name, order in (("student_k0", 0), ("student_korder", config.student.order)):
        out[name] = fit_student(config, directory, name, order, scored, featurizer.for_student(name), progress=False)
    return out


def plot(points: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=False)
    for axis, metric in zip(axes, ("auc", "spearman")):
        for line, style in (("candidates", "o-"), ("queries", "s--")):
            for graph in ("new_query", "logged"):
                chosen = sorted((p for p in points if p["axis"] in (line, "base")), key=lambda p: p["transfer_pairs"])
                x = [p["transfer_pairs"] for p in chosen]
                y = [p["validation"][graph]["student_korder"][metric]["value"] for p in chosen]
                low = [v - p["validation"][graph]["student_korder"][metric]["interval"][0] for v, p in zip(y, chosen)]
                high = [p["validation"][graph]["student_korder"][metric]["interval"][1] - v for v, p in zip(y, chosen)]
                axis.errorbar(x, y, yerr=[low, high], fmt=style, capsize=3, label=f"more {line}, {graph}")
        axis.set_xscale("log", base=2)
        axis.set_xlabel("teacher-labelled transfer pairs")
        axis.set_ylabel(f"validation {metric} (student_korder, 95% interval)")
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def markdown(points: list[dict]) -> str:
    lines = ["| point | transfer pairs | teacher CPU-hours (added pairs) | graph | k0 AUC | korder AUC | korder − k0 AUC | "
             "k0 Spearman | korder Spearman | korder − k0 Spearman |", "|" + "---|" * 10]
    for p in points:
        for graph, rows in p["validation"].items():
            k0, korder = rows["student_k0"], rows["student_korder"]
            minus = korder.get("minus student_k0", {})

            def cell(figure):
                return f"{figure['value']:.4f} [{figure['interval'][0]:.4f}, {figure['interval'][1]:.4f}]"

            lines.append(f"| {p['name']} | {p['transfer_pairs']:,} | {p['teacher_cpu_hours']:.2f} | {graph} | "
                         f"{cell(k0['auc'])} | {cell(korder['auc'])} | {cell(minus['auc'])} | "
                         f"{cell(k0['spearman'])} | {cell(korder['spearman'])} | {cell(minus['spearman'])} |")
    return "\n".join(lines)


def main() -> None:
    from graphrel.pipeline.config_file import run_config

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", type=Path, required=True, help="a finished pipeline run (its teacher is reused)")
    parser.add_argument("--work-dir", type=Path, required=True)
    parser.add_argument("--multiples", type=int, nargs="+", default=[2, 4], help="transfer-set sizes, x the run's")
    parser.add_argument("--axes", nargs="+", default=["candidates", "queries"], choices=("candidates", "queries"))
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE[,...]",
                        help="config values for every point's students (as choose_on_validation --alternative)")
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args()
    if any(m < 2 for m in args.multiples):
        parser.error("--multiples must be whole numbers >= 2 (1x is the run itself)")
    config = run_config(args.run_dir)
    for assignments in args.set:
        config = with_values(config, assignments)
    from graphrel.run import load_run_pairs

    pairs = load_run_pairs(args.run_dir)  # test labels withheld
    size = int((pairs.split == "transfer").sum())
    work = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    results_path = work / "scaling.json"
    done = {p["name"]: p for p in json.loads(results_path.read_text())["points"]} if results_path.is_file() else {}
    largest = extensions(pairs, args.multiples, config)  # labelled for the largest multiple asked for
    planned = [("1x", "base", 1)] + [(f"{axis} x{m}", axis, m) for axis in args.axes for m in args.multiples]
    labelled: dict[str, tuple[np.ndarray, float]] = {}
    # points of earlier calls (another --axes or --multiples) stay in the results
    points = [point for name, point in done.items() if name not in {name for name, _, _ in planned}]
    for name, axis, multiple in planned:
        if name in done:
            points.append(done[name])
            continue
        rows = largest["candidates"].iloc[:0] if axis == "base" else cut(largest[axis], axis, (multiple - 1) * size)
        cpu_seconds = 0.0
        logits = np.empty(0, dtype=np.float32)
        if axis != "base":
            if axis not in labelled:
                labelled[axis] = label(args.run_dir / "teacher", largest[axis], work / f"{axis}.parts", config)
            all_logits, seconds = labelled[axis]
            logits = all_logits[largest[axis].index.get_indexer(rows.index)]
            cpu_seconds = seconds * len(rows) / len(largest[axis])
        directory = point_run(args.run_dir, work / name.replace(" ", "_"), rows, logits, config)
        models = train(directory, config)
        result = compare(directory, models, resamples=args.resamples, seed=config.seed)
        points.append({"name": name, "axis": axis, "multiple": multiple, "transfer_pairs": size + len(rows),
                       "new_pairs": len(rows), "new_queries": int(rows.query_id.nunique()) if axis == "queries" else 0,
                       "teacher_cpu_hours": cpu_seconds / 3600, "validation": result["graphs"]})
        results_path.write_text(json.dumps({"run": str(args.run_dir), "base_transfer_pairs": size,
                                            "points": points}, indent=1, default=float))
        print(f"{name}: {size + len(rows):,} transfer pairs done", flush=True)
    (work / "scaling.md").write_text(markdown(points) + "\n")
    plot(points, work / "scaling.png")
    print(markdown(points))
    print(f"\nwritten: {results_path}, {work / 'scaling.md'}, {work / 'scaling.png'}")


if __name__ == "__main__":
    main()
