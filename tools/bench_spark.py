"""Benchmark ``graphrel score --engine spark`` (local[N]) against single-process ``graphrel score``.

For each size (default 1M and 5M pairs) the same synthetic Parquet input is built from a
run's real texts (queries and products drawn independently, with replacement, from
``RUN/pairs.parquet``: :func:`bench_scoring.build_input`), then scored by both engines, each
as a fresh ``graphrel score`` command (model loading, and for Spark the JVM's start, included
in the wall time), one after the other in the same run. Memory is each process's peak
resident set (``VmHWM`` of ``/proc/PID/status``, read every 0.2 s while it lives): the
single process; for Spark, the JVM (driver and executor in local mode) and each Python
process (the pyspark daemon, ~50 MB, and one worker per task slot), summed as the
executor's total. The scores of both engines are compared on every
row (joined by ``pair_id``).

Usage::

    python tools/bench_spark.py --model runs/home_depot/student_korder \\
        [--sizes 1000000 5000000] [--spark-master local[2] [local[1] ...]] [--work-dir DIR] [--chunk-size 100000]

Prints a markdown table; rows/s = pairs / wall time of the whole command. Nothing here is a
test: speeds swing on shared machines, so compare the two engines within one run.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scoring import build_input, work_folder  # noqa: E402

from graphrel.pipeline.report import markdown_table  # noqa: E402


def with_pair_ids(source: Path, path: Path) -> None:
    """``source`` with a ``pair_id`` column (0..N-1), rewritten in row groups of 100,000 rows."""
    if path.exists() and pq.ParquetFile(path).metadata.num_rows == pq.ParquetFile(source).metadata.num_rows:
        return
    reader = pq.ParquetFile(source)
    writer, start = None, 0
    for batch in reader.iter_batches(batch_size=100_000):
        frame = batch.to_pandas()
        frame.insert(0, "pair_id", np.arange(start, start + len(frame), dtype=np.int64))
        start += len(frame)
        import pyarrow as pa

        table = pa.Table.from_pandas(frame, preserve_index=False)
        writer = writer or pq.ParquetWriter(str(path) + ".tmp", table.schema)
        writer.write_table(table)
    writer.close()
    Path(str(path) + ".tmp").rename(path)


def _peak_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class PeakMemory(threading.Thread):
    """Every 0.2 s: each process of the tree under ``pid``, its peak resident set so far."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peaks, self.names, self.done = pid, {}, {}, threading.Event()

    def run(self) -> None:
        import psutil

        while not self.done.is_set():
            try:
                tree = [psutil.Process(self.pid)] + psutil.Process(self.pid).children(recursive=True)
            except psutil.Error:
                break
            for process in tree:
                peak = _peak_kb(process.pid)
                if peak:
                    self.peaks[process.pid] = max(peak, self.peaks.get(process.pid, 0))
                    try:  # every time: spark-submit's shell script becomes the JVM by exec (same pid)
                        command = process.cmdline()
                    except psutil.Error:
                        continue
                    if command:
                        self.names[process.pid] = "java" if Path(command[0]).name == "java" else \
                            ("worker" if "pyspark.daemon" in command else "other")
            time.sleep(0.2)

    def summary(self) -> dict:
        mb = {pid: kb / 1024 for pid, kb in self.peaks.items()}
        workers = [v for pid, v in mb.items() if self.names.get(pid) == "worker"]
        java = [v for pid, v in mb.items() if self.names.get(pid) == "java"]
        main = mb.get(self.pid, 0.0)
        return {"main_mb": main, "java_mb": sum(java), "workers": len(workers),
                "worker_max_mb": max(workers, default=0.0), "workers_mb": sum(workers)}


def run_command(argv: list[str]) -> tuple[float, dict]:
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watch = PeakMemory(process.pid)
    watch.start()
    out, err = process.communicate()
    seconds = time.perf_counter() - started
    watch.done.set()
    watch.join()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({process.returncode}):\n{err[-3000:]}")
    return seconds, watch.summary()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, type=Path, help="student directory, e.g. RUN/student_korder")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 5_000_000])
    parser.add_argument("--spark-master", nargs="+", default=["local[2]"],
                        help="one or more masters, each run on every size (e.g. local[1] local[2]: scaling)")
    parser.add_argument("--work-dir", type=Path, default=None, help="inputs and outputs (default: temporary)")
    parser.add_argument("--chunk-size", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=512)
    args = parser.parse_args(argv)
    graphrel = [sys.executable, "-m", "graphrel.cli"]
    run_dir = args.model.resolve().parent
    args.work_dir, temporary = work_folder(args.work_dir, "bench_spark_")
    rows = []
    try:
        for n in sorted(args.sizes):
            raw, source = args.work_dir / f"raw_{n}.parquet", args.work_dir / f"pairs_{n}.parquet"
            build_input(run_dir, n, raw)
            with_pair_ids(raw, source)
            local_out, spark_out = args.work_dir / f"local_{n}.parquet", args.work_dir / f"spark_{n}"
            for path in (local_out, spark_out):
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
            common = ["--model", str(args.model), "--input", str(source), "--batch-size", str(args.batch_size),
                      "--chunk-size", str(args.chunk_size)]
            local_s, local_mem = run_command(graphrel + ["score", *common, "--output", str(local_out)])
            print(f"{n:,} pairs, single process: {local_s:.0f} s, {local_mem}", file=sys.stderr, flush=True)
            local = pd.read_parquet(local_out, columns=["row_id", "score"]).sort_values("row_id")["score"].to_numpy()
            rows.append({"pairs": f"{n:,}", "engine": "single process", "wall s": f"{local_s:.0f}",
                         "rows/s": f"{n / local_s:,.0f}", "× single": "1.00",
                         "peak MB (process / JVM)": f"{local_mem['main_mb']:,.0f}",
                         "Python workers: n, max MB each": "–", "executor total MB": f"{local_mem['main_mb']:,.0f}",
                         "max |Δscore|": ""})
            for master in args.spark_master:
                shutil.rmtree(spark_out, ignore_errors=True)
                spark_s, spark_mem = run_command(graphrel + ["score", "--engine", "spark", "--spark-master", master,
                                                             *common, "--output", str(spark_out)])
                print(f"{n:,} pairs, Spark {master}: {spark_s:.0f} s, {spark_mem}", file=sys.stderr, flush=True)
                spark = pd.read_parquet(spark_out, columns=["pair_id", "score"]).sort_values("pair_id")
                if len(spark) != n or not np.array_equal(spark["pair_id"].to_numpy(), np.arange(n)):
                    raise SystemExit(f"Spark's output {spark_out} does not hold each of the {n:,} input rows once")
                difference = float(np.abs(local - spark["score"].to_numpy()).max())
                rows.append({"pairs": f"{n:,}", "engine": f"spark {master}", "wall s": f"{spark_s:.0f}",
                             "rows/s": f"{n / spark_s:,.0f}", "× single": f"{local_s / spark_s:.2f}",
                             "peak MB (process / JVM)": f"{spark_mem['java_mb']:,.0f}",
                             "Python workers: n, max MB each":
                                 f"{spark_mem['workers']}, {spark_mem['worker_max_mb']:,.0f}",
                             "executor total MB": f"{spark_mem['java_mb'] + spark_mem['workers_mb']:,.0f}",
                             "max |Δscore|": f"{difference:.1e}"})
            shutil.rmtree(spark_out, ignore_errors=True)
            local_out.unlink(missing_ok=True)
    finally:
        if temporary is not None:
            temporary.cleanup()
    print(f"\nmodel {args.model}; chunk size {args.chunk_size:,}; batch size {args.batch_size}\n")
    print(markdown_table(rows, align="right"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
