"""Symmetric timing: every model timed alike, in one run, interleaved.

Speeds on a shared machine swing up to 3x within minutes, so models are compared as ratios
measured together: each repetition times every model once, one after the other (a change of
load falls on all alike), each from empty text caches after the same warm-up on other pairs.
Reported: the median seconds and the fastest and slowest repetition.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd


@dataclass
class Timed:
    """One computation to time: ``score(frame)`` scores pairs; ``reset()`` (or None) empties
    its text caches so no repetition finds the timed texts cached."""

    score: Callable[[pd.DataFrame], object]
    reset: Callable[[], None] | None = None


def interleaved_seconds(computations: dict[str, Timed], pairs: pd.DataFrame, *, warmup: pd.DataFrame,
                        repeats: int) -> dict[str, list[float]]:
    """Wall seconds of every computation on ``pairs``, ``repeats`` times, interleaved.

    Each repetition runs, for each computation in order: ``reset()``, ``score(warmup)``
    (untimed), then ``score(pairs)`` timed.

    Returns:
        name -> the ``repeats`` timings in seconds (> 0), in repetition order.

    Raises:
        ValueError: ``repeats`` < 1.
    """
    if isinstance(repeats, bool) or int(repeats) != repeats or repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    seconds: dict[str, list[float]] = {name: [] for name in computations}
    for _ in range(int(repeats)):
        for name, timed in computations.items():
            if timed.reset is not None:
                timed.reset()
            timed.score(warmup)
            start = time.perf_counter()
            timed.score(pairs)
            seconds[name].append(time.perf_counter() - start)
    return seconds


def speed(seconds: list[float], pairs: int) -> dict:
    """Pairs per second of one computation's timings: ``pairs_per_second`` (from the median
    time), ``pairs_per_second_min`` / ``_max`` (slowest / fastest repetition), ``repeats``."""
    values = np.asarray(seconds, dtype=float)
    return {"pairs_per_second": pairs / float(np.median(values)), "pairs_per_second_min": pairs / float(values.max()),
            "pairs_per_second_max": pairs / float(values.min()), "repeats": len(values)}


def median_seconds(score: Callable[[pd.DataFrame], object], pairs: pd.DataFrame, *, warmup: pd.DataFrame,
                   repeats: int, reset: Callable[[], None] | None = None) -> float:
    """Median wall time (s) of ``score(pairs)`` over ``repeats`` runs of one computation
    (:func:`interleaved_seconds` with one entry).

    Raises:
        ValueError: ``repeats`` < 1.
    """
    seconds = interleaved_seconds({"model": Timed(score, reset)}, pairs, warmup=warmup, repeats=repeats)
    return float(np.median(seconds["model"]))
