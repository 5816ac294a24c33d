"""Build keys of the retrieval stage's outputs: a directory or file is reused only when the key
recorded with it (config values and the fingerprints of its inputs) is the key asked for, so an
interrupted stage resumes and a changed option rebuilds only what it changes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd

from graphrel.retrieval.serving.retriever import MANIFEST


def key(**parts) -> str:
    """A 16-hex-digit hash of the JSON of ``parts`` (values that are not JSON: their ``str``)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def reusable(directory: Path, key: str) -> bool:
    """Whether ``directory`` holds a retriever whose manifest records ``key``."""
    try:
        return json.loads((directory / MANIFEST).read_text()).get("build_key") == key
    except (OSError, ValueError):
        return False


def set_key(directory: Path, key: str) -> None:
    """Record ``key`` in the manifest of the retriever ``directory``."""
    manifest = json.loads((directory / MANIFEST).read_text())
    manifest["build_key"] = key
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2))


def directory_fingerprint(path) -> str | None:
    """Content hash of a file or of every file under a directory (None for None)."""
    if path is None:
        return None
    path = Path(path)
    digest = hashlib.sha256()
    for file in sorted([path] if path.is_file() else (f for f in path.rglob("*") if f.is_file())):
        digest.update(str(file.relative_to(path.parent if path.is_file() else path)).encode())
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def run_fingerprint(pairs: pd.DataFrame, run_dir: Path) -> str:
    """What the training examples depend on in the run: its pairs and its teacher's weights
    (``model.safetensors`` and ``config.json``: the Lightning checkpoint beside them differs
    between runs of identical weights)."""
    from graphrel import run as R

    rows = pd.util.hash_pandas_object(pairs[["query_id", "product_id", "split", "label"]].astype(str), index=False)
    teacher = run_dir / R.TEACHER_DIR
    return key(pairs=hashlib.sha256(rows.to_numpy().tobytes()).hexdigest(),
                teacher=[directory_fingerprint(teacher / name) for name in ("model.safetensors", "config.json")])
