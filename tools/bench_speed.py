"""Scoring speed of the teacher and the students of a finished run, on its unseen test pairs.

    python tools/bench_speed.py --run-dir runs/home_depot [--repeats 5]

Times, back to back in one process on the same test pairs (this machine's speed swings up
to 3x within minutes, so only ratios measured together mean anything): the teacher
(length-sorted batches, as the pipeline scores it) once, then each student ``repeats``
times end to end from texts (tokenising and neighbour look-up included, as
``graphrel score`` does it). Prints a markdown table: pairs/s (median and best of the
student runs) and speed-up over the teacher.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from graphrel.run import TEACHER_DIR, load_run_pairs
from graphrel.scoring import StudentScorer, load_teacher, teacher_logits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", required=True, help="a finished `graphrel pipeline` run")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per student")
    args = parser.parse_args()
    run = Path(args.run_dir)
    pairs = load_run_pairs(run)
    test = pairs[pairs.split == "test"].reset_index(drop=True)
    texts = (test.query_id, test["query"], test.product_id, test.product_text)

    teacher = load_teacher(run / TEACHER_DIR)
    start = time.perf_counter()
    teacher_logits(teacher, test["query"], test.product_text, progress=False)
    teacher_speed = len(test) / (time.perf_counter() - start)
    rows = [("teacher", teacher_speed, teacher_speed)]
    for directory in sorted(d.parent for d in run.glob("student_*/student.json")):
        scorer = StudentScorer.load(directory)
        scorer.score(*(t[:256] for t in texts))  # warm-up: lazy tables
        speeds = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            scorer.score(*texts)
            speeds.append(len(test) / (time.perf_counter() - start))
        rows.append((directory.name, float(np.median(speeds)), max(speeds)))
    print(f"{len(test):,} unseen test pairs, {run}\n")
    print("| model | pairs/s (median) | pairs/s (best) | speed-up x teacher (median) |")
    print("|---|---|---|---|")
    for name, median, best in rows:
        print(f"| {name} | {median:,.0f} | {best:,.0f} | {median / teacher_speed:,.0f}x |")


if __name__ == "__main__":
    main()
