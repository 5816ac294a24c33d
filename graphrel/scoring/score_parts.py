"""The parts folder of one ``graphrel score`` output: manifest, shards, merge.

Files, for ``--output OUT.parquet``::

    OUT.parquet.parts/              while scoring (removed once OUT.parquet is written)
        manifest.json               what is being scored and which shards are finished
        part-00000.parquet          chunk 0: row_id, query_id, product_id, score, label
        part-00000.pairs.npy        chunk 0: sorted 64-bit hashes of (query_id, product_id)
        ...
    OUT.parquet                     the result: the shards merged in input order
    OUT.parquet.summary.json        what the run did (rows, repeated pairs, chunks, rows per
                                    scoring path; :func:`write_summary`), written just before
                                    OUT.parquet is renamed into place: a finished run has both
    OUT.parquet.lock                while scoring: the lock of the one run writing OUT.parquet
                                    (its process id, host and start time; graphrel.lock)

Every shard, hash file and manifest is written to a temporary name in the same folder and
renamed into place (``os.replace``), so a crash never leaves a half-written file that
counts: a shard is finished only once the manifest lists it. ``manifest.json``::

    {"format": "graphrel-score-parts/2",
     "input":  {"path": "/abs/pairs.csv", "size": 123456, "mtime_ns": 1700000000000000000},
     "model":  {"path": "/abs/run/student_korder",
                "files": {"/abs/run/student_korder/model.ckpt": {"size": ..., "mtime_ns": ...},
                          "/abs/run/graph.pt": {...}, ...}},
     "kind": "generic", "options": {"query_column": "query", ...}, "chunk_size": 100000,
     "batch_size": 512, "output": "/abs/OUT.parquet",
     "shards": [{"chunk": 0, "file": "part-00000.parquet", "hashes": "part-00000.pairs.npy",
                 "rows": 100000, "first_row": 1, "last_row": 100000, "labelled": 0,
                 "paths": {"graph": 99000, "text_fallback": 1000, "queries_not_in_graph": 800,
                           "products_not_in_graph": 20}}, ...]}

A shard entry's ``paths`` are the chunk's rows per scoring path (the scorer's ``paths()``;
see :func:`add_paths`), so a resumed run counts reused chunks without scoring them again.

The manifest also says what must match for ``--resume`` to reuse the shards
(:func:`start_parts`); repeated pairs are counted from the hash files at the end
(:func:`count_repeated_pairs`), and the shards merged in input order (:func:`merge_shards`).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from graphrel.data.schema import RelevancePairs
from graphrel.errors import GraphrelInputError
from graphrel.run import STUDENT_CHECKPOINT, STUDENT_MANIFEST, atomic_path, write_json, write_npy

log = logging.getLogger("graphrel")

MANIFEST = "manifest.json"
"""Name of the manifest inside the parts folder."""

MANIFEST_FORMAT = "graphrel-score-parts/2"  # /2: the model fingerprint lists every file it reads

#: Columns of every shard (``label`` is NaN where unknown; dropped at the merge if no row
#: of the input has a label).
SHARD_SCHEMA = pa.schema([("row_id", pa.int64()), ("query_id", pa.string()), ("product_id", pa.string()),
                          ("score", pa.float32()), ("label", pa.float64())])

HASH_BUCKET = 1_000_000  # hashes per bucket when counting repeated pairs (8 MB)


def remove_stale_temporaries(output_path: Path) -> None:
    """Temporary files a killed merge left beside the output (``atomic_path`` names)."""
    for stale in output_path.parent.glob(f".{output_path.name}.*.tmp"):
        stale.unlink(missing_ok=True)


def parts_dir(output_path: str | Path) -> Path:
    """The folder of shards and manifest for ``output_path``: ``OUT.parquet.parts``."""
    output_path = Path(output_path)
    return output_path.with_name(output_path.name + ".parts")


def _stat(path: Path) -> tuple[int | None, int | None]:
    try:
        stat = path.stat()
    except OSError:
        return None, None
    return stat.st_size, stat.st_mtime_ns


def input_fingerprint(path: Path) -> dict:
    size, mtime = _stat(path)
    return {"path": str(path.resolve()), "size": size, "mtime_ns": mtime}


def checkpoint_path(model_dir: Path) -> Path:
    """The checkpoint ``student.json`` names (``model.ckpt`` if it cannot be read)."""
    try:
        name = json.loads((model_dir / STUDENT_MANIFEST).read_text()).get("checkpoint", STUDENT_CHECKPOINT)
    except (OSError, ValueError, AttributeError):
        name = STUDENT_CHECKPOINT
    return model_dir / str(name)


def model_files(model_dir: Path) -> list[Path]:
    """Every file a model directory's scores depend on: the directory's own files (its
    checkpoint, manifest, vocabulary, tokenizer; not the ``README.md`` model card, which the
    evaluation rewrites), the graph a graph student's ``student.json`` names (``../graph.pt``),
    and for a run's teacher the run's ``config.yaml`` (its temperature) and ``teacher_backend.json``
    (the backend it scores on)."""
    files = sorted(path for path in model_dir.iterdir() if path.is_file() and path.name != "README.md") \
        if model_dir.is_dir() else []
    try:
        manifest = json.loads((model_dir / STUDENT_MANIFEST).read_text())
    except (OSError, ValueError):
        manifest = None
    if isinstance(manifest, dict) and isinstance(manifest.get("graph"), str):
        files.append((model_dir / manifest["graph"]).resolve())
    elif manifest is None:
        files += [model_dir.parent / name for name in ("config.yaml", "teacher_backend.json")
                  if (model_dir.parent / name).is_file()]
    return files


def model_fingerprint(model_dir: Path) -> dict:
    """Path, and size and modification time of every file of :func:`model_files`: a resumed run
    must score with the very model (and graph) the finished shards were scored with."""
    files = {}
    for path in model_files(model_dir):
        size, mtime = _stat(path)
        files[str(path.resolve())] = {"size": size, "mtime_ns": mtime}
    return {"path": str(model_dir.resolve()), "files": files}


def run_settings(model_dir: Path, input_path: Path, output_path: Path, *, kind: str, load_options: dict,
                 chunk_size: int, batch_size: int) -> dict:
    """What a run scores and how: the manifest's fields but ``shards``. A resumed run's
    manifest must match them (:func:`start_parts`)."""
    return {"format": MANIFEST_FORMAT, "input": input_fingerprint(input_path),
            "model": model_fingerprint(model_dir), "kind": str(kind),
            "options": json.loads(json.dumps({key: load_options[key] for key in sorted(load_options)},
                                              default=str)),  # as the manifest will hold them
            "chunk_size": int(chunk_size), "batch_size": int(batch_size),
            "output": str(output_path.resolve())}


def start_parts(parts: Path, settings: dict, resume: bool) -> dict:
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
        *_changed_model_files(old.get("model", {}).get("files") or {}, settings["model"]["files"]),
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


def _changed_model_files(before: dict, now: dict) -> list[tuple]:
    """One resume check per model file added, removed or changed (size or modification time)
    since the interrupted run, naming the file."""
    checks = []
    for path in sorted(set(before) | set(now)):
        if path not in now:
            checks.append((f"model (file {path} is gone)", "present", "missing"))
        elif path not in before:
            checks.append((f"model (file {path} is new)", "missing", "present"))
        elif before[path] != now[path]:
            checks.append((f"version of {path} (size or modification time changed)",
                           (before[path].get("size"), before[path].get("mtime_ns")),
                           (now[path]["size"], now[path]["mtime_ns"])))
    return checks


def write_manifest(parts: Path, manifest: dict) -> None:
    try:
        parts.mkdir(exist_ok=True)
        write_json(manifest, parts / MANIFEST)
    except OSError as error:
        raise cannot_write(parts, error) from None


def cannot_write(path: Path, error: OSError) -> GraphrelInputError:
    return GraphrelInputError(f"cannot write output ({error.strerror or error})", path=path,
                              fix="free disk space or choose a writable --output, then run again with --resume")


def _shard_name(index: int) -> str:
    return f"part-{index:05d}"


def shard_is_complete(parts: Path, entry: dict, chunk: RelevancePairs) -> bool:
    """A listed shard is reused only if its files exist, it covers this chunk's rows and its
    entry holds the chunk's path counts (an entry without them is scored again)."""
    paths = entry.get("paths")
    if not isinstance(paths, dict) or not all(type(n) is int and n >= 0 for n in paths.values()):
        return False
    try:
        rows = pq.ParquetFile(parts / entry["file"]).metadata.num_rows
        hashes_ok = (parts / entry["hashes"]).stat().st_size >= 8 * rows  # (+ the .npy header)
    except (OSError, KeyError, TypeError, pa.ArrowException):
        return False
    first = int(chunk.frame["row_id"].iloc[0]) if len(chunk) else None
    return hashes_ok and rows == entry.get("rows") == len(chunk) and entry.get("first_row") == first


def save_shard(parts: Path, index: int, frame: pd.DataFrame, scores: np.ndarray,
               paths: dict[str, int] | None = None) -> dict:
    """Write one chunk's shard (``frame``'s ids and label, ``scores``) and pair hashes
    atomically; return its manifest entry (with ``paths``, the chunk's rows per scoring path)."""
    out = pd.DataFrame({"row_id": frame["row_id"], "query_id": frame["query_id"],
                        "product_id": frame["product_id"], "score": np.asarray(scores, dtype=np.float32),
                        "label": frame["label"].astype(np.float64)})
    hashes = np.sort(pd.util.hash_pandas_object(frame[["query_id", "product_id"]], index=False).to_numpy())
    name = _shard_name(index)
    entry = {"chunk": index, "file": f"{name}.parquet", "hashes": f"{name}.pairs.npy", "rows": len(frame),
             "first_row": int(frame["row_id"].iloc[0]) if len(frame) else None,
             "last_row": int(frame["row_id"].iloc[-1]) if len(frame) else None,
             "labelled": int(frame["label"].notna().sum()),
             "paths": {str(key): int(count) for key, count in (paths or {}).items()}}
    try:
        write_npy(hashes.astype(np.uint64), parts / entry["hashes"])
        with atomic_path(parts / entry["file"]) as tmp:
            pq.write_table(pa.Table.from_pandas(out, schema=SHARD_SCHEMA, preserve_index=False), tmp)
    except OSError as error:
        raise cannot_write(parts, error) from None
    return entry


def count_repeated_pairs(hash_files: list[Path], total: int) -> int:
    """Rows whose pair hash occurred before, over all shards, a hash bucket at a time.

    Each file holds one shard's sorted uint64 hashes; bucket ``b`` is the hashes whose top
    bits equal ``b``, found by binary search in every (memory-mapped) file, so at most about
    ``HASH_BUCKET`` hashes are in memory at once.
    """
    arrays = [np.load(path, mmap_mode="r") for path in hash_files]
    bits = max(0, math.ceil(math.log2(max(total, 1) / HASH_BUCKET)))
    bounds = np.array([b << (64 - bits) for b in range(1, 1 << bits)], dtype=np.uint64)
    cuts = [np.concatenate(([0], np.searchsorted(a, bounds), [len(a)])) for a in arrays]
    repeated = 0
    for b in range(1 << bits):
        bucket = np.sort(np.concatenate([a[c[b]:c[b + 1]] for a, c in zip(arrays, cuts)]
                                        or [np.empty(0, dtype=np.uint64)]))
        if len(bucket):
            repeated += len(bucket) - 1 - int(np.count_nonzero(np.diff(bucket)))
    return repeated


def add_paths(shards: list[dict]) -> dict[str, int]:
    """The shards' rows per scoring path, added up (keys in the order first seen).

    Graph students count ``graph`` and ``text_fallback`` rows (together: every row) and the
    rows whose query or product id is not in the graph (``queries_not_in_graph``,
    ``products_not_in_graph``); text-only students count ``text`` rows.
    """
    total: dict[str, int] = {}
    for entry in shards:
        for key, count in entry.get("paths", {}).items():
            total[key] = total.get(key, 0) + int(count)
    return total


def summary_path(output_path: str | Path) -> Path:
    """The run summary written with ``output_path``: ``OUT.parquet.summary.json``."""
    output_path = Path(output_path)
    return output_path.with_name(output_path.name + ".summary.json")


def write_summary(output_path: Path, summary: dict) -> None:
    """Write ``summary`` to :func:`summary_path` atomically (replacing a stale one)."""
    write_json(summary, summary_path(output_path))


def merge_shards(parts: Path, shards: list[dict], output_path: Path, has_labels: bool,
                 before_rename=None) -> None:
    """Concatenate the shards in chunk order into ``output_path``, one shard in memory at a time.

    ``before_rename`` (no arguments), if given, runs once the merged file is complete, just
    before it is renamed onto ``output_path``: if it fails, ``output_path`` is not written.
    """
    schema = SHARD_SCHEMA if has_labels else pa.schema([f for f in SHARD_SCHEMA if f.name != "label"])
    try:
        with atomic_path(output_path) as tmp:
            with pq.ParquetWriter(tmp, schema) as writer:
                for entry in sorted(shards, key=lambda e: e["chunk"]):
                    if entry["rows"]:
                        writer.write_table(pq.read_table(parts / entry["file"], columns=schema.names).cast(schema))
                    # (an empty shard adds nothing; a file with no shard rows still gets the schema)
            if before_rename is not None:
                before_rename()
    except OSError as error:
        raise cannot_write(output_path, error) from None
