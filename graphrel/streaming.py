"""Streaming, crash-safe, resumable batch scoring: what ``graphrel score`` runs.

:func:`score_file` reads the input chunk by chunk (:func:`graphrel.data.datasets.iter_pairs`:
the same validation and one-line errors as the loaders, each naming the true input row),
scores each chunk with a trained student and writes it as one shard. Memory stays flat
however long the input is: one chunk, its features and its scores at a time.

Files, for ``--output OUT.parquet``::

    OUT.parquet.parts/              while scoring (removed once OUT.parquet is written)
        manifest.json               what is being scored and which shards are finished
        part-00000.parquet          chunk 0: row_id, query_id, product_id, score, label
        part-00000.pairs.npy        chunk 0: sorted 64-bit hashes of (query_id, product_id)
        ...
    OUT.parquet                     the result: the shards merged in input order
    OUT.parquet.lock                while scoring: the lock of the one run writing OUT.parquet
                                    (its process id, host and start time; graphrel.lock)

Every shard, hash file and manifest is written to a temporary name in the same folder and
renamed into place (``os.replace``), so a crash never leaves a half-written file that
counts: a shard is finished only once the manifest lists it. ``manifest.json``::

    {"format": "graphrel-score-parts/1",
     "input":  {"path": "/abs/pairs.csv", "size": 123456, "mtime_ns": 1700000000000000000},
     "model":  {"path": "/abs/run/student_korder", "checkpoint_size": ..., "checkpoint_mtime_ns": ...},
     "kind": "generic", "options": {"query_column": "query", ...}, "chunk_size": 100000,
     "batch_size": 512, "output": "/abs/OUT.parquet",
     "shards": [{"chunk": 0, "file": "part-00000.parquet", "hashes": "part-00000.pairs.npy",
                 "rows": 100000, "first_row": 1, "last_row": 100000, "labelled": 0}, ...]}

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

import json
import logging
import math
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
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from graphrel.data.datasets import iter_pairs
from graphrel.data.schema import RelevancePairs
from graphrel.errors import GraphrelInputError
from graphrel.lock import lock_path, output_lock
from graphrel.run import STUDENT_CHECKPOINT, STUDENT_MANIFEST, atomic_path, write_json

__all__ = ["ScoreSummary", "score_file", "parts_dir", "lock_path", "MANIFEST", "CHUNK_DELAY_ENV",
           "PAUSE_FILE_ENV"]

log = logging.getLogger("graphrel")

MANIFEST = "manifest.json"
"""Name of the manifest inside the parts folder."""

MANIFEST_FORMAT = "graphrel-score-parts/1"

CHUNK_DELAY_ENV = "GRAPHREL_TEST_CHUNK_DELAY"
"""Test-only hook: seconds to sleep after each finished shard."""

PAUSE_FILE_ENV = "GRAPHREL_TEST_PAUSE_FILE"
"""Test-only hook: after each finished shard, wait while the file this names exists."""

#: Columns of every shard (``label`` is NaN where unknown; dropped at the merge if no row
#: of the input has a label).
SHARD_SCHEMA = pa.schema([("row_id", pa.int64()), ("query_id", pa.string()), ("product_id", pa.string()),
                          ("score", pa.float32()), ("label", pa.float64())])

_HASH_BUCKET = 1_000_000  # hashes per bucket when counting repeated pairs (8 MB)


@dataclass
class ScoreSummary:
    """What :func:`score_file` did.

    Attributes:
        output: the Parquet file written.
        rows: output rows (= input rows scored; after an ESCI ``locale`` filter, rows kept).
        repeated_pairs: rows whose (query_id, product_id) pair occurred earlier in the input.
        chunks: chunks of the input (= shards).
        reused_chunks: chunks taken from an interrupted run's shards (``resume=True``).
        has_labels: whether the output has a ``label`` column.
        seconds: wall time of the call.
    """

    output: Path
    rows: int
    repeated_pairs: int
    chunks: int
    reused_chunks: int
    has_labels: bool
    seconds: float


def parts_dir(output_path: str | Path) -> Path:
    """The folder of shards and manifest for ``output_path``: ``OUT.parquet.parts``."""
    output_path = Path(output_path)
    return output_path.with_name(output_path.name + ".parts")


def score_file(model_dir: str | Path, input_path: str | Path, output_path: str | Path, *,
               kind: str = "generic", batch_size: int = 512, chunk_size: int = 100_000,
               resume: bool = False, **load_options: Any) -> ScoreSummary:
    """Score every row of a pairs file with a trained student, streaming, crash-safe, resumable.

    The input is read and validated ``chunk_size`` rows at a time; each chunk is scored and
    written as one shard in ``OUT.parquet.parts/`` (see the module docstring for the files
    and the manifest); when every chunk is done the shards are merged, shard by shard,
    into ``output_path`` (atomically) and the parts folder is removed. Peak memory does not
    grow with the input's length.

    Output columns: ``row_id`` (int64, 1-based input data row; JSON Lines: the line),
    ``query_id`` and ``product_id`` (str), ``score`` (float32 in [0, 1]), and ``label``
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
        **load_options: options of the loader for ``kind`` (column mapping, label scale,
            encoding, file format, ESCI locale), without ``keep_duplicates``.

    Returns:
        A :class:`ScoreSummary` (rows, repeated pairs, chunks, reused chunks, time).

    Raises:
        GraphrelInputError: ``batch_size`` or ``chunk_size`` not a whole number >= 1, a bad
            input file or row (see :mod:`graphrel.data.sources`), a bad model directory or
            checkpoint, an output path that cannot be written, another run writing the same
            output (its lock, :mod:`graphrel.lock`), a lock left by a run that is gone
            (without ``resume``), an existing parts folder without ``resume``, or a manifest
            from another input, model, ``kind``, options or ``chunk_size`` with ``resume``.
    """
    started = time.perf_counter()
    _check_sizes(batch_size=batch_size, chunk_size=chunk_size)
    input_path, output_path, model_dir = Path(input_path), Path(output_path), Path(model_dir)
    _check_output(output_path, input_path)
    with output_lock(output_path, resume=resume):  # one writer per output, for the whole run
        return _score_locked(model_dir, input_path, output_path, kind=kind, batch_size=batch_size,
                             chunk_size=chunk_size, resume=resume, started=started, load_options=load_options)


def _score_locked(model_dir: Path, input_path: Path, output_path: Path, *, kind: str, batch_size: int,
                  chunk_size: int, resume: bool, started: float, load_options: dict) -> ScoreSummary:
    """:func:`score_file` once the output's lock is held."""
    parts = parts_dir(output_path)
    _remove_stale_temporaries(output_path)

    chunks = _InputChunks(iter_pairs(kind, input_path, chunk_size=chunk_size, **load_options))
    first = next(chunks)  # file-level problems and the first chunk's rows, before the model loads

    settings = {"format": MANIFEST_FORMAT, "input": _input_fingerprint(input_path),
                "model": _model_fingerprint(model_dir), "kind": str(kind),
                "options": json.loads(json.dumps({key: load_options[key] for key in sorted(load_options)},
                                                  default=str)),  # as the manifest will hold them
                "chunk_size": int(chunk_size), "batch_size": int(batch_size),
                "output": str(output_path.resolve())}
    manifest = _start_parts(parts, settings, resume)
    scorer = _load_scorer(model_dir)

    _write_manifest(parts, manifest)
    chunks.parts = parts  # from here on, a bad input row removes the parts folder
    every_chunk = chain([first], chunks)
    del first  # hold one chunk at a time
    done, reused = _score_chunks(every_chunk, parts, manifest, scorer, batch_size, input_path.name)
    rows = sum(entry["rows"] for entry in done)
    if reused:
        log.info("resumed: %d of %d chunk(s) taken from the interrupted run's shards", reused, len(done))
    manifest["shards"] = done

    repeated = _count_repeated_pairs([parts / e["hashes"] for e in manifest["shards"] if e["rows"]], rows)
    if repeated:
        log.warning("%s: %d repeated (query_id, product_id) pair(s); every input row was scored "
                    "(one output row each)", input_path, repeated)
    has_labels = any(e["labelled"] for e in manifest["shards"])
    _merge(parts, manifest["shards"], output_path, has_labels)
    shutil.rmtree(parts, ignore_errors=True)
    return ScoreSummary(output=output_path, rows=rows, repeated_pairs=repeated, chunks=len(manifest["shards"]),
                        reused_chunks=reused, has_labels=has_labels, seconds=time.perf_counter() - started)


# --------------------------------------------------------------------------- checks


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


def _remove_stale_temporaries(output_path: Path) -> None:
    """Temporary files a killed merge left beside the output (``atomic_path`` names)."""
    for stale in output_path.parent.glob(f".{output_path.name}.*.tmp"):
        stale.unlink(missing_ok=True)


def _stat(path: Path) -> tuple[int | None, int | None]:
    try:
        stat = path.stat()
    except OSError:
        return None, None
    return stat.st_size, stat.st_mtime_ns


def _input_fingerprint(path: Path) -> dict:
    size, mtime = _stat(path)
    return {"path": str(path.resolve()), "size": size, "mtime_ns": mtime}


def _checkpoint_path(model_dir: Path) -> Path:
    """The checkpoint ``student.json`` names (``model.ckpt`` if it cannot be read)."""
    try:
        name = json.loads((model_dir / STUDENT_MANIFEST).read_text()).get("checkpoint", STUDENT_CHECKPOINT)
    except (OSError, ValueError, AttributeError):
        name = STUDENT_CHECKPOINT
    return model_dir / str(name)


def _model_fingerprint(model_dir: Path) -> dict:
    size, mtime = _stat(_checkpoint_path(model_dir))
    return {"path": str(model_dir.resolve()), "checkpoint_size": size, "checkpoint_mtime_ns": mtime}


def _start_parts(parts: Path, settings: dict, resume: bool) -> dict:
    """The manifest to continue from: fresh, or the interrupted run's (checked) with ``resume``."""
    fresh = {**settings, "shards": []}
    if not parts.exists():
        if resume:
            log.info("nothing to resume (no %s): scoring from the start", parts)
        return fresh
    if not resume:
        raise GraphrelInputError(
            "an interrupted run's shards are here", path=parts,
            fix="pass --resume to continue it, or delete that folder to start over")
    if not parts.is_dir():
        raise GraphrelInputError("expected a folder of shards, found a file", path=parts,
                                 fix="delete it and run again")
    path = parts / MANIFEST
    if not path.exists():  # killed before the first manifest was written: nothing to reuse
        return fresh
    try:
        old = json.loads(path.read_text())
        if old.get("format") != MANIFEST_FORMAT or not isinstance(old.get("shards"), list):
            raise ValueError(old.get("format"))
    except (OSError, ValueError, AttributeError):
        raise GraphrelInputError("not a readable scoring manifest", path=path,
                                 fix=f"delete {parts} and score again without --resume") from None
    checks = [
        ("input file", old.get("input", {}).get("path"), settings["input"]["path"]),
        ("input file version (size or modification time changed)",
         (old.get("input", {}).get("size"), old.get("input", {}).get("mtime_ns")),
         (settings["input"]["size"], settings["input"]["mtime_ns"])),
        ("model", old.get("model", {}).get("path"), settings["model"]["path"]),
        ("model checkpoint version (size or modification time changed)",
         (old.get("model", {}).get("checkpoint_size"), old.get("model", {}).get("checkpoint_mtime_ns")),
         (settings["model"]["checkpoint_size"], settings["model"]["checkpoint_mtime_ns"])),
        ("--kind", old.get("kind"), settings["kind"]),
        ("column / format options", old.get("options"), settings["options"]),
        ("--chunk-size", old.get("chunk_size"), settings["chunk_size"]),
    ]
    for what, before, now in checks:
        if before != now:
            shown = f"{before!r} then, {now!r} now" if not isinstance(before, tuple) else "changed since"
            raise GraphrelInputError(
                f"the interrupted run's shards belong to a different {what} ({shown})", path=path,
                fix=f"resume with the same input, model and options as before, or delete {parts} to start over")
    return {**settings, "shards": [e for e in old["shards"] if isinstance(e, dict) and "chunk" in e]}


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
    from graphrel.scoring import load_scorer

    try:
        with _quiet_weight_loading():
            return load_scorer(model_dir)
    except GraphrelInputError:
        raise
    except _MODEL_ERRORS as error:
        raise GraphrelInputError(
            f"cannot load the student: not a readable student checkpoint, or its graph or "
            f"vocabulary is unreadable ({error.__class__.__name__})",
            path=_checkpoint_path(model_dir),
            fix="pass a student directory written by graphrel pipeline (e.g. RUN/student_korder), "
                "or re-run that run's student stage") from None


# --------------------------------------------------------------------------- chunks and shards


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
            if entry is not None and _shard_is_complete(parts, entry, chunk):
                reused += 1
                log.debug("chunk %d: rows %s-%s reused", index, entry["first_row"], entry["last_row"])
            else:
                entry = _write_shard(parts, index, chunk, scorer, batch_size)
                # finished shards not reached yet stay listed: a crash now loses none of them
                _write_manifest(parts, {**manifest, "shards": done + [entry] + [
                    finished[k] for k in sorted(finished) if k > index]})
                log.debug("chunk %d: rows %s-%s scored", index, entry["first_row"], entry["last_row"])
                if delay > 0:
                    time.sleep(delay)
                while pause and os.path.exists(pause):
                    time.sleep(0.05)
            done.append(entry)
            bar.update(entry["rows"])
    return done, reused


def _write_manifest(parts: Path, manifest: dict) -> None:
    try:
        parts.mkdir(exist_ok=True)
        write_json(manifest, parts / MANIFEST)
    except OSError as error:
        raise _cannot_write(parts, error) from None


def _cannot_write(path: Path, error: OSError) -> GraphrelInputError:
    return GraphrelInputError(f"cannot write output ({error.strerror or error})", path=path,
                              fix="free disk space or choose a writable --output, then run again with --resume")


def _shard_name(index: int) -> str:
    return f"part-{index:05d}"


def _shard_is_complete(parts: Path, entry: dict, chunk: RelevancePairs) -> bool:
    """A listed shard is reused only if its files exist and it covers this chunk's rows."""
    try:
        rows = pq.ParquetFile(parts / entry["file"]).metadata.num_rows
        hashes_ok = (parts / entry["hashes"]).stat().st_size >= 8 * rows  # (+ the .npy header)
    except (OSError, KeyError, TypeError, pa.ArrowException):
        return False
    first = int(chunk.frame["row_id"].iloc[0]) if len(chunk) else None
    return hashes_ok and rows == entry.get("rows") == len(chunk) and entry.get("first_row") == first


def _write_shard(parts: Path, index: int, chunk: RelevancePairs, scorer, batch_size: int) -> dict:
    """Score one chunk; write its shard and pair hashes atomically; return its manifest entry."""
    frame = chunk.frame
    if len(frame):
        scores = scorer.score(frame["query_id"], frame["query"], frame["product_id"], frame["product_text"],
                              batch_size=batch_size)
    else:
        scores = np.empty(0, dtype=np.float32)
    out = pd.DataFrame({"row_id": frame["row_id"], "query_id": frame["query_id"],
                        "product_id": frame["product_id"], "score": np.asarray(scores, dtype=np.float32),
                        "label": frame["label"].astype(np.float64)})
    hashes = np.sort(pd.util.hash_pandas_object(frame[["query_id", "product_id"]], index=False).to_numpy())
    name = _shard_name(index)
    entry = {"chunk": index, "file": f"{name}.parquet", "hashes": f"{name}.pairs.npy", "rows": len(frame),
             "first_row": int(frame["row_id"].iloc[0]) if len(frame) else None,
             "last_row": int(frame["row_id"].iloc[-1]) if len(frame) else None,
             "labelled": int(frame["label"].notna().sum())}
    try:
        with atomic_path(parts / entry["hashes"]) as tmp:
            with open(tmp, "wb") as handle:
                np.save(handle, hashes.astype(np.uint64))
        with atomic_path(parts / entry["file"]) as tmp:
            pq.write_table(pa.Table.from_pandas(out, schema=SHARD_SCHEMA, preserve_index=False), tmp)
    except OSError as error:
        raise _cannot_write(parts, error) from None
    return entry


# --------------------------------------------------------------------------- the end


def _count_repeated_pairs(hash_files: list[Path], total: int) -> int:
    """Rows whose pair hash occurred before, over all shards, a hash bucket at a time.

    Each file holds one shard's sorted uint64 hashes; bucket ``b`` is the hashes whose top
    bits equal ``b``, found by binary search in every (memory-mapped) file, so at most about
    ``_HASH_BUCKET`` hashes are in memory at once.
    """
    arrays = [np.load(path, mmap_mode="r") for path in hash_files]
    bits = max(0, math.ceil(math.log2(max(total, 1) / _HASH_BUCKET)))
    bounds = np.array([b << (64 - bits) for b in range(1, 1 << bits)], dtype=np.uint64)
    cuts = [np.concatenate(([0], np.searchsorted(a, bounds), [len(a)])) for a in arrays]
    repeated = 0
    for b in range(1 << bits):
        bucket = np.sort(np.concatenate([a[c[b]:c[b + 1]] for a, c in zip(arrays, cuts)]
                                        or [np.empty(0, dtype=np.uint64)]))
        if len(bucket):
            repeated += len(bucket) - 1 - int(np.count_nonzero(np.diff(bucket)))
    return repeated


def _merge(parts: Path, shards: list[dict], output_path: Path, has_labels: bool) -> None:
    """Concatenate the shards in chunk order into ``output_path``, one shard in memory at a time."""
    schema = SHARD_SCHEMA if has_labels else pa.schema([f for f in SHARD_SCHEMA if f.name != "label"])
    try:
        with atomic_path(output_path) as tmp:
            with pq.ParquetWriter(tmp, schema) as writer:
                for entry in sorted(shards, key=lambda e: e["chunk"]):
                    if entry["rows"]:
                        writer.write_table(pq.read_table(parts / entry["file"], columns=schema.names).cast(schema))
                    # (an empty shard adds nothing; a file with no shard rows still gets the schema)
    except OSError as error:
        raise _cannot_write(output_path, error) from None
