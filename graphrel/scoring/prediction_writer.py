"""Predictions of ``graphrel predict`` on one or many processes: one Parquet shard per rank,
merged into ``predictions.parquet`` in input order.

Lightning hands each rank of a distributed predict (``trainer.strategy=ddp``,
``trainer.devices=N``, ``trainer.num_nodes=M``) a share of the batches; a sampler may also
pad a rank's share with repeated samples. :class:`ParquetPredictionWriter` writes each
rank's ``(row_id, score)`` to ``<output_dir>/predictions-rank{r}.parquet``; after a barrier,
global rank 0 runs :func:`merge_prediction_shards`, which drops repeated row ids and sorts
by row id into ``<output_dir>/predictions.parquet``. Set the writer from YAML::

    trainer:
      callbacks:
        - class_path: graphrel.scoring.prediction_writer.ParquetPredictionWriter
          init_args: {output_dir: predictions}

Nodes without a shared file system: copy the shards into one directory and merge there
with ``python -m graphrel.scoring.prediction_writer DIR [--expected-rows N]``.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from lightning.pytorch.callbacks import BasePredictionWriter

from graphrel.run import write_parquet

log = logging.getLogger("graphrel")

SHARD_PATTERN = "predictions-rank{rank}.parquet"
MERGED = "predictions.parquet"
_SHARD_RE = re.compile(r"^predictions-rank(\d+)\.parquet$")


def shard_path(output_dir: str | Path, rank: int) -> Path:
    """``<output_dir>/predictions-rank{rank}.parquet``."""
    return Path(output_dir) / SHARD_PATTERN.format(rank=rank)


def list_shards(output_dir: str | Path) -> list[Path]:
    """The rank shards in ``output_dir``, by rank number (not lexical: rank 10 after 9)."""
    found = []
    directory = Path(output_dir)
    if directory.is_dir():
        for path in directory.iterdir():
            match = _SHARD_RE.match(path.name)
            if match:
                found.append((int(match.group(1)), path))
    return [path for _, path in sorted(found)]


def merge_prediction_shards(output_dir: str | Path, *, expected_rows: int | None = None,
                            output_name: str = MERGED) -> pd.DataFrame:
    """Concatenate the rank shards of ``output_dir`` into one frame in input order.

    Rows with a row id already seen (samplers pad a rank's share with repeated samples)
    are dropped, keeping the lowest rank's; the rest are sorted by ``row_id``, i.e. the
    order of the input. The result is written atomically to ``<output_dir>/<output_name>``
    (a temporary name, then ``os.replace``).

    Args:
        output_dir: directory holding ``predictions-rank{r}.parquet``, each with columns
            ``row_id`` (int64) and ``score`` (float, in [0, 1] for students), and possibly
            more (``query_id``, ``product_id``), which are kept.
        expected_rows: if given, the number of distinct row ids the input had.
        output_name: file name of the merged output.

    Returns:
        DataFrame (N, ...) with ``row_id`` increasing and unique, ``score``, and the shards'
        other columns; index 0..N-1.

    Raises:
        FileNotFoundError: no shard in ``output_dir``.
        ValueError: a shard without ``row_id`` or ``score``; the shards' columns differ;
            ``expected_rows`` given and the distinct row ids are not that many.
    """
    shards = list_shards(output_dir)
    if not shards:
        raise FileNotFoundError(f"no prediction shards ({SHARD_PATTERN.format(rank='*')}) in {output_dir}")
    frames = []
    for path in shards:
        frame = pd.read_parquet(path)
        missing = {"row_id", "score"} - set(frame.columns)
        if missing:
            raise ValueError(f"{path}: missing column(s) {sorted(missing)}")
        if frames and list(frame.columns) != list(frames[0].columns):
            raise ValueError(f"{path}: columns {list(frame.columns)} differ from {list(frames[0].columns)}"
                             f" of {shards[0]}")
        frames.append(frame)
    merged = pd.concat(frames, ignore_index=True)
    total = len(merged)
    merged = merged.drop_duplicates("row_id", keep="first").sort_values("row_id", kind="stable")
    merged = merged.reset_index(drop=True)
    if expected_rows is not None and len(merged) != expected_rows:
        raise ValueError(f"{output_dir}: shards hold {len(merged):,} distinct rows, expected {expected_rows:,}"
                         " (a rank failed, or shards of another run are mixed in)")
    write_parquet(merged, Path(output_dir) / output_name)
    log.info("merged %d shard(s): %d rows (%d repeated dropped) -> %s", len(shards), len(merged),
             total - len(merged), Path(output_dir) / output_name)
    return merged


class ParquetPredictionWriter(BasePredictionWriter):
    """Write ``predict_step`` scores per rank to Parquet, then merge them on rank 0.

    Each batch must carry ``row_id`` (B,) int64 (as :class:`graphrel.models.korder_data.StudentDataModule`'s
    do); for datasets of single samples the sampler's ``batch_indices`` serve instead. The
    prediction of a batch is a tensor (B,) of scores. At the end of the predict epoch each
    rank writes ``<output_dir>/predictions-rank{global_rank}.parquet`` (columns ``row_id``,
    ``score``, plus ``query_id`` and ``product_id`` when the datamodule has a
    ``predict_frame`` indexed by row id) atomically; with ``merge`` global rank 0 then
    writes ``predictions.parquet`` (:func:`merge_prediction_shards`) after a barrier.

    Args:
        output_dir: where shards and merged file go; None: ``<trainer.default_root_dir>/predictions``.
            Must be on a file system every node sees for the automatic merge.
        merge: merge on rank 0 at the end of predict (False: leave the shards only).

    Raises:
        ValueError: (during predict) a batch without ``row_id`` and without usable
            ``batch_indices``, or a prediction whose length differs from the batch's.
    """

    def __init__(self, output_dir: str | None = None, merge: bool = True) -> None:
        super().__init__(write_interval="batch")
        self.output_dir = output_dir
        self.merge = merge
        self._row_ids: list[np.ndarray] = []
        self._scores: list[np.ndarray] = []

    def resolve_output_dir(self, trainer) -> Path:
        """The directory shards go to (``output_dir``, or ``<default_root_dir>/predictions``)."""
        return Path(self.output_dir if self.output_dir is not None else Path(trainer.default_root_dir) / "predictions")

    def on_predict_start(self, trainer, pl_module) -> None:
        self._row_ids, self._scores = [], []
        directory = self.resolve_output_dir(trainer)
        if trainer.is_global_zero:
            directory.mkdir(parents=True, exist_ok=True)
            for stale in list_shards(directory):  # of an earlier run, maybe with more ranks
                stale.unlink()
            log.info("predicting on %d process(es); shards -> %s", trainer.world_size, directory)
        trainer.strategy.barrier("prediction_writer_start")

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx: int,
                           dataloader_idx: int) -> None:
        scores = torch.as_tensor(prediction).detach().float().cpu().reshape(-1).numpy()
        if isinstance(batch, dict) and "row_id" in batch:
            row_ids = torch.as_tensor(batch["row_id"]).cpu().reshape(-1).numpy().astype(np.int64)
        elif batch_indices is not None and len(batch_indices) == len(scores):
            row_ids = np.asarray(batch_indices, dtype=np.int64)
        else:
            raise ValueError(f"predict batch {batch_idx} carries no 'row_id' and its sampler indices do not match "
                             "its predictions; use a datamodule whose batches carry row ids")
        if len(row_ids) != len(scores):
            raise ValueError(f"predict batch {batch_idx}: {len(scores)} scores for {len(row_ids)} row ids")
        self._row_ids.append(row_ids)
        self._scores.append(scores)

    def on_predict_epoch_end(self, trainer, pl_module) -> None:
        directory = self.resolve_output_dir(trainer)
        row_ids = np.concatenate(self._row_ids) if self._row_ids else np.zeros(0, np.int64)
        scores = np.concatenate(self._scores) if self._scores else np.zeros(0, np.float32)
        self._row_ids, self._scores = [], []
        frame = pd.DataFrame({"row_id": row_ids, "score": scores})
        source = getattr(trainer.datamodule, "predict_frame", None) if trainer.datamodule is not None else None
        if isinstance(source, pd.DataFrame) and {"query_id", "product_id"} <= set(source.columns):
            ids = source.loc[row_ids, ["query_id", "product_id"]]
            frame["query_id"] = ids["query_id"].to_numpy()
            frame["product_id"] = ids["product_id"].to_numpy()
        write_parquet(frame, shard_path(directory, trainer.global_rank))
        trainer.strategy.barrier("prediction_writer_shards")
        if self.merge and trainer.is_global_zero:
            expected = len(source) if isinstance(source, pd.DataFrame) else None
            merge_prediction_shards(directory, expected_rows=expected)
        trainer.strategy.barrier("prediction_writer_merged")


def main(argv: list[str] | None = None) -> int:
    """``python -m graphrel.scoring.prediction_writer DIR``: merge the shards of DIR. Returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m graphrel.scoring.prediction_writer", description=(
        "Merge predictions-rank*.parquet of DIR into DIR/predictions.parquet: repeated row ids dropped, "
        "sorted by row id (input order)."))
    parser.add_argument("output_dir", help="directory holding the rank shards")
    parser.add_argument("--expected-rows", type=int, default=None, help="fail unless this many distinct rows")
    args = parser.parse_args(argv)
    try:
        merged = merge_prediction_shards(args.output_dir, expected_rows=args.expected_rows)
    except (FileNotFoundError, ValueError) as error:
        print(f"graphrel: error: {error}", file=sys.stderr)
        return 2
    print(f"merged {len(merged):,} rows -> {Path(args.output_dir) / MERGED}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
