"""The parts folder of one ``graphrel retrieve`` output, so an interrupted run resumes.

Files, for ``--output OUT.parquet`` (or ``OUT.trec``)::

    OUT.parquet.parts/          while retrieving (removed once OUT.parquet is written)
        manifest.json           what is retrieved and how, and which chunks are finished
        part-00000.parquet      chunk 0: its queries' rows (query_id, rank, product_id, score, ...)

A chunk's file is written to a temporary name and renamed into place, and counts only once the
manifest (rewritten the same way) lists it, so a crash never leaves a half-written part that
counts. ``--resume`` reuses the finished chunks of a run with the same queries file, retriever
directories and options; any other run refuses to start while the folder is there.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Callable

import pandas as pd

from graphrel.errors import GraphrelInputError
from graphrel.run import write_json, write_parquet

log = logging.getLogger("graphrel")

FORMAT = "graphrel-retrieve-parts/1"
MANIFEST = "manifest.json"


def parts_dir(output: Path) -> Path:
    """``OUT.parquet.parts`` beside the output."""
    return output.parent / f"{output.name}.parts"


def file_version(path: str | Path | None) -> dict | None:
    """Path, size and modification time of a file (a directory: of its ``manifest.json`` or
    ``config.json``), enough to tell that an input changed between a run and its resume."""
    if path is None:
        return None
    path = Path(path).resolve()
    probe = next((path / name for name in ("manifest.json", "student.json", "config.json") if (path / name).is_file()),
                 path)
    stat = probe.stat() if probe.exists() else None
    return {"path": str(path), "size": stat.st_size if stat else None, "mtime_ns": stat.st_mtime_ns if stat else None}


def run_in_parts(parts: Path, settings: dict, bounds: list[tuple[int, int]],
                 compute: Callable[[int, int], pd.DataFrame], *, resume: bool) -> pd.DataFrame:
    """Compute every chunk ``[start, stop)`` of the queries, keeping each finished one in ``parts``.

    Args:
        parts: the parts folder (:func:`parts_dir`).
        settings: what the run retrieves and how (JSON-able); a resumed run must match it.
        bounds: the chunks' query row ranges, in order.
        compute: ``(start, stop) -> rows`` of those queries.
        resume: reuse the finished chunks of an interrupted run with the same settings.

    Returns:
        Every chunk's rows, in chunk order.

    Raises:
        GraphrelInputError: parts of an interrupted run are there without ``resume``, or they
            belong to other settings.
    """
    settings = json.loads(json.dumps(settings, default=str))
    manifest = {"format": FORMAT, "settings": settings, "chunks": []}
    if parts.exists():
        if not resume:
            raise GraphrelInputError("an interrupted run's parts are here", path=parts,
                                     fix="pass --resume to continue it, or delete that folder to start over")
        try:
            old = json.loads((parts / MANIFEST).read_text())
        except FileNotFoundError:
            old = manifest
        except (OSError, ValueError):
            raise GraphrelInputError("not a readable retrieval manifest", path=parts / MANIFEST,
                                     fix=f"delete {parts} and run again without --resume") from None
        if old.get("format") != FORMAT or old.get("settings") != settings:
            raise GraphrelInputError("the interrupted run's parts belong to other queries, retrievers or options",
                                     path=parts, fix=f"resume with the same command as before, or delete {parts}")
        manifest["chunks"] = [c for c in old.get("chunks", []) if (parts / _name(c)).is_file()]
    elif resume:
        log.info("nothing to resume (no %s): retrieving from the start", parts)
    parts.mkdir(parents=True, exist_ok=True)
    done = set(manifest["chunks"])
    for chunk, (start, stop) in enumerate(bounds):
        if chunk in done:
            continue
        write_parquet(compute(start, stop), parts / _name(chunk))
        manifest["chunks"].append(chunk)
        write_json(manifest, parts / MANIFEST)
    if done:
        log.info("resumed: %d of %d chunks were already retrieved", len(done), len(bounds))
    return pd.concat([pd.read_parquet(parts / _name(c)) for c in range(len(bounds))], ignore_index=True)


def _name(chunk: int) -> str:
    return f"part-{int(chunk):05d}.parquet"
