"""``python tests/fake_cli.py score ...``: graphrel's command line (:func:`graphrel.cli.main`)
in a real process, with every model directory served by :class:`FakeScorer`.

Everything but the model is the real ``graphrel score``: output lock, shards, manifest,
signal handling, messages and exit codes. Concurrency and signal tests run it as a
subprocess; in-process tests use the ``fake_model`` fixture (tests/helpers.py),
which patches the same function.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd


class FakeScorer:
    """Stands in for StudentScorer: a deterministic score in [0, 1] from the texts."""

    def score(self, query_ids, queries, product_ids, product_texts, *, batch_size=512, progress=False):
        q = pd.Series(list(queries), dtype=object).str.len().to_numpy()
        t = pd.Series(list(product_texts), dtype=object).str.len().to_numpy()
        return ((q * 31 + t) % 97 / 96).astype(np.float32)


def main(argv: list[str]) -> int:
    import graphrel.scoring.streaming as streaming
    from graphrel.cli import main as graphrel_main

    streaming._load_scorer = lambda model_dir: FakeScorer()
    return graphrel_main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
