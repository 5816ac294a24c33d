"""What an executor's Python worker keeps between batches and tasks: each model, loaded once.

Spark reuses its Python workers (``spark.python.worker.reuse``, on by default), so a model
cached at module level here is loaded once per worker and serves every later batch and task.
"""

from __future__ import annotations

import os
from typing import Callable

__all__ = ["load_once"]

#: Models loaded in this Python process, by the caller's key, the thread count and the process.
_LOADED: dict[tuple, object] = {}


def load_once(key: tuple, threads: int, load: Callable[[], object]):
    """``load()``'s model, called once per Python process for ``key`` and kept.

    Before the first load: torch runs ``threads`` threads in this process, and transformers
    shows no progress bars (its "Loading weights" bar would fill the executors' logs).
    """
    key = (*key, threads, os.getpid())  # a forked worker does not reuse its parent's entries
    if key not in _LOADED:
        import torch

        torch.set_num_threads(threads)
        try:
            from transformers.utils import logging as transformers_logging

            transformers_logging.disable_progress_bar()
        except ImportError:  # pragma: no cover
            pass
        _LOADED[key] = load()
    return _LOADED[key]
