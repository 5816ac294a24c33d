"""Latency of one online request (one query, 100 candidate products) for every model of a run.

    python tools/bench_latency.py --run-dir runs/home_depot [--protocol new_query] [--models NAME ...]
        [--queries 50] [--candidates 100] [--repeats 5] [--warmup 3] [--threads 1 2]
        [--teacher-backends fp32 bf16] [--seed 0] [--out runs/home_depot/bench-latency-new_query.md]

Measures the wall time (``time.perf_counter``) of one ``scorer.score(query_ids, queries,
product_ids, product_texts)`` call on one request, end to end from texts (tokenising, graph
look-up, forward pass), caches cold (``reset_text_caches()`` right before every timed call).
Models load as ``graphrel score`` loads them (``graphrel.scoring.load.load_scorer``; graph
students read ``RUN/graph_new_query.pt`` for ``--protocol new_query``, ``RUN/graph.pt`` for
``new_pairs``); the teacher is the run's ``TeacherScorer`` on each ``--teacher-backends``
backend (its forward, int8 quantisation included, built once in the untimed warm-up).
Requests: ``--queries`` seeded test queries (split ``test`` of ``RUN/pairs.parquet``), each
with its evaluated pairs plus seeded products of the run's catalogue, ``--candidates`` pairs
in all. After each ``torch.set_num_threads(t)`` every model scores the same ``--warmup``
requests of other queries, untimed; then ``--repeats`` passes, interleaved: each request is
timed on every model in turn (order rotating) before the next, so load swings hit all alike.

Reported per model, threads, backend: p50, p99 (numpy's linear interpolation: under 100
timings p99 lies between the two slowest), min, max (ms), pairs/s at p50; each student's p50
speed-up over the teacher on fp32 and on the fast backend (``backend`` of
``RUN/teacher_backend.json``, whose agreement with fp32 passed; else bf16 if the CPU has it
natively); the acceptance (1 thread: p99 <= 10 ms for ``student_korder``, <= 5 ms for
``student_bert2dnn``), the teacher's p50/p99 beside. Printed as markdown, written to ``--out``
and, every figure with the settings and the machine, to the ``.json`` beside it. No data row
(text or id) is printed or saved. Figures compare only within one run of this tool.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from graphrel.errors import EXIT_USER_ERROR, GraphrelInputError, did_you_mean
from graphrel.pipeline.protocols import PROTOCOL_GRAPHS
from graphrel.pipeline.report import markdown_table
from graphrel.scoring.load import load_scorer
from graphrel.scoring.teacher_backends import BACKENDS, RECORD, bf16_support, unavailable_backends
from graphrel.scoring.teacher_scorer import TeacherScorer

COLUMNS = ["query_id", "query", "product_id", "product_text"]
#: The project's acceptance: p99 (ms) of one request on 1 thread.
P99_LIMITS_MS = {"student_korder": 10.0, "student_bert2dnn": 5.0}


def summarise(seconds, candidates: int) -> dict:
    """Latency figures (ms) of one model's timings (seconds): p50, p99, min, max, pairs/s at p50."""
    values = np.asarray(seconds, dtype=float) * 1000.0
    p50, p99 = np.percentile(values, [50, 99])
    return {"p50_ms": float(p50), "p99_ms": float(p99), "min_ms": float(values.min()), "max_ms": float(values.max()),
            "pairs_per_second_p50": candidates / (float(p50) / 1000.0), "timings": int(values.size)}


def sample_requests(pairs: pd.DataFrame, *, queries: int, warmup: int, candidates: int,
                    seed: int) -> tuple[list[pd.DataFrame], list[pd.DataFrame]]:
    """Seeded requests (columns :data:`COLUMNS`), ``queries`` timed and ``warmup`` warm-up ones,
    each of its own test query: its evaluated pairs (a seeded subset if more than ``candidates``)
    plus catalogue products (distinct ``product_id`` of ``pairs``) it lacks, ``candidates`` rows
    in all, shuffled. Raises GraphrelInputError for too few test queries or products."""
    rng = np.random.default_rng(seed)
    test = pairs[pairs["split"] == "test"]
    ids = np.sort(test["query_id"].unique())
    catalogue = pairs.drop_duplicates("product_id")[["product_id", "product_text"]].reset_index(drop=True)
    if len(ids) < queries + warmup or len(catalogue) < candidates:
        raise GraphrelInputError(f"the run has {len(ids)} test queries and {len(catalogue)} products, fewer than "
                                 f"--queries {queries} + --warmup {warmup} or --candidates {candidates}",
                                 fix="ask for fewer queries or candidates")
    by_query = dict(tuple(test.groupby("query_id", sort=False)))
    requests = []
    for query_id in rng.choice(ids, size=queries + warmup, replace=False):
        own = by_query[query_id]
        if len(own) > candidates:
            own = own.iloc[np.sort(rng.choice(len(own), size=candidates, replace=False))]
        drawn = catalogue.iloc[rng.choice(len(catalogue), size=min(len(catalogue), candidates + len(own)),
                                          replace=False)]
        drawn = drawn[~drawn["product_id"].isin(set(own["product_id"]))].head(candidates - len(own))
        drawn = drawn.assign(query_id=own["query_id"].iloc[0], query=own["query"].iloc[0])
        request = pd.concat([own[COLUMNS], drawn[COLUMNS]], ignore_index=True)
        requests.append(request.iloc[rng.permutation(len(request))].reset_index(drop=True))
    return requests[:queries], requests[queries:]


def fmt(value: float | None, suffix: str = "") -> str:
    """A figure with 2 decimals and thousands separators; "-" for None."""
    return "-" if value is None else f"{value:,.2f}{suffix}"


def render_table(rows: list[dict]) -> str:
    """The latency table (markdown): one row per (model, threads, backend) of :func:`summarise` figures."""
    return markdown_table([{"model": r["model"], "threads": str(r["threads"]), "backend": r["backend"],
                            "p50 ms": fmt(r["p50_ms"]), "p99 ms": fmt(r["p99_ms"]), "min ms": fmt(r["min_ms"]),
                            "max ms": fmt(r["max_ms"]), "pairs/s at p50": f"{r['pairs_per_second_p50']:,.0f}"}
                           for r in rows])


def speedups(rows: list[dict], fast: str) -> list[dict]:
    """Each student's p50 speed-up over the teacher on fp32 and on backend ``fast``, per threads
    (None where that teacher row was not timed)."""
    teacher = {(r["threads"], r["backend"]): r["p50_ms"] for r in rows if r["model"] == "teacher"}
    ratio = {(r["model"], r["threads"], b): teacher[(r["threads"], b)] / r["p50_ms"]
             for r in rows for b in ("fp32", fast) if (r["threads"], b) in teacher}
    return [{"model": r["model"], "threads": r["threads"], "vs_fp32": ratio.get((r["model"], r["threads"], "fp32")),
             "vs_fast": ratio.get((r["model"], r["threads"], fast)), "fast_backend": fast}
            for r in rows if r["model"] != "teacher"]


def acceptance(rows: list[dict], fast: str) -> list[dict]:
    """The project's 1-thread p99 limits (:data:`P99_LIMITS_MS`) of the models timed, the teacher beside."""
    one = {(r["model"], r["backend"]): r for r in rows if r["threads"] == 1}
    teacher = {b: one.get(("teacher", b)) for b in dict.fromkeys(("fp32", fast))}
    teacher = {b: t and {"p50_ms": t["p50_ms"], "p99_ms": t["p99_ms"]} for b, t in teacher.items()}
    return [{"model": model, "p99_ms": r["p99_ms"], "limit_ms": P99_LIMITS_MS[model],
             "passes": r["p99_ms"] <= P99_LIMITS_MS[model], "teacher": teacher}
            for (model, _), r in one.items() if model in P99_LIMITS_MS]


def fast_teacher_backend(run: Path) -> tuple[str, str]:
    """The teacher's fastest backend that agrees with fp32, and where that came from."""
    if (run / RECORD).is_file():
        return json.loads((run / RECORD).read_text())["backend"], f"{RECORD} of the run"
    supported, reason = bf16_support()
    return ("bf16" if supported else "fp32"), f"no {RECORD}; bf16: {reason}"


def load_models(run: Path, names: list[str] | None, protocol: str, backends: list[str]) -> dict:
    """(model, backend) -> scorer, for the ``names`` directories of ``run`` (None: teacher, students)."""
    found = ["teacher"] * (run / "teacher").is_dir() + sorted(d.parent.name for d in run.glob("student_*/student.json"))
    for name in names or []:
        if not (run / name).is_dir():
            hint = "".join(f" (did you mean {h!r}?)" for h in did_you_mean(name, found))
            raise GraphrelInputError(f"no model {name!r} in the run{hint}", path=run,
                                     fix=f"name one of: {', '.join(found) or 'none found'}")
    if not (names or found):
        raise GraphrelInputError("no model in the run (no teacher/, no student_*/student.json)", path=run,
                                 fix="pass a finished `graphrel pipeline` run directory")
    unavailable = {b: why for b, why in unavailable_backends().items() if b in backends}
    if unavailable:
        raise GraphrelInputError(f"teacher backends that cannot run here: {unavailable}",
                                 fix="leave them out of --teacher-backends")
    models = {}
    for name in names or found:
        scorer = load_scorer(run / name, graph=run / PROTOCOL_GRAPHS[protocol])
        if isinstance(scorer, TeacherScorer):
            # each backend named explicitly (the scorer itself scores on the run's labelling backend)
            models.update({(name, b): dataclasses.replace(scorer, backend=b) for b in backends})
        else:  # a student runs on its own dtype (BERT2DNN may run bf16)
            models[(name, {"torch.bfloat16": "bf16"}.get(str(getattr(scorer, "dtype", "")), "-"))] = scorer
    return models


def time_requests(models: dict, requests: list[pd.DataFrame], warmup: list[pd.DataFrame], repeats: int) -> dict:
    """Seconds of every timed request on every model: key -> list (``repeats * len(requests)``)."""
    def call(scorer, frame):
        return scorer.score(frame["query_id"], frame["query"], frame["product_id"], frame["product_text"])

    keys = list(models)
    for key in keys:  # the same warm-up for every model
        models[key].reset_text_caches()
        for frame in warmup:
            call(models[key], frame)
    seconds = {key: [] for key in keys}
    for repeat in range(repeats):
        for index, frame in enumerate(requests):
            shift = (index + repeat) % len(keys)
            for key in keys[shift:] + keys[:shift]:
                models[key].reset_text_caches()  # cold: no text of this request seen before
                start = time.perf_counter()
                call(models[key], frame)
                seconds[key].append(time.perf_counter() - start)
    return seconds


def whole(text: str, minimum: int = 1) -> int:
    """argparse type: a whole number >= ``minimum``."""
    if not text.strip().isdigit() or int(text) < minimum:
        raise argparse.ArgumentTypeError(f"must be a whole number >= {minimum}, got {text!r}")
    return int(text)


def report(rows: list[dict], ups: list[dict], accepted: list[dict], args, fast: str, fast_source: str) -> str:
    """The markdown report: latency table, students' speed-ups, acceptance."""
    lines = [f"{args.queries} requests of {args.candidates} pairs (one test query each, protocol {args.protocol}), "
             f"{args.repeats} passes, cold text caches, {args.warmup} warm-up requests: `{args.command}`\n",
             render_table(rows)]
    if ups:
        lines += [f"\nStudents' p50 speed-up over the teacher (fast backend: {fast}, {fast_source}):\n",
                  markdown_table([{"model": u["model"], "threads": str(u["threads"]),
                                   "x teacher fp32": fmt(u["vs_fp32"], "x"),
                                   f"x teacher {fast}": fmt(u["vs_fast"], "x")} for u in ups])]
    if accepted:
        lines += ["\nAcceptance (1 thread):\n", markdown_table([
            {"model": a["model"], "p99 ms": fmt(a["p99_ms"]), "limit ms": fmt(a["limit_ms"]),
             "passes": "yes" if a["passes"] else "NO",
             **{f"teacher {b} p50/p99 ms": f"{fmt(t and t['p50_ms'])} / {fmt(t and t['p99_ms'])}"
                for b, t in a["teacher"].items()}} for a in accepted])]
    return "\n".join(lines)


def run_benchmark(args) -> int:
    """Load, sample, time, report; the exit code."""
    run = Path(args.run_dir)
    for need in ("pairs.parquet", PROTOCOL_GRAPHS[args.protocol]):
        if not (run / need).is_file():
            raise GraphrelInputError(f"not a finished run directory (no {need})", path=run,
                                     fix="pass a run directory written by `graphrel pipeline`")
    fast, fast_source = fast_teacher_backend(run)
    backends = list(dict.fromkeys(args.teacher_backends or ["fp32", fast]))
    default_threads = torch.get_num_threads()
    models = load_models(run, args.models, args.protocol, backends)
    pairs = pd.read_parquet(run / "pairs.parquet", columns=[*COLUMNS, "split"])
    requests, warmup = sample_requests(pairs, queries=args.queries, warmup=args.warmup,
                                       candidates=args.candidates, seed=args.seed)
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        print(f"timing {len(models)} models on {threads} thread(s) ...", file=sys.stderr, flush=True)
        for (model, backend), seconds in time_requests(models, requests, warmup, args.repeats).items():
            rows.append({"model": model, "threads": threads, "backend": backend,
                         **summarise(seconds, args.candidates), "seconds": seconds})
    torch.set_num_threads(default_threads)
    ups, accepted = speedups(rows, fast), acceptance(rows, fast)
    text = report(rows, ups, accepted, args, fast, fast_source)
    print(text)
    out = Path(args.out) if args.out else run / f"bench-latency-{args.protocol}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
    machine = {"torch_num_threads": default_threads, "torch": torch.__version__, "processor": platform.processor(),
               "machine": platform.machine(), "cpu_count": os.cpu_count(), "load_average": list(os.getloadavg())}
    settings = {**vars(args), "teacher_backends": backends, "fast_backend": fast, "fast_backend_source": fast_source}
    out.with_suffix(".json").write_text(json.dumps({"settings": settings, "machine": machine, "rows": rows,
                                                    "speedups": ups, "acceptance": accepted}, indent=2) + "\n")
    print(f"written: {out} and {out.with_suffix('.json')}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", required=True, help="a finished `graphrel pipeline` run")
    parser.add_argument("--protocol", choices=("new_query", "new_pairs"), default="new_query",
                        help="the graph graph students read")
    parser.add_argument("--models", nargs="+", help="model directories of the run (default: teacher, student_*)")
    parser.add_argument("--queries", type=whole, default=50, help="timed requests (test queries)")
    parser.add_argument("--candidates", type=whole, default=100, help="pairs per request")
    parser.add_argument("--repeats", type=whole, default=5, help="passes over the requests")
    parser.add_argument("--warmup", type=whole, default=3, help="untimed warm-up requests of other queries")
    parser.add_argument("--threads", type=whole, nargs="+", default=[1, 2], help="torch threads, each in turn")
    parser.add_argument("--teacher-backends", nargs="+", choices=BACKENDS,
                        help="teacher backends (default: fp32 and the fast one)")
    parser.add_argument("--seed", type=lambda t: whole(t, 0), default=0, help="seed of the requests")
    parser.add_argument("--out", help="markdown report (default RUN/bench-latency-PROTOCOL.md); JSON beside it")
    args = parser.parse_args(argv)
    args.command = " ".join(["python tools/bench_latency.py", *(sys.argv[1:] if argv is None else argv)])
    try:
        return run_benchmark(args)
    except GraphrelInputError as error:  # one line and exit code 2, as the graphrel command does
        print(f"bench_latency: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
