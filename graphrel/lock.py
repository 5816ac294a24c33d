"""One writer per output: an exclusive lock beside the output for the whole run.

:func:`output_lock` holds an operating-system lock (``filelock.FileLock``: ``flock`` on
Unix) on ``OUT.parquet.lock`` while ``graphrel score`` writes ``OUT.parquet`` and its
``OUT.parquet.parts/`` folder. The lock file records who holds it (one JSON line: process
id, host, start time, command), so a second run on the same output is refused at once
with a message naming the first run's process.

The kernel releases the lock when its process ends, however it ends; the file is removed
on every exit the process sees (success, error, SIGTERM, Ctrl-C). Only a process that
could not clean up (``kill -9``, power loss) leaves the file behind: the next run finds
the lock free but the record of a process that is gone, and reports it instead of taking
it silently. ``--resume`` (continuing exactly that interrupted run) takes such a lock over
with a warning when the process is known to be dead (same host, process id not running);
a plain run refuses and says how to remove the file; a record of a process still running,
or of another host (whose processes cannot be checked from here), is always refused.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from filelock import FileLock, Timeout

from graphrel.errors import GraphrelInputError

__all__ = ["LOCK_SUFFIX", "lock_path", "output_lock"]

log = logging.getLogger("graphrel")

LOCK_SUFFIX = ".lock"
"""Suffix of the lock file beside an output: ``OUT.parquet.lock``."""


def lock_path(output_path: str | Path) -> Path:
    """The lock file of ``output_path``: ``OUT.parquet.lock`` in the same folder."""
    output_path = Path(output_path)
    return output_path.with_name(output_path.name + LOCK_SUFFIX)


def _read_record(path: Path) -> tuple[dict | None, tuple[int, int] | None]:
    """(the holder record in ``path`` or None, (device, inode) of the file read or None)."""
    try:
        with open(path, "rb") as handle:
            identity = os.fstat(handle.fileno())
            text = handle.read(4096)
    except OSError:
        return None, None
    try:
        record = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        record = None
    if not isinstance(record, dict) or not isinstance(record.get("pid"), int):
        record = None
    return record, (identity.st_dev, identity.st_ino)


def _describe(record: dict | None) -> str:
    if record is None:
        return "a process that left no record"
    text = f"process {record['pid']}"
    if record.get("host") and record["host"] != socket.gethostname():
        text += f" on host {record['host']}"
    if record.get("started"):
        text += f", started {record['started']}"
    return text


def _is_running(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (a zombie counts as running)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


@contextmanager
def output_lock(output_path: str | Path, *, resume: bool = False, command: str = "graphrel score",
                resume_hint: str = "run the same command with --resume") -> Iterator[Path]:
    """Hold the exclusive lock of ``output_path`` for the ``with`` block; yield the lock file.

    Args:
        output_path: the output file to be written.
        resume: this run continues an interrupted one (may take over the lock of a dead
            process on this host, with a warning).
        command: what holds the lock, for the messages.
        resume_hint: how to continue an interrupted run, for the messages.

    Raises:
        GraphrelInputError: another process holds the lock (its process id named); the lock
            file records a process that is gone (without ``resume``), still running, or on
            another host; or the lock file cannot be created.
    """
    output_path = Path(output_path)
    path = lock_path(output_path)
    previous, previous_file = _read_record(path)  # read first: the lock may reset the file
    lock = FileLock(str(path), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        holder = _read_record(path)[0] or previous
        raise GraphrelInputError(
            f"another {command} ({_describe(holder)}) is writing this output; its lock is {path}",
            path=output_path, fix="wait for that run to finish, or choose another --output") from None
    except OSError as error:
        raise GraphrelInputError(f"cannot create the lock file {path} ({error.strerror or error})",
                                 path=output_path, fix="choose an --output in a folder you can write to") from None
    try:
        held = path.stat()
        if previous is not None and previous_file == (held.st_dev, held.st_ino):
            _check_left_behind(previous, path, output_path, resume, command, resume_hint)
        record = {"pid": os.getpid(), "host": socket.gethostname(),
                  "started": time.strftime("%Y-%m-%d %H:%M:%S"), "command": command,
                  "output": str(output_path.resolve())}
        fd = os.open(path, os.O_WRONLY)
        try:
            os.ftruncate(fd, 0)
            os.write(fd, (json.dumps(record) + "\n").encode("utf-8"))
        finally:
            os.close(fd)
    except BaseException:
        lock.release()  # the file is not ours to remove: it holds the previous run's record
        raise
    try:
        yield path
    finally:
        try:
            path.unlink(missing_ok=True)  # while still holding the lock: no run can be using it
        finally:
            lock.release()


def _check_left_behind(record: dict, path: Path, output_path: Path, resume: bool, command: str,
                       resume_hint: str) -> None:
    """The lock is free but its file records another process: the previous holder ended
    without removing it. Refuse unless it is a process of this host that is gone and this
    run resumes it."""
    same_host = record.get("host") in (None, socket.gethostname())
    pid = record["pid"]
    who = _describe(record)
    if not same_host:
        raise GraphrelInputError(
            f"the lock file {path} was left by {who}; graphrel cannot tell from this host whether it still runs",
            path=output_path,
            fix=f"if that run has ended, delete {path} and run again (with --resume to continue it); "
                "otherwise wait for it or choose another --output")
    if pid != os.getpid() and _is_running(pid):
        raise GraphrelInputError(
            f"the lock file {path} names {who}, which is still running, yet the lock is free "
            "(file locks may not work on this file system)",
            path=output_path,
            fix=f"if process {pid} is not a {command} writing this output, delete {path} and run again; "
                "otherwise wait for it or choose another --output")
    if resume:
        log.warning("%s: taking over the lock left by %s, which is no longer running", path, who)
        return
    raise GraphrelInputError(
        f"the lock file {path} was left by {who}, which is no longer running (killed?)",
        path=output_path,
        fix=f"{resume_hint} to continue that run, or delete {path} (and any {output_path.name}.parts folder) "
            "to start over")
