"""Streaming, crash-safe, resumable batch scoring: what ``graphrel score`` runs.

:func:`score_file` reads the input chunk by chunk (:func:`graphrel.data.datasets.iter_pairs`:
the same validation and one-line errors as the loaders, each naming the true input row),
scores each chunk with a trained student and writes it as one shard. Memory stays flat
however long the input is: one chunk, its features and its scores at a time.

The parts folder ``OUT.parquet.parts/`` holds the finished chunks while a run goes on (its
files and manifest: :mod:`graphrel.scoring.score_parts`). Every shard, hash file and
manifest is written atomically, so a crash never leaves a half-written file that counts: a
shard is finished only once the manifest lists it.

``resume=True`` (``graphrel score --resume``) continues after a crash: chunks whose shards
the manifest lists are read (and validated) again but not re-scored; the rest are scored.
The manifest must match this run's input (path, size, modification time), model
(directory and checkpoint size and time), ``kind``, column options and ``chunk_size``;
otherwise scoring refuses with the reason. Without ``resume``, an existing parts folder is
an error (pass ``--resume`` or delete it). A bad row found part-way through removes the
parts folder (the input must change to fix it, so those shards can never be reused).

Repeated (query_id, product_id) pairs are all scored, one output row per input row; they
are counted across the whole input at the end (from the hash files, a bucket at a time, so
memory stays flat) and logged as one warning with the count.

Each chunk's rows per scoring path (the scorer's ``paths(query_ids, product_ids)``: graph
students ``graph`` / ``text_fallback`` rows and the rows whose query or product id is not in
the graph, text-only students ``text`` rows) are kept in its shard's manifest entry (a
resumed run reuses them) and added up. With the output, ``OUT.parquet.summary.json`` records
rows, repeated pairs, chunks, reused chunks, those path counts, the model directory and the
input; it is written just before the output is renamed into place, so a finished run has both.

One run writes an output at a time: :func:`score_file` holds ``OUT.parquet.lock``
(:func:`graphrel.lock.output_lock`) from before it touches the parts folder until the
output is written, so a second run on the same output (same input or another) is refused
at once, naming the first run's process id; ``resume`` takes the same lock.

For tests only: the environment variable ``GRAPHREL_TEST_CHUNK_DELAY`` (seconds) sleeps
after each finished shard, and ``GRAPHREL_TEST_PAUSE_FILE`` (a path) waits after each
finished shard while that file exists, so a test can stop, signal or race a run part-way
through.
"""

from __future__ import annotations

import logging
import os
import pickle
import shutil
import time
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from tqdm.auto import tqdm

from graphrel.data.datasets import iter_pairs
from graphrel.data.schema import RelevancePairs
from graphrel.errors import GraphrelInputError
from graphrel.lock import output_lock
from graphrel.scoring import score_parts
from graphrel.scoring.load import load_scorer

__all__ = ["ScoreSummary", "score_file", "CHUNK_DELAY_ENV", "PAUSE_FILE_ENV"]

log = logging.getLogger("graphrel")

CHUNK_DELAY_ENV = "GRAPHREL_TEST_CHUNK_DELAY"
"""Test-only hook: seconds to sleep after each finished shard."""

PAUSE_FILE_ENV = "GRAPHREL_TEST_PAUSE_FILE"
"""Test-only hook: after each finished shard, wait while the file this names exists."""


@dataclass
class ScoreSummary:
    """What :func:`score_file` did.

    Attributes:
        output: the Parquet file written.
        rows: output rows (= input rows scored; after an ESCI ``locale`` filter, rows kept).
        repeated_pairs: rows whose (query_id, product_id) pair occurred earlier in the input.
        chunks: chunks of the input (= shards).
        reused_chunks: chunks taken from an interrupted run's shards (``resume=True``).
        paths: rows per scoring path, over the whole input (the scorer's ``paths()`` added
            up): graph students ``{"graph", "text_fallback", "queries_not_in_graph",
            "products_not_in_graph"}`` (the first two add up to ``rows``; the last two count
            rows whose query / product id is not a node of the student's graph), text-only
            students ``{"text": rows}``; ``{}`` for a scorer without ``paths()``.
        has_labels: whether the output has a ``label`` column.
        seconds: wall time of the call.
    """

    output: Path
    rows: int
    repeated_pairs: int
    chunks: int
    reused_chunks: int
    paths: dict[str, int]
    has_labels: bool
    seconds: float

    def paths_line(self) -> str:
        """``paths: graph 1,234 rows, text fallback 56 rows; 12 rows with a query id not in the
        graph, 0 with a product id not in the graph`` (text-only students: ``paths: text 1,290
        rows``; the teacher: ``paths: cross encoder 1,290 rows``)."""
        missing = ("queries_not_in_graph", "products_not_in_graph")
        line = "paths: " + ", ".join(f"{name.replace('_', ' ')} {_rows(count)}" for name, count in self.paths.items()
                                     if name not in missing)
        if any(name in self.paths for name in missing):
            queries, products = self.paths.get("queries_not_in_graph", 0), self.paths.get("products_not_in_graph", 0)
            line += (f"; {_rows(queries)} with a query id not in the graph, "
                     f"{products:,} with a product id not in the graph")
        return line


def _rows(count: int) -> str:
    return f"{count:,} row{'' if count == 1 else 's'}"


def score_file(model_dir: str | Path, input_path: str | Path, output_path: str | Path, *,
               kind: str = "generic", batch_size: int = 512, chunk_size: int = 100_000,
               resume: bool = False, calibrated: bool = False, **load_options: Any) -> ScoreSummary:
    """Score every row of a pairs file with a trained student, streaming, crash-safe, resumable.

    The input is read and validated ``chunk_size`` rows at a time; each chunk is scored and
    written as one shard in ``OUT.parquet.parts/`` (see the module docstring for the files
    and the manifest); when every chunk is done the shards are merged, shard by shard,
    into ``output_path`` (atomically) and the parts folder is removed. Peak memory does not
    grow with the input's length. ``OUT.parquet.summary.json`` (rows, repeated pairs, chunks,
    reused chunks, rows per scoring path, model, input) is written just before the output is
    renamed into place, replacing a stale one.

    Output columns: ``row_id`` (int64, 1-based input data row; JSON Lines: the line),
    ``query_id`` and ``product_id`` (str), ``score`` (float32 in [0, 1]; with ``calibrated``
    the expected label on the label scale of the model's calibrator), and ``label``
    (float64 in [0, 1], NaN where unknown) if any input row has a label; one row per input
    row, in input order. Repeated pairs are all scored and logged as one warning with their
    count.

    Args:
        model_dir: a student directory of a run (``RUN/student_korder``: ``student.json`` +
            ``model.ckpt``).
        input_path: the pairs file (CSV, Parquet or JSON Lines; ``.zip`` / ``.gz`` too).
        output_path: the Parquet file to write; its folder must exist and be writable.
        kind: ``"generic"``, ``"home_depot"`` or ``"esci"`` (as
            :func:`graphrel.data.datasets.load_dataset`).
        batch_size: pairs per forward pass, >= 1.
        chunk_size: input rows per chunk and shard, >= 1 (memory grows with it, not with
            the input).
        resume: continue an interrupted run from the shards its manifest lists.
        calibrated: map every score through the model directory's ``calibrator.json``
            (:class:`graphrel.scoring.calibration.Calibrator`, fitted on validation queries by
            the pipeline) to the expected label on its label scale.
        **load_options: options of the loader for ``kind`` (column mapping, label scale,
            encoding, file format, ESCI locale), without ``keep_duplicates``.

    Returns:
        A :class:`ScoreSummary` (rows, repeated pairs, chunks, reused chunks, rows per
        scoring path, time).

    Raises:
        GraphrelInputError: ``batch_size`` or ``chunk_size`` not a whole number >= 1, a bad
            input file or row (see :mod:`graphrel.data.sources`), a bad model directory or
            checkpoint, an output path that cannot be written, another run writing the same
            output (its lock, :mod:`graphrel.lock`), a lock left by a run that is gone
            (without ``resume``), an existing parts folder without ``resume``, or a manifest
            from another input, model, ``kind``, options or ``chunk_size`` with ``resume``;
            with ``calibrated``, a missing or unreadable ``calibrator.json``.
    """
    started = time.perf_counter()
    _check_sizes(batch_size=batch_size, chunk_size=chunk_size)
    input_path, output_path, model_dir = Path(input_path), Path(output_path), Path(model_dir)
    _check_output(output_path, input_path)
    with output_lock(output_path, resume=resume):  # one writer per output, for the whole run
        return _score_locked(model_dir, input_path, output_path, kind=kind, batch_size=batch_size,
                             chunk_size=chunk_size, resume=resume, started=started, load_options=load_options,
                             calibrated=calibrated)


def _score_locked(model_dir: Path, input_path: Path, output_path: Path, *, kind: str, batch_size: int,
                  chunk_size: int, resume: bool, started: float, load_options: dict,
                  calibrated: bool = False) -> ScoreSummary:
    """:func:`score_file` once the output's lock is held."""
    parts = score_parts.parts_dir(output_path)
    score_parts.remove_stale_temporaries(output_path)

    chunks = _InputChunks(iter_pairs(kind, input_path, chunk_size=chunk_size, **load_options))
    first = next(chunks)  # file-level problems and the first chunk's rows, before the model loads

    calibrator = _load_calibrator(model_dir) if calibrated else None
    settings = score_parts.run_settings(model_dir, input_path, output_path, kind=kind,
                                        load_options={**load_options, **({"calibrated": True} if calibrated else {})},
                                        chunk_size=chunk_size, batch_size=batch_size)
    manifest = score_parts.start_parts(parts, settings, resume)
    scorer = _load_scorer(model_dir)
    if calibrator is not None:
        scorer = _CalibratedScorer(scorer, calibrator)

    score_parts.write_manifest(parts, manifest)
    chunks.parts = parts  # from here on, a bad input row removes the parts folder
    every_chunk = chain([first], chunks)
    del first  # hold one chunk at a time
    done, reused = _score_chunks(every_chunk, parts, manifest, scorer, batch_size, input_path.name)
    rows = sum(entry["rows"] for entry in done)
    if reused:
        log.info("resumed: %d of %d chunk(s) taken from the interrupted run's shards", reused, len(done))
    manifest["shards"] = done

    hash_files = [parts / e["hashes"] for e in manifest["shards"] if e["rows"]]
    repeated = score_parts.count_repeated_pairs(hash_files, rows)
    if repeated:
        log.warning("%s: %d repeated (query_id, product_id) pair(s); every input row was scored "
                    "(one output row each)", input_path, repeated)
    has_labels = any(e["labelled"] for e in manifest["shards"])
    paths = score_parts.add_paths(manifest["shards"])
    recorded = {"rows": rows, "repeated_pairs": repeated, "chunks": len(manifest["shards"]), "reused_chunks": reused,
                "paths": paths, "model": str(model_dir.resolve()), "input": str(input_path.resolve()),
                "calibrated": None if calibrator is None else {"method": calibrator.method,
                                                               "label_scale": list(calibrator.label_scale)}}
    score_parts.merge_shards(parts, manifest["shards"], output_path, has_labels,  # the summary first, then the output
                             before_rename=lambda: score_parts.write_summary(output_path, recorded))
    shutil.rmtree(parts, ignore_errors=True)
    return ScoreSummary(output=output_path, rows=rows, repeated_pairs=repeated, chunks=len(manifest["shards"]),
                        reused_chunks=reused, paths=paths, has_labels=has_labels,
                        seconds=time.perf_counter() - started)


# --------------------------------------------------------------------------- checks and the model


def _check_sizes(**sizes: Any) -> None:
    """``batch_size`` and ``chunk_size`` must be whole numbers >= 1: a batch size of -1 once
    scored nothing and wrote garbage with exit 0, a batch size of 0 crashed part-way."""
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            option = "--" + name.replace("_", "-")
            raise GraphrelInputError(f"{name.replace('_', ' ')} must be a whole number >= 1, got {value!r}",
                                     fix=f"pass {option} N with N >= 1 (e.g. {option} "
                                         f"{512 if name == 'batch_size' else 100_000})")


def _check_output(output_path: Path, input_path: Path) -> None:
    """Fail early (before any work) on an output path that cannot be written."""
    fix = "choose another --output, e.g. scores.parquet in an existing writable folder"
    if output_path.is_dir():
        raise GraphrelInputError("output path is a directory", path=output_path, fix="give a .parquet file path")
    folder = output_path.parent
    if not folder.exists():
        raise GraphrelInputError("output folder does not exist", path=folder,
                                 fix="create it or choose another --output")
    if not folder.is_dir():
        raise GraphrelInputError("output folder is not a directory", path=folder, fix=fix)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise GraphrelInputError("output folder is not writable", path=folder, fix=fix)
    if input_path.exists() and output_path.exists() and output_path.resolve() == input_path.resolve():
        raise GraphrelInputError("output path is the input file", path=output_path,
                                 fix="write the scores to another file")


_MODEL_ERRORS = (pickle.UnpicklingError, EOFError, RuntimeError, KeyError, TypeError, ValueError,
                 AttributeError, OSError, zipfile.BadZipFile, ImportError)


@contextmanager
def _quiet_weight_loading() -> Iterator[None]:
    """Hide transformers' "Loading weights" progress bar while a student loads."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # pragma: no cover
        yield
        return
    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def _load_scorer(model_dir: Path):
    try:
        with _quiet_weight_loading():
            return load_scorer(model_dir)
    except GraphrelInputError:
        raise
    except _MODEL_ERRORS as error:
        raise GraphrelInputError(
            f"cannot load the student: not a readable student checkpoint, or its graph or "
            f"vocabulary is unreadable ({error.__class__.__name__})",
            path=score_parts.checkpoint_path(model_dir),
            fix="pass a student directory written by graphrel pipeline (e.g. RUN/student_korder), "
                "or re-run that run's student stage") from None


def _load_calibrator(model_dir: Path):
    from graphrel.scoring.calibration import Calibrator

    path = model_dir / "calibrator.json"
    if not path.is_file():
        raise GraphrelInputError("this model has no calibrator (calibrator.json)", path=path,
                                 fix="run the pipeline's evaluation on its run (graphrel pipeline --run-dir RUN), "
                                     "which fits one on the validation queries, or score without --calibrated")
    return Calibrator.load(path)


class _CalibratedScorer:
    """A scorer whose scores go through a calibrator (expected label on its label scale)."""

    def __init__(self, scorer, calibrator) -> None:
        self.scorer, self.calibrator = scorer, calibrator
        self.paths = getattr(scorer, "paths", None)

    def score(self, *args, **kwargs) -> np.ndarray:
        return self.calibrator.to_label_scale(self.scorer.score(*args, **kwargs)).astype(np.float32)


# --------------------------------------------------------------------------- chunks


class _InputChunks:
    """Iterate chunks; a bad input row (GraphrelInputError) removes ``parts`` once set, since
    those shards can never be completed with this input."""

    def __init__(self, chunks: Iterator[RelevancePairs]) -> None:
        self.chunks: Iterator[RelevancePairs] = chunks
        self.parts: Path | None = None

    def __iter__(self):
        return self

    def __next__(self) -> RelevancePairs:
        try:
            return next(self.chunks)
        except GraphrelInputError:
            if self.parts is not None:
                shutil.rmtree(self.parts, ignore_errors=True)
            raise


def _score_chunks(chunks, parts: Path, manifest: dict, scorer, batch_size: int,
                  name: str) -> tuple[list[dict], int]:
    """Score every chunk that has no finished shard yet; return (shard entries in chunk
    order, number of chunks reused from the interrupted run)."""
    finished = {entry["chunk"]: entry for entry in manifest["shards"]}  # by an interrupted run
    done: list[dict] = []
    reused = 0
    delay = float(os.environ.get(CHUNK_DELAY_ENV, "0") or 0)
    pause = os.environ.get(PAUSE_FILE_ENV)
    with tqdm(desc=f"scoring {name}", unit=" pairs", unit_scale=True, mininterval=2.0,
              disable=None) as bar:  # shown on a terminal only
        for index, chunk in enumerate(chunks):
            entry = finished.get(index)
            if entry is not None and score_parts.shard_is_complete(parts, entry, chunk):
                reused += 1
                log.debug("chunk %d: rows %s-%s reused", index, entry["first_row"], entry["last_row"])
            else:
                entry = _write_shard(parts, index, chunk, scorer, batch_size)
                # finished shards not reached yet stay listed: a crash now loses none of them
                score_parts.write_manifest(parts, {**manifest, "shards": done + [entry] + [
                    finished[k] for k in sorted(finished) if k > index]})
                log.debug("chunk %d: rows %s-%s scored", index, entry["first_row"], entry["last_row"])
                if delay > 0:
                    time.sleep(delay)
                while pause and os.path.exists(pause):
                    time.sleep(0.05)
            done.append(entry)
            bar.update(entry["rows"])
    return done, reused


def _write_shard(parts: Path, index: int, chunk: RelevancePairs, scorer, batch_size: int) -> dict:
    """Score one chunk and count its rows per scoring path; write its shard and pair hashes
    atomically; return its manifest entry."""
    frame = chunk.frame
    paths: dict[str, int] = {}
    if len(frame):
        scores = scorer.score(frame["query_id"], frame["query"], frame["product_id"], frame["product_text"],
                              batch_size=batch_size)
        count_paths = getattr(scorer, "paths", None)  # every graphrel scorer has it
        if count_paths is not None:
            paths = count_paths(frame["query_id"], frame["product_id"], queries=frame["query"])
    else:
        scores = np.empty(0, dtype=np.float32)
    return score_parts.save_shard(parts, index, frame, scores, paths)
