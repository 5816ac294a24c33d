"""Benchmark streaming batch scoring (``graphrel.scoring.streaming.score_file``) as the input grows.

For each size N, builds a synthetic Parquet input of N pairs from a run's texts (query and
product each drawn with replacement from ``RUN/pairs.parquet``, written block by block so
building 5M pairs never holds 5M rows), scores it with ``score_file`` in a fresh
subprocess, and prints a markdown table: pairs, wall time, rows/s, and the child's peak
memory (max RSS, ``resource.getrusage(RUSAGE_SELF)`` in the child). Peak memory should
stay flat as N grows (acceptance: peak at the largest size within 1.5x that at the
smallest).

Usage::

    python tools/bench_scoring.py --model runs/home_depot/student_korder \\
        --sizes 100000 1000000 5000000 [--work-dir DIR] [--chunk-size 100000] [--batch-size 512]

Inputs are kept in ``--work-dir`` (default: a temporary folder, removed at the end) and
reused when they already hold the right number of rows.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from graphrel.pipeline.report import markdown_table
from graphrel.run import atomic_path

BLOCK = 200_000  # rows generated and written at a time when building an input


def build_input(run_dir: Path, n: int, path: Path, seed: int = 0) -> None:
    """Write ``n`` synthetic pairs (query, product_id, product_text) to ``path`` (Parquet),
    ``BLOCK`` rows at a time; queries and products are drawn independently, with
    replacement, from the run's pairs."""
    if path.exists() and pq.ParquetFile(path).metadata.num_rows == n:
        return
    base = pq.read_table(run_dir / "pairs.parquet", columns=["query", "product_id", "product_text"])
    queries = base.column("query").combine_chunks()
    products = base.select(["product_id", "product_text"]).combine_chunks()
    rng = np.random.default_rng(seed)
    schema = pa.schema([("query", pa.string()), ("product_id", pa.string()), ("product_text", pa.string())])
    with atomic_path(path) as tmp, pq.ParquetWriter(tmp, schema) as writer:
        for start in range(0, n, BLOCK):
            size = min(BLOCK, n - start)
            q = queries.take(pa.array(rng.integers(0, len(queries), size)))
            p = products.take(pa.array(rng.integers(0, len(products), size)))
            writer.write_table(pa.Table.from_arrays([q.cast(pa.string()), p.column(0).cast(pa.string()),
                                                     p.column(1).cast(pa.string())], schema=schema))


def work_folder(work_dir: Path | None, prefix: str) -> tuple[Path, tempfile.TemporaryDirectory | None]:
    """``work_dir`` (created) or a new temporary folder; the ``TemporaryDirectory`` to clean
    up at the end, or None."""
    temporary = None
    if work_dir is None:
        temporary = tempfile.TemporaryDirectory(prefix=prefix)
        work_dir = Path(temporary.name)
    work_dir.mkdir(parents=True, exist_ok=True)
    return work_dir, temporary


CHILD = r"""
import json, resource, sys, time
import graphrel.scoring.streaming as streaming

load_seconds = []
original = streaming._load_scorer
def timed_load(model_dir):
    start = time.perf_counter()
    scorer = original(model_dir)
    load_seconds.append(time.perf_counter() - start)
    return scorer
streaming._load_scorer = timed_load

model, source, output, chunk_size, batch_size = sys.argv[1:6]
summary = streaming.score_file(model, source, output, chunk_size=int(chunk_size), batch_size=int(batch_size))
peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux
print(json.dumps({"rows": summary.rows, "seconds": summary.seconds, "load_seconds": load_seconds[0],
                  "repeated": summary.repeated_pairs, "peak_mb": peak_kb / 1024}))
"""


def score_in_child(model: Path, source: Path, output: Path, chunk_size: int, batch_size: int) -> dict:
    """Run ``score_file`` in a fresh Python process; its summary and peak memory."""
    done = subprocess.run([sys.executable, "-c", CHILD, str(model), str(source), str(output), str(chunk_size),
                           str(batch_size)], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"scoring {source} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, type=Path, help="student directory, e.g. RUN/student_korder")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000, 5_000_000])
    parser.add_argument("--work-dir", type=Path, default=None, help="where inputs/outputs go (default: temporary)")
    parser.add_argument("--chunk-size", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=512)
    args = parser.parse_args(argv)

    run_dir = args.model.resolve().parent
    args.work_dir, temporary = work_folder(args.work_dir, "bench_scoring_")
    results = []
    try:
        for n in sorted(args.sizes):
            source = args.work_dir / f"pairs_{n}.parquet"
            start = time.perf_counter()
            build_input(run_dir, n, source)
            print(f"built {source} ({source.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - start:.0f} s",
                  file=sys.stderr, flush=True)
            output = args.work_dir / f"scores_{n}.parquet"
            result = score_in_child(args.model, source, output, args.chunk_size, args.batch_size)
            output.unlink()
            results.append(result)
            print(f"scored {n:,} pairs: {json.dumps(result)}", file=sys.stderr, flush=True)
    finally:
        if temporary is not None:
            temporary.cleanup()

    print(f"\nmodel {args.model}, chunk size {args.chunk_size:,}, batch size {args.batch_size}\n")
    print(markdown_table([{"pairs": f"{r['rows']:,}", "wall s (model load incl.)": f"{r['seconds']:.0f}",
                           "model load s": f"{r['load_seconds']:.0f}",
                           "rows/s (scoring)": f"{r['rows'] / max(r['seconds'] - r['load_seconds'], 1e-9):,.0f}",
                           "peak memory (MB)": f"{r['peak_mb']:,.0f}"} for r in results], align="right"))
    if len(results) > 1:
        ratio = results[-1]["peak_mb"] / results[0]["peak_mb"]
        verdict = "PASS" if ratio <= 1.5 else "FAIL"
        print(f"\npeak memory at {results[-1]['rows']:,} pairs / at {results[0]['rows']:,}: {ratio:.2f}x "
              f"({verdict}: acceptance <= 1.5x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
