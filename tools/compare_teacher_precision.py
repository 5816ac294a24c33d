"""The teacher's fine-tuning precision compared on validation: float32 (the run's teacher)
against bfloat16 mixed precision (Lightning ``precision="bf16-mixed"``), with everything else
the run's (pairs, seed, settings).

    python tools/compare_teacher_precision.py --run-dir RUN --out SCRATCH_DIR

1. Training speed: after one untimed warm-up of each, ``--speed-repeats`` interleaved repetitions of ``--speed-steps`` optimiser
   steps in each precision, each from the same start on the same batches (pairs/s: median,
   slowest and fastest repetition).
2. A bf16-mixed teacher fine-tuned like the run's (``SCRATCH_DIR/teacher``; reused if there),
   and its wall time.
3. Every labelled validation pair scored by both teachers on the eager fp32 backend (only the
   training precision differs): AUC and Spearman against the human labels, and the difference
   (bf16-mixed minus float32) with its 95% interval (paired bootstrap over queries). The test
   queries are not read.

bf16-mixed becomes the default only if neither figure's interval excludes 0 on the side of a
loss (the pipeline's ``teacher.precision``).
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import time
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import torch

from graphrel import run as R
from graphrel.intervals import PairedBootstrap
from graphrel.metrics import auc, spearman
from graphrel.pipeline.config_file import run_config
from graphrel.pipeline.evaluation import label_scale, validation_threshold
from graphrel.pipeline.report import markdown_table
from graphrel.pipeline.teacher_stages import fit_teacher
from graphrel.scoring.teacher_labelling import load_teacher, teacher_logits


def training_speed(config, run_dir: Path, pairs: pd.DataFrame, *, steps: int, repeats: int) -> dict:
    """Pairs/s of ``steps`` fine-tuning steps per precision, ``repeats`` interleaved repetitions."""
    from graphrel.models.teacher import CrossEncoderTeacher
    from graphrel.models.teacher_data import TeacherDataModule, sample_rows

    t = config.teacher
    train = sample_rows(pairs[pairs.split == "train"], steps * t.batch_size, config.seed)
    seconds: dict[str, list[float]] = {"32-true": [], "bf16-mixed": []}
    for repetition in range(repeats + 1):  # the first is a warm-up of both, untimed
        for precision in seconds:
            L.seed_everything(config.seed, workers=True, verbose=False)
            teacher = CrossEncoderTeacher(backbone=t.backbone, learning_rate=t.learning_rate,
                                          max_length=t.max_length, temperature=t.temperature,
                                          relevance_threshold=validation_threshold(config, run_dir))
            data = TeacherDataModule(backbone=t.backbone, batch_size=t.batch_size, max_length=t.max_length,
                                     seed=config.seed)
            data.set_frames(train, train.head(t.batch_size))
            trainer = L.Trainer(max_steps=steps, accelerator="cpu", devices=1, logger=False, precision=precision,
                                enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                                num_sanity_val_steps=0, limit_val_batches=0, deterministic=True,
                                default_root_dir=run_dir)
            start = time.perf_counter()
            trainer.fit(teacher, datamodule=data)
            if repetition:
                seconds[precision].append(time.perf_counter() - start)
    out = {}
    for precision, values in seconds.items():
        values = np.asarray(values)
        pairs_done = steps * t.batch_size
        out[precision] = {"pairs_per_second": pairs_done / np.median(values),
                          "min": pairs_done / values.max(), "max": pairs_done / values.min()}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, required=True, help="a finished run (float32 teacher)")
    parser.add_argument("--out", type=Path, required=True, help="scratch directory for the bf16-mixed teacher")
    parser.add_argument("--speed-steps", type=int, default=24)
    parser.add_argument("--speed-repeats", type=int, default=3)
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args()
    for name in ("speed_steps", "speed_repeats", "resamples"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    config = run_config(args.run_dir)
    if config.teacher.precision != "32-true":
        parser.error(f"{args.run_dir}'s teacher was fine-tuned in {config.teacher.precision}: pass a float32 run")
    pairs = pd.read_parquet(args.run_dir / R.PAIRS)
    args.out.mkdir(parents=True, exist_ok=True)
    shutil.copy(args.run_dir / R.LABEL_SCALE, args.out / R.LABEL_SCALE)

    speed = training_speed(config, args.run_dir, pairs, steps=args.speed_steps, repeats=args.speed_repeats)
    bf16 = dataclasses.replace(config, teacher=dataclasses.replace(config.teacher, precision="bf16-mixed"))
    start = time.perf_counter()
    fitted_before = (args.out / R.TEACHER_DIR / "config.json").is_file()
    fit_teacher(bf16, args.out, pairs, progress=False)
    fit_seconds = None if fitted_before else time.perf_counter() - start

    val = pairs[(pairs.split == "val") & pairs.label.notna()].reset_index(drop=True)
    low, high = label_scale(args.run_dir)
    threshold = validation_threshold(config, args.run_dir)
    boot = PairedBootstrap(val.query_id.to_numpy(), val.label.to_numpy(), threshold=threshold,
                           label_range=high - low, resamples=args.resamples, seed=0)
    scores = {}
    for name, directory in (("32-true", args.run_dir / R.TEACHER_DIR), ("bf16-mixed", args.out / R.TEACHER_DIR)):
        teacher = load_teacher(directory, max_length=config.teacher.max_length, temperature=config.teacher.temperature)
        scores[name] = teacher_logits(teacher, val["query"], val["product_text"], progress=False)
    rows = []
    labels = val.label.to_numpy()
    for figure, fn in (("auc", lambda s: auc(s, labels, threshold=threshold)), ("spearman", lambda s: spearman(s, labels))):
        a, b = fn(scores["32-true"]), fn(scores["bf16-mixed"])
        lo, hi = boot.difference(scores["bf16-mixed"], scores["32-true"], figure)
        rows.append({"figure": figure, "float32": f"{a:.4f}", "bf16-mixed": f"{b:.4f}",
                     "bf16-mixed - float32 [95%]": f"{b - a:+.4f} [{lo:+.4f}, {hi:+.4f}]"})
    speed_rows = [{"precision": p, "training pairs/s": f"{v['pairs_per_second']:.1f} ({v['min']:.1f}-{v['max']:.1f})",
                   "x float32": f"{v['pairs_per_second'] / speed['32-true']['pairs_per_second']:.2f}"}
                  for p, v in speed.items()]
    print(f"Training speed: {args.speed_repeats} interleaved repetitions of {args.speed_steps} steps of "
          f"{config.teacher.batch_size} pairs, {torch.get_num_threads()} threads\n")
    print(markdown_table(speed_rows))
    print(f"\nbf16-mixed fit: {'reused' if fit_seconds is None else f'{fit_seconds:.0f} s'}\n")
    print(f"{len(val):,} validation pairs of {val.query_id.nunique():,} queries, both teachers scored in fp32\n")
    print(markdown_table(rows))


if __name__ == "__main__":
    main()
