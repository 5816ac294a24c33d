"""CE scores of a fixed list of pairs, computed chunk by chunk and kept on disk: resumable.

The expensive part of a CE k-NN evaluation is scoring: the ground truth (every test query
against every item: 50 x 5,000 = 250k CE calls, 10-20 minutes here), the index's sparse matrix
and ANNCUR's dense anchor rows. :func:`cached_pair_scores` scores the pairs in chunks of
``chunk_pairs`` (in pair order), writes each chunk atomically as ``chunk-NNNNN.npz`` (its scores
and the seconds it took) and, called again on the same pairs and key, loads the finished chunks
and scores only the rest: an interrupted evaluation resumes where it stopped. The directory's
``manifest.json`` holds what the scores depend on; other pairs or another key start over.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from pathlib import Path

import numpy as np

from graphrel.run import atomic_path, write_json

log = logging.getLogger("graphrel")

MANIFEST = "manifest.json"


def cached_pair_scores(score_pairs, query_rows, item_rows, directory: str | Path, *, key: str,
                       chunk_pairs: int = 25000, description: str = "CE scores") -> tuple[np.ndarray, dict]:
    """Scores of pairs ``(query_rows[j], item_rows[j])``, cached in ``directory``.

    Args:
        score_pairs: a pair scorer (:mod:`graphrel.retrieval.knn.calls`); a
            :class:`~graphrel.retrieval.knn.calls.CrossEncoderCalls` counts only the pairs scored now.
        query_rows, item_rows: (N,) int rows.
        directory: the cache (created; replaced when its manifest differs).
        key: fingerprint of what the scores depend on beyond the rows (teacher, texts).
        chunk_pairs: pairs per saved chunk (>= 1).
        description: name in the progress log.

    Returns:
        scores (N,) float32 in pair order, and ``{"ce_calls": N, "seconds": scoring seconds of
        every chunk (summed over interrupted runs), "pairs_per_second", "scored_now": pairs
        scored in this call}``.

    Raises:
        ValueError: rows of different lengths or ``chunk_pairs`` < 1.
    """
    queries = np.ascontiguousarray(query_rows, dtype=np.int64).ravel()
    items = np.ascontiguousarray(item_rows, dtype=np.int64).ravel()
    if queries.shape != items.shape:
        raise ValueError(f"{len(queries)} query rows but {len(items)} item rows")
    if chunk_pairs < 1:
        raise ValueError(f"chunk_pairs must be >= 1, got {chunk_pairs}")
    directory = Path(directory)
    digest = hashlib.sha256(queries.tobytes() + b"|" + items.tobytes()).hexdigest()
    settings = {"pairs": int(len(queries)), "rows_sha256": digest, "key": key, "chunk_pairs": int(chunk_pairs)}
    manifest = directory / MANIFEST
    if directory.exists() and (not manifest.is_file() or json.loads(manifest.read_text()) != settings):
        shutil.rmtree(directory)  # scores of other pairs or another teacher: start over
    directory.mkdir(parents=True, exist_ok=True)
    if not manifest.is_file():
        write_json(settings, manifest)
    out = np.empty(len(queries), dtype=np.float32)
    seconds, scored_now, starts = 0.0, 0, range(0, len(queries), chunk_pairs)
    for index, start in enumerate(starts):
        stop = min(start + chunk_pairs, len(queries))
        path = directory / f"chunk-{index:05d}.npz"
        if path.is_file():
            with np.load(path) as saved:
                out[start:stop] = saved["scores"]
                seconds += float(saved["seconds"])
            continue
        began = time.perf_counter()
        scores = np.asarray(score_pairs(queries[start:stop], items[start:stop]), dtype=np.float32)
        took = time.perf_counter() - began
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, scores=scores, seconds=np.float64(took))
        out[start:stop] = scores
        seconds += took
        scored_now += stop - start
        log.info("knn: %s chunk %d/%d (%d pairs, %.0f pairs/s)", description, index + 1, len(starts),
                 stop - start, (stop - start) / max(took, 1e-9))
    return out, {"ce_calls": int(len(queries)), "seconds": seconds,
                 "pairs_per_second": len(queries) / seconds if seconds > 0 else None, "scored_now": scored_now}


def cached_score_matrix(score_pairs, query_rows, n_items: int, directory: str | Path, *, key: str,
                        chunk_pairs: int = 25000, description: str = "CE score matrix") -> tuple[np.ndarray, dict]:
    """Dense CE scores of queries x every item (rows 0..n_items-1), cached and resumable.

    Args:
        score_pairs: a pair scorer.
        query_rows: (Q,) query rows.
        n_items: N, items per query (>= 1).
        directory, key, chunk_pairs, description: as :func:`cached_pair_scores`.

    Returns:
        (Q, N) float32 scores and the figures of :func:`cached_pair_scores`.
    """
    query_rows = np.asarray(query_rows, dtype=np.int64).ravel()
    queries = np.repeat(query_rows, n_items)
    items = np.tile(np.arange(n_items, dtype=np.int64), len(query_rows))
    scores, figures = cached_pair_scores(score_pairs, queries, items, directory, key=key, chunk_pairs=chunk_pairs,
                                         description=description)
    return scores.reshape(len(query_rows), n_items), figures


def text_key(*parts) -> str:
    """Fingerprint of texts and settings (a short sha256), for the ``key`` of a cache."""
    digest = hashlib.sha256()
    for part in parts:
        for text in (np.asarray(part, dtype=object).ravel() if not isinstance(part, str) else [part]):
            digest.update(str(text).encode("utf-8") + b"\x1f")
        digest.update(b"\x1e")
    return digest.hexdigest()[:16]
