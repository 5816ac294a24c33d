"""One benchmark over every model of a finished run, on its unseen test pairs.

    python tools/bench_students.py --run-dir runs/home_depot [--protocol new_query] [--students DIR ...]
        [--repeats 5]

Rows (each model scored in its own fresh process, one after the other, so that its peak
memory is its own; speeds are only comparable within one run of this tool, because this
machine's speed swings up to 3x within minutes):

- ``teacher``: the cross-encoder as the pipeline scores (length-sorted batches, inference mode);
- ``teacher (plain padded)``: the same, unsorted batches padded to max_length: the baseline of
  the optimised labelling path;
- ``teacher (int8)``: dynamic int8 quantisation of its linear layers; ``Spearman vs fp32``
  compares its scores with the full-precision teacher's;
- ``teacher_lexical`` and ``teacher_stack`` when the run stacked teachers (``stack/``); the
  stack's pairs/s counts both teachers' time, its peak memory is the lexical teacher's process
  (the cross-encoder's is the ``teacher`` row);
- every ``RUN/student_*/`` and each ``--students`` directory (BERT2DNN, ...), end to end from
  texts through ``graphrel.scoring.load.load_scorer``, graph students reading the ``--protocol``'s
  graph (``new_query``: no test query is in it; ``new_pairs``: the run's ``graph.pt``).

Every model is timed alike (:func:`graphrel.pipeline.timing.median_seconds`): the median of
``--repeats`` runs over the evaluated test pairs, each after emptying the model's text caches
and a warm-up on 256 validation pairs.

Columns: parameters, RMSE (label scale), AUC, Spearman, NDCG@10, % of the teacher's AUC and
Spearman, pairs/s, speed-up over the teacher, peak memory (MB, the process's maximum RSS:
Python, libraries and model included). Printed as markdown and saved as
``RUN/bench-<protocol>.md``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np


def _test_pairs(run: Path):
    """The evaluated test pairs and the warm-up pairs (validation) of a run."""
    from graphrel.run import load_run_pairs

    pairs = load_run_pairs(run, test_labels=True)
    return pairs[pairs.split == "test"].reset_index(drop=True), pairs[pairs.split == "val"].head(256)


def _parameters(module) -> int:
    return int(sum(p.numel() for p in module.parameters()))


def _peak_memory_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def worker(kind: str, run: Path, path: str | None, repeats: int, protocol: str) -> dict:
    """Score the test pairs with one model; return its scores, speed, size and peak memory."""
    import torch

    from graphrel.pipeline.protocols import PROTOCOL_GRAPHS
    from graphrel.pipeline.timing import median_seconds
    from graphrel.scoring.load import load_scorer
    from graphrel.scoring.teacher_labelling import load_teacher, quantize_teacher, teacher_logits

    test, warmup = _test_pairs(run)
    out: dict = {}
    if kind in ("teacher", "teacher_plain", "teacher_int8"):
        teacher = load_teacher(run / "teacher")
        temperature = teacher.hparams.temperature
        if kind == "teacher_int8":
            quantize_teacher(teacher)

        def score(frame):
            return teacher_logits(teacher, frame["query"], frame.product_text, progress=False,
                                  sort_by_length=kind != "teacher_plain", pad_to_max_length=kind == "teacher_plain")

        logits = score(test)
        scores = torch.sigmoid(torch.from_numpy(logits) / temperature).numpy()
        reset = None
        out["parameters"] = _parameters(teacher.model)
        if kind == "teacher_int8":
            from scipy.stats import spearmanr

            out["spearman_vs_fp32"] = float(spearmanr(logits, test.get("cross_encoder_logit", test.teacher_logit)
                                                      ).statistic)
    elif kind in ("teacher_lexical", "teacher_stack"):
        import joblib

        from graphrel.teachers.stacking import TeacherStack

        lexical = joblib.load(run / "stack" / "lexical_teacher.joblib")

        def score(frame):
            return lexical.logits(frame["query"], frame.product_text)

        logits = score(test)
        if kind == "teacher_stack":  # cross-encoder time added by the caller
            stack = TeacherStack.from_dict(json.loads((run / "stack" / "stack.json").read_text()))
            logits = stack.logits(np.stack([test.cross_encoder_logit.to_numpy(), logits], 1))
        scores, reset = 1 / (1 + np.exp(-logits)), None
        out["parameters"] = None
    else:
        scorer = load_scorer(path, graph=run / PROTOCOL_GRAPHS[protocol])

        def score(frame):
            return scorer.score(frame.query_id, frame["query"], frame.product_id, frame.product_text)

        scores, reset = score(test), scorer.reset_text_caches
        out["parameters"] = _parameters(scorer.model)
    seconds = median_seconds(score, test, warmup=warmup, repeats=repeats, reset=reset)
    out.update(pairs_per_second=len(test) / seconds, seconds=seconds, peak_memory_mb=_peak_memory_mb(),
               scores=np.asarray(scores, dtype=np.float64).tolist())
    return out


def _run_worker(kind: str, run: Path, path: str | None, repeats: int, protocol: str) -> dict:
    command = [sys.executable, __file__, "--worker", kind, "--run-dir", str(run), "--repeats", str(repeats),
               "--protocol", protocol]
    if path:
        command += ["--path", str(path)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{kind} {path or ''} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", required=True, help="a finished `graphrel pipeline` run")
    parser.add_argument("--students", nargs="*", default=[], help="extra student directories (e.g. BERT2DNN)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per model (median), >= 1")
    parser.add_argument("--protocol", choices=("new_query", "new_pairs"), default="new_query",
                        help="the graph graph students read (see graphrel.pipeline.evaluation)")
    parser.add_argument("--no-int8", action="store_true", help="skip the int8 teacher row")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    run = Path(args.run_dir)
    if args.worker:
        print(json.dumps(worker(args.worker, run, args.path, args.repeats, args.protocol)))
        return

    from graphrel.metrics import relevance_metrics
    from graphrel.pipeline.report import markdown_table

    test, _ = _test_pairs(run)
    metrics = json.loads((run / "metrics.json").read_text())
    low, high = metrics["label_scale"]
    label_range, threshold = high - low, (metrics["relevance_threshold"] - low) / (high - low)
    jobs = [("teacher", "teacher", None), ("teacher (plain padded)", "teacher_plain", None)]
    if not args.no_int8:
        jobs.append(("teacher (int8)", "teacher_int8", None))
    if (run / "stack" / "stack.json").is_file():
        jobs += [("teacher_lexical", "teacher_lexical", None), ("teacher_stack", "teacher_stack", None)]
    students = sorted(d.parent for d in run.glob("student_*/student.json")) + [Path(s) for s in args.students]
    jobs += [(d.name, "student", d) for d in students]
    rows = {}
    for name, kind, path in jobs:
        print(f"benchmarking {name} ...", file=sys.stderr, flush=True)
        result = _run_worker(kind, run, path, args.repeats, args.protocol)
        if kind == "teacher_stack":  # the stack runs the cross-encoder and the lexical teacher
            result["pairs_per_second"] = len(test) / (result["seconds"] + rows["teacher"]["seconds"])
        scores = np.asarray(result.pop("scores"))
        rows[name] = {**relevance_metrics(scores, test.label, test.query_id, label_range=label_range,
                                          threshold=threshold), **result}
    teacher = rows["teacher"]
    for name, row in rows.items():
        row["ratio_to_teacher"] = {k: row[k] / teacher[k] for k in ("auc", "spearman", "ndcg@10")}
        row["speedup_vs_teacher"] = row["pairs_per_second"] / teacher["pairs_per_second"]

    command = f"python tools/bench_students.py --run-dir {run} --protocol {args.protocol}" + (
        f" --students {' '.join(args.students)}" if args.students else "")
    lines = [f"{len(test):,} evaluated test pairs of `{run}`, protocol {args.protocol}: `{command}`\n",
             markdown_table([{
                 "model": name, "parameters": f"{r['parameters'] / 1e6:.2f}M" if r.get("parameters") else "-",
                 "RMSE": f"{r['rmse']:.3f}", "AUC": f"{r['auc']:.3f}", "Spearman": f"{r['spearman']:.3f}",
                 "NDCG@10": f"{r['ndcg@10']:.3f}", "AUC % teacher": f"{100 * r['ratio_to_teacher']['auc']:.1f}%",
                 "Spearman % teacher": f"{100 * r['ratio_to_teacher']['spearman']:.1f}%",
                 "pairs/s": f"{r['pairs_per_second']:,.0f}", "speed-up x teacher": f"{r['speedup_vs_teacher']:,.1f}x",
                 "peak memory (MB)": f"{r['peak_memory_mb']:,.0f}"} for name, r in rows.items()])]
    if "teacher (int8)" in rows:
        lines.append(f"\nint8 teacher vs full precision: Spearman {rows['teacher (int8)']['spearman_vs_fp32']:.4f} "
                     "(kept only if >= 0.99)")
    labelling = rows["teacher"]["pairs_per_second"] / rows["teacher (plain padded)"]["pairs_per_second"]
    lines.append(f"\nteacher labelling, length-sorted vs plain padded batches: {labelling:.2f}x")
    table = "\n".join(lines)
    print(table)
    (run / f"bench-{args.protocol}.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
