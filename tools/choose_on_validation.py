"""Choose student settings on the validation queries of a finished run, never on its test queries.

    python tools/choose_on_validation.py --run-dir runs/home_depot --work-dir runs/choice \
        --alternative share0=student.new_query_share=0.0 --alternative share05=student.new_query_share=0.5

Every model is scored on the run's **validation pairs** (split ``val``: labels the students
never trained on; the checkpoints were selected on them, so the figures are a little
optimistic for every model alike) under two graphs:

- ``new_query``: ``graph_new_query.pt``, which holds no edge of any validation query (a query new
  to the log, as the test protocol of that name);
- ``logged``: ``graph.pt``, where the query's other judged pairs and transfer candidates are
  edges (a pair's own edge is never read): the validation counterpart of ``new_pairs``.

Compared, with 95% intervals (paired bootstrap over validation queries) on AUC, Spearman and
RMSE and on each difference from ``student_k0``:

- the run's students, graph students with and without their text fallback (the fallback is
  an inference-time route: the same trained weights, so both come from one model);
- each ``--alternative NAME=SECTION.KEY=VALUE[,SECTION.KEY=VALUE]``: the run's k-order
  student (``student_korder``, and BERM-O distilled from it when ``student.online``; with
  ``--student student_bert2dnn`` the BERT2DNN student) trained again in ``WORK/NAME`` with those config values, on the run's own pairs, teacher
  scores and graph (the run's files are linked, never changed; its test labels stay withheld).

Prints a markdown table per graph and writes ``WORK/validation_choice.json``. Nothing here
reads ``test_labels.parquet``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

import yaml

from graphrel.pipeline.config_file import run_config
from graphrel.pipeline.evaluation import label_scale

METRICS = ("auc", "spearman", "rmse")
GRAPHS = {"new_query": "graph_new_query.pt", "logged": "graph.pt"}
LINKED = ("pairs.parquet", "label_scale.json", "teacher", "teacher_scores.parquet", "stacked_scores.parquet",
          "graph.pt", "graph_new_query.pt", "student_k0")


def with_values(config, assignments: str):
    """``config`` with ``SECTION.KEY=VALUE[,SECTION.KEY=VALUE]`` set (values read as YAML)."""
    for assignment in assignments.split(","):
        dotted, _, value = assignment.partition("=")
        section, _, key = dotted.strip().partition(".")
        if not hasattr(config, section) or not hasattr(getattr(config, section), key):
            sys.exit(f"unknown setting {dotted!r} (SECTION.KEY of the pipeline config)")
        part = dataclasses.replace(getattr(config, section), **{key: yaml.safe_load(value)})
        config = dataclasses.replace(config, **{section: part})
    return config


def train_alternative(run_dir: Path, work: Path, name: str, config, student: str) -> dict[str, Path]:
    """Train ``student`` with ``config`` in ``work/name`` (the run's inputs linked), and BERM-O
    distilled from it when it is the k-order student and ``student.online``; their directories."""
    from graphrel.pipeline.config import check_config
    from graphrel.pipeline.student_stages import (StudentFeaturizer, fit_bert2dnn_student, fit_online_student,
                                                  fit_student)
    from graphrel.run import load_run_graph, load_run_pairs

    check_config(config)
    alternative = work / name
    alternative.mkdir(parents=True, exist_ok=True)
    for item in LINKED:
        if (run_dir / item).exists() and not (alternative / item).exists():
            os.symlink((run_dir / item).resolve(), alternative / item)
    scored = load_run_pairs(alternative)  # test labels withheld
    if student == "student_bert2dnn":
        return {student: fit_bert2dnn_student(config, alternative, scored, progress=False)}
    featurizer = StudentFeaturizer(alternative, load_run_graph(alternative), config.student.cap,
                                   config.student.similar_queries, config.student.min_similarity)
    out = {student: fit_student(config, alternative, student, config.student.order, scored,
                                featurizer.for_student(student), progress=False)}
    if config.student.online and config.student.order > 0:
        out["student_online"] = fit_online_student(config, alternative, scored, featurizer.for_student("student_online"),
                                                   out[student], progress=False)
    return out


def validation_scores(directory: Path, graph: Path, val) -> dict:
    """Scores of the validation pairs: ``{"": (N,) scores}``, plus ``" (no fallback)"``: the
    graph path for every pair, where the text fallback took some; and ``"paths"``: the
    scorer's pairs per scoring path."""
    from graphrel.scoring.load import load_scorer

    scorer = load_scorer(directory, graph=graph)
    args = (val.query_id, val["query"], val.product_id, val.product_text)
    out = {"": scorer.score(*args)}
    paths = scorer.paths(val.query_id, val.product_id, queries=val["query"])
    if paths.get("text_fallback", 0) > 0:
        scorer.model.text_fallback = None  # the graph path for every pair: the same weights, no route
        out[" (no fallback)"] = scorer.score(*args)
    out["paths"] = paths
    return out


def compare(run_dir: Path, models: dict[str, Path], *, resamples: int, seed: int, reference: str | None = None) -> dict:
    """Every model on the validation pairs under both graphs, with intervals, and each
    one's differences from ``student_k0`` and from ``reference`` (a model name)."""
    from graphrel.pipeline.evaluation import QualityFigures, validation_threshold
    from graphrel.run import load_run_pairs

    pairs = load_run_pairs(run_dir)
    val = pairs[pairs.split == "val"].reset_index(drop=True)
    config = run_config(run_dir)
    low, high = label_scale(run_dir)
    quality = QualityFigures(val, threshold=validation_threshold(config, run_dir), label_range=high - low,
                             resamples=resamples, seed=seed, min_pairs=config.evaluation.ndcg_min_pairs)
    out = {"validation_pairs": len(val), "validation_queries": int(val.query_id.nunique()), "graphs": {}}
    for graph_name, graph_file in GRAPHS.items():
        rows = {}
        for name, directory in models.items():
            scored = validation_scores(directory, run_dir / graph_file, val)
            paths = scored.pop("paths")
            for suffix, scores in scored.items():
                key = f"{graph_name}:{name}{suffix}"
                figures = quality.of(key, scores)
                rows[name + suffix] = {m: {"value": figures["values"][m], "interval": figures["intervals"][m]}
                                       for m in METRICS}
                rows[name + suffix]["paths"] = paths if not suffix else {"graph": len(val)}
        for name, row in rows.items():
            for base in ("student_k0", reference):
                if base and name != base and base in rows:
                    difference = quality.difference(f"{graph_name}:{name}", f"{graph_name}:{base}")
                    row[f"minus {base}"] = {m: {"value": difference[m]["difference"],
                                                "interval": difference[m]["interval"]} for m in METRICS}
        out["graphs"][graph_name] = rows
    return out


def markdown(result: dict, reference: str | None = None) -> str:
    from graphrel.pipeline.reading import format_difference

    bases = ["student_k0"] + ([reference] if reference else [])
    lines = [f"Validation: {result['validation_pairs']:,} pairs of {result['validation_queries']:,} queries."]
    for graph_name, rows in result["graphs"].items():
        header = ["model", "AUC", "Spearman", "RMSE"] + [f"{m} − {b}" for b in bases for m in ("AUC", "Spearman", "RMSE")]
        lines += ["", f"### {graph_name}", "", "| " + " | ".join(header + ["text fallback pairs"]) + " |",
                  "|" + "---|" * (len(header) + 1)]
        for key, row in rows.items():
            cells = [f"{row[m]['value']:.4f} [{row[m]['interval'][0]:.4f}, {row[m]['interval'][1]:.4f}]"
                     for m in METRICS]
            deltas = [format_difference({"difference": row[f"minus {b}"][m]["value"],
                                         "interval": row[f"minus {b}"][m]["interval"]}, 4)
                      if f"minus {b}" in row else "" for b in bases for m in METRICS]
            lines.append(f"| {key} | " + " | ".join(cells + deltas) + f" | {row['paths'].get('text_fallback', '')} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", type=Path, required=True, help="a finished pipeline run")
    parser.add_argument("--work-dir", type=Path, help="where alternatives are trained (needed with --alternative)")
    parser.add_argument("--alternative", action="append", default=[], metavar="NAME=SECTION.KEY=VALUE[,...]")
    parser.add_argument("--student", default="student_korder", choices=("student_korder", "student_bert2dnn"),
                        help="the student the alternatives retrain")
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--reference", help="a model every other is also compared with (default: the run's "
                        "student_korder; with --student student_bert2dnn the first alternative)")
    args = parser.parse_args()
    if args.alternative and args.work_dir is None:
        parser.error("--alternative needs --work-dir")
    base = run_config(args.run_dir)
    models = {name: args.run_dir / name for name in ("student_k0", "student_korder", "student_online",
                                                     "student_bert2dnn") if (args.run_dir / name).is_dir()}
    for alternative in args.alternative:
        name, _, assignments = alternative.partition("=")
        trained = train_alternative(args.run_dir, args.work_dir, name, with_values(base, assignments), args.student)
        for student, directory in trained.items():
            models[f"{student} [{name}: {assignments}]"] = directory
    reference = args.reference or ("student_korder" if args.student == "student_korder" and "student_korder" in models
                                   else next(iter(k for k in models if k.startswith(args.student)), None))
    result = compare(args.run_dir, models, resamples=args.resamples, seed=base.seed, reference=reference)
    result["reference"] = reference
    print(markdown(result, reference))
    out = (args.work_dir or args.run_dir) / "validation_choice.json"
    out.write_text(json.dumps(result, indent=1, default=float))
    print(f"\nwritten: {out}")


if __name__ == "__main__":
    main()
