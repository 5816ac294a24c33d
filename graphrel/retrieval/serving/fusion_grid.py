"""The hybrid's fusion grid on the validation queries, vectorised over every query at once.

Choosing the hybrid's fusion scores 28 settings (:func:`graphrel.retrieval.serving.hybrid.settings_grid`)
on about 1,000 validation queries of two top-1,000 runs. Through ``ranx.fuse`` that took
110-139 s of the retrieval stage on 2 CPU cores (measured: per setting 1.1 s of ranx's weighted
sum, 0.6 s of its sort, 1.2 s converting its numba dictionaries back into a frame), a seventh of
the stage's 15-minute budget. This hand-rolled grid computes the same fusions with numpy
(per-query normalisation once per norm, then one weighted sum and one sort per setting: about
1 s a setting). The definitions are ranx's (normalisations and RRF as in ``ranx.normalization``
and ``ranx.fusion``); ``tests/retrieval/test_fusion_grid.py`` checks the rankings equal
:func:`graphrel.retrieval.serving.fusion.fuse_runs` (ranx) setting by setting, and the served
hybrid still fuses through ranx.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from graphrel.retrieval.serving.fusion import WSUM_NORMS


class FusionGrid:
    """Two runs of the same queries, aligned once for many fusions.

    Args:
        lexical, dense: run frames ``query_id, rank, product_id, score`` (BM25's and the dense
            retriever's), the same queries; each run's products distinct within a query.
    """

    def __init__(self, lexical: pd.DataFrame, dense: pd.DataFrame) -> None:
        frames = []
        for column, run in enumerate((lexical, dense)):
            frames.append(pd.DataFrame({"query_id": run["query_id"].astype(str).to_numpy(),
                                        "product_id": run["product_id"].astype(str).to_numpy(),
                                        "score": run["score"].to_numpy(dtype=np.float64),
                                        "rank": run["rank"].to_numpy(dtype=np.float64), "run": column}))
        rows = pd.concat(frames, ignore_index=True)
        # one row per (query, product) of the union, in (query, product id) string order
        union = rows[["query_id", "product_id"]].drop_duplicates().sort_values(["query_id", "product_id"])
        union = union.reset_index(drop=True)
        position = pd.MultiIndex.from_frame(union).get_indexer(pd.MultiIndex.from_frame(rows[["query_id", "product_id"]]))
        self.query_ids = union["query_id"].to_numpy()
        self.product_ids = union["product_id"].to_numpy()
        self._query_codes = pd.factorize(self.query_ids)[0]  # sorted, so codes increase along the rows
        self._normalised: dict[str, np.ndarray] = {}
        grouped = rows.groupby(["run", "query_id"], sort=False)["score"]
        scores = rows["score"].to_numpy()
        statistics = {"min": grouped.transform("min").to_numpy(), "max": grouped.transform("max").to_numpy(),
                      "mean": grouped.transform("mean").to_numpy(), "sum": grouped.transform("sum").to_numpy(),
                      "count": grouped.transform("size").to_numpy(),
                      "std": grouped.transform(lambda s: float(np.std(s.to_numpy()))).to_numpy()}
        normalised = {
            "min-max": (scores - statistics["min"]) / np.maximum(statistics["max"] - statistics["min"], 1e-9),
            "zmuv": (scores - statistics["mean"]) / np.maximum(statistics["std"], 1e-9),
            "sum": (scores - statistics["min"]) / np.maximum(statistics["sum"] - statistics["min"] * statistics["count"],
                                                             1e-9),
        }
        # ranx's RRF: 1 / (k + position in the run's own order), k added per setting
        ranks = rows["rank"].to_numpy()
        which = rows["run"].to_numpy()
        for name, values in {**normalised, "rank": ranks}.items():
            aligned = np.zeros((2, len(union)), dtype=np.float64)
            aligned[which, position] = values
            self._normalised[name] = aligned
        self._present = np.zeros((2, len(union)), dtype=bool)
        self._present[which, position] = True

    def fuse(self, setting: dict, *, depth: int) -> pd.DataFrame:
        """The fused top ``depth`` of every query by one setting of the hybrid's grid.

        Args:
            setting: ``{"method": "rrf", "rrf_k": k}`` or ``{"method": "wsum", "norm", "weight"}``
                (weight in [0, 1] of the dense run; BM25 gets 1 - weight).
            depth: products kept per query (>= 1).

        Returns:
            Run frame ``query_id, rank, product_id, score``, as
            :func:`graphrel.retrieval.serving.fusion.fuse_runs` gives for the same setting
            (ties broken by product id).

        Raises:
            ValueError: an unknown method or norm, or depth < 1.
        """
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        if setting["method"] == "rrf":
            k = float(setting["rrf_k"])
            ranks = self._normalised["rank"]
            parts = np.where(self._present, 1.0 / (k + np.where(self._present, ranks, 1.0)), 0.0)
            scores = parts[0] + parts[1]
        elif setting["method"] == "wsum" and setting["norm"] in WSUM_NORMS:
            weight = float(setting["weight"])
            values = self._normalised[setting["norm"]]
            scores = (1.0 - weight) * values[0] + weight * values[1]
        else:
            raise ValueError(f"unknown fusion setting {setting!r}")
        # rows are in (query, product id) order: a stable sort by (query, -score) breaks ties by product id
        order = np.lexsort((-scores, self._query_codes))
        codes = self._query_codes[order]
        starts = np.searchsorted(codes, codes, side="left")
        rank = np.arange(len(order)) - starts + 1
        keep = order[rank <= depth]
        return pd.DataFrame({"query_id": self.query_ids[keep], "rank": rank[rank <= depth].astype(np.int64),
                             "product_id": self.product_ids[keep], "score": scores[keep]})
