"""The hybrid's numpy fusion grid gives ranx's rankings, setting by setting."""

import numpy as np
import pandas as pd
import pytest

from graphrel.retrieval.serving.fusion_grid import FusionGrid
from graphrel.retrieval.serving.hybrid import fuse_setting, settings_grid


def _run(rng, queries: int, depth: int, catalogue: int, *, tied: bool) -> pd.DataFrame:
    rows = []
    for q in range(queries):
        products = rng.choice(catalogue, size=depth, replace=False)
        scores = np.round(rng.normal(size=depth), 1 if tied else 6)  # rounding makes ties
        order = np.lexsort((products.astype(str), -scores))
        for rank, i in enumerate(order, start=1):
            rows.append((f"q{q}", rank, f"p{products[i]}", float(scores[i])))
    return pd.DataFrame(rows, columns=["query_id", "rank", "product_id", "score"])


@pytest.mark.parametrize("tied", [False, True])
def test_every_setting_ranks_as_ranx_does(tied):
    rng = np.random.default_rng(4)
    lexical = _run(rng, 12, 30, 60, tied=tied)   # partly overlapping lists: absent products add 0
    dense = _run(rng, 12, 30, 60, tied=tied)
    grid = FusionGrid(lexical, dense)
    for setting in settings_grid():
        ours = grid.fuse(setting, depth=10).sort_values(["query_id", "rank"]).reset_index(drop=True)
        ranx = fuse_setting(lexical, dense, setting, depth=10).sort_values(["query_id", "rank"]).reset_index(drop=True)
        pd.testing.assert_frame_equal(ours[["query_id", "rank", "product_id"]], ranx[["query_id", "rank", "product_id"]])
        np.testing.assert_allclose(ours["score"], ranx["score"], rtol=0, atol=1e-9)


def test_depth_and_unknown_settings_are_refused():
    rng = np.random.default_rng(0)
    grid = FusionGrid(_run(rng, 2, 5, 10, tied=False), _run(rng, 2, 5, 10, tied=False))
    with pytest.raises(ValueError, match="depth"):
        grid.fuse(settings_grid()[0], depth=0)
    with pytest.raises(ValueError, match="unknown"):
        grid.fuse({"method": "wsum", "norm": "l2", "weight": 0.5}, depth=3)
