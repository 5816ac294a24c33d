"""Stage records of a run directory: which config values and inputs each output was built from.

A pipeline stage is skipped only when its outputs exist *and* were built from the same
config values and the same inputs as now. Each stage has a *key*
(:mod:`graphrel.pipeline.stages`): the config values it depends on plus the fingerprints of
the stages whose outputs it reads. Its fingerprint is the SHA-256 of that key, so a changed
value re-runs the stage and, through the changed fingerprint, every stage that reads its
outputs. ``stages.json`` keeps the key and the fingerprint of every finished stage; a stage
whose record is missing or different has its old outputs removed before it runs again, and
the log says why.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

from graphrel.run import write_json

log = logging.getLogger("graphrel")

RECORDS = "stages.json"


def fingerprint(key: dict) -> str:
    """SHA-256 (hex) of a JSON-able key, independent of dict order."""
    return hashlib.sha256(json.dumps(_plain(key), sort_keys=True).encode()).hexdigest()


def key_changes(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Readable differences between two keys: ``"student.cap 4 -> 8"``, ``"input graph changed"``."""
    def show(value) -> str:
        return "(unset)" if value is _UNSET else json.dumps(value, default=str)

    changes = []
    for name in sorted(set(old) | set(new)):
        before, after = old.get(name, _UNSET), new.get(name, _UNSET)
        if before == after:
            continue
        path = f"{prefix}{name}"
        if isinstance(before, dict) and isinstance(after, dict):
            changes += key_changes(before, after, f"{path}.")
        elif path.startswith("inputs."):
            changes.append(f"input {path[len('inputs.'):]} changed")
        else:
            changes.append(f"{path} {show(before)} -> {show(after)}")
    return changes


_UNSET = object()


class StageRecords:
    """``<run_dir>/stages.json``: key and fingerprint of every finished stage.

    Args:
        run_dir: the run directory.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / RECORDS
        self.records: dict = json.loads(self.path.read_text()) if self.path.is_file() else {}

    def fingerprint(self, stage: str) -> str | None:
        """Fingerprint of a finished stage (None if it has no record)."""
        return self.records.get(stage, {}).get("fingerprint")

    def up_to_date(self, stage: str, key: dict, outputs: list[Path], scratch: list[Path] = ()) -> bool:
        """True when ``stage`` finished with ``key`` and every output exists.

        Otherwise False, after removing the outputs and ``scratch`` (work in progress, e.g.
        saved chunks) of another key, logging what changed, and recording that the stage now
        runs with ``key``; what an interrupted run with the same key left is kept, so the
        stage resumes from it.
        """
        key = _plain(key)
        record = self.records.get(stage)
        same = record is not None and record["fingerprint"] == fingerprint(key)
        if same:
            return bool(record.get("done")) and all(path.exists() for path in outputs)
        present = [path for path in [*outputs, *scratch] if path.exists()]
        if present:
            if record is None:
                reason = "no record of the config it was built from"
            elif record["fingerprint"] != fingerprint(key):
                reason = ", ".join(key_changes(record["key"], key)) or "its key changed"
            else:
                reason = "some of its outputs are missing"
            log.info("stage %s: re-running (%s); removing %s", stage, reason,
                     ", ".join(path.name for path in present))
            _remove(present)
        self._write(stage, key, done=False)
        return False

    def finished(self, stage: str, key: dict) -> None:
        """Record that ``stage`` was built from ``key`` (written atomically)."""
        self._write(stage, key, done=True)

    def remove(self, stage: str, outputs: list[Path], why: str) -> None:
        """Remove a stage that this run does not have (its outputs and its record)."""
        present = [path for path in outputs if path.exists()]
        if present:
            log.info("stage %s: %s; removing %s", stage, why, ", ".join(path.name for path in present))
            _remove(present)
        if self.records.pop(stage, None) is not None:
            write_json(self.records, self.path)

    def _write(self, stage: str, key: dict, *, done: bool) -> None:
        key = _plain(key)
        self.records[stage] = {"fingerprint": fingerprint(key), "done": done, "key": key}
        write_json(self.records, self.path)


def _plain(key: dict) -> dict:
    """The key as JSON gives it back (tuples as lists), so stored and new keys compare equal."""
    return json.loads(json.dumps(key, sort_keys=True, default=str))


def _remove(paths: list[Path]) -> None:
    for path in paths:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
