"""Hybrid lexical + dense retrieval (``hybrid``): BM25 fused with one dense retriever.

The standard of production search: BM25 finds the exact words (model numbers, brands), the
dense retriever the paraphrases; each returns its top ``depth`` (1000) products per query and
the two lists are fused with ``ranx.fuse`` (Bassani, "ranx: A Blazing-Fast Python Library for
Ranking Evaluation and Comparison", ECIR 2022; "ranx.fuse", CIKM 2022), by one of the settings
of :func:`settings_grid`:

- ``rrf``: reciprocal rank fusion (Cormack, Clarke & Buettcher, "Reciprocal rank fusion
  outperforms Condorcet and individual rank learning methods", SIGIR 2009), k = ``rrf_k``;
- ``wsum``: (1 - w) * BM25 + w * dense of per-query normalised scores (ranx ``min-max``,
  ``zmuv`` or ``sum``), dense weight w in 0.1..0.9: the convex combination of Bruch, Gai &
  Ingber ("An Analysis of Fusion Functions for Hybrid Retrieval", ACM TOIS 2023), who find it
  beats RRF once w is tuned on a few queries.

The setting is chosen on the run's validation queries only (split ``val``, relevant = label at
or above the stage's threshold, as the test queries; never a test query): the highest
recall@100, ties by NDCG@10, then grid order; figures of
:func:`~graphrel.retrieval.measures.evaluation.retrieval_metrics`, the table's own. A grid over
``ranx.fuse``, not ``ranx.optimize_fusion``: that optimises one metric without a tie-break,
with ranx's metric code rather than the table's, its weight grid includes the single-run
endpoints 0 and 1, and it keeps one figure per point.

The choice is saved as a retriever directory ``RUN/retrieval/retrievers/hybrid/``:
``manifest.json`` (kind ``hybrid``; :meth:`Retriever.load` returns a :class:`HybridRetriever`,
so ``graphrel retrieve --model RUN/retrieval/retrievers/hybrid`` serves it) and ``hybrid.json``
(format :data:`FORMAT`): the two input directories' names (siblings of ``hybrid/``), method,
norm, weight, rrf_k, depth, the validation figures of every grid point. Serving searches each
input's top ``max(depth, k)`` (the normalisation sees the lists it saw on validation), fuses
them and keeps the top k: the stage evaluates the hybrid through this very code.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from graphrel.errors import GraphrelInputError
from graphrel.retrieval.serving.fusion import RRF_K, WSUM_NORMS, RanxRuns, fuse_runs
from graphrel.retrieval.serving.retriever import FORMAT as RETRIEVER_FORMAT
from graphrel.retrieval.serving.retriever import MANIFEST, Retriever, _write_directory, checked_depth

log = logging.getLogger("graphrel")

FORMAT = "graphrel-hybrid/1"
CONFIG = "hybrid.json"
NAME = "hybrid"
DEPTH = 1000  # products per input and query fused (the retrieval table's deepest cut-off)
WEIGHTS = tuple(round(0.1 * i, 1) for i in range(1, 10))  # the dense run's weight in wsum
CHOICE_KEYS = ("recall@100", "ndcg@10")  # chosen by the first, ties by the second
CHOICE_DEPTH = 100  # fused validation products evaluated: all that recall@100 and NDCG@10 read


def settings_grid(rrf_k: int = RRF_K) -> list[dict]:
    """The fusion settings tried, in tie-break order: RRF, then ``wsum`` for each norm of
    :data:`~graphrel.retrieval.serving.fusion.WSUM_NORMS` and each dense weight of :data:`WEIGHTS`.
    Each is ``{"method", "norm", "weight", "rrf_k"}`` (None where it does not apply)."""
    return [{"method": "rrf", "norm": None, "weight": None, "rrf_k": int(rrf_k)},
            *({"method": "wsum", "norm": n, "weight": w, "rrf_k": None} for n in WSUM_NORMS for w in WEIGHTS)]


def fuse_setting(lexical, dense, setting: dict, *, depth: int = DEPTH) -> pd.DataFrame:
    """BM25's and the dense retriever's rankings of the same queries fused by one setting.

    Args:
        lexical, dense: run frames ``query_id, rank, product_id, score``, or both as one
            :class:`~graphrel.retrieval.serving.fusion.RanxRuns` (then ``dense`` is None).
        setting: ``{"method": "rrf", "rrf_k": k}`` or ``{"method": "wsum", "norm", "weight"}``
            (weight in [0, 1] of the dense run; BM25 gets 1 - weight).
        depth: products kept per query (>= 1).

    Returns:
        Run frame as :func:`~graphrel.retrieval.serving.fusion.fuse_runs`.

    Raises:
        GraphrelInputError: as :func:`~graphrel.retrieval.serving.fusion.fuse_runs`.
    """
    runs = lexical if isinstance(lexical, RanxRuns) else [lexical, dense]
    if setting["method"] == "rrf":
        return fuse_runs(runs, method="rrf", depth=depth, rrf_k=int(setting["rrf_k"]))
    weight = float(setting["weight"])
    return fuse_runs(runs, method="wsum", norm=setting["norm"], weights=[1.0 - weight, weight], depth=depth)


def choose_setting(lexical: pd.DataFrame, dense: pd.DataFrame, qrels: dict, *,
                   rrf_k: int = RRF_K) -> tuple[dict, list[dict]]:
    """The setting of :func:`settings_grid` with the best recall@100 on validation queries
    (ties: NDCG@10, then grid order).

    Args:
        lexical, dense: BM25's and the dense retriever's top :data:`DEPTH` of the validation
            queries (run frames, the same queries).
        qrels: validation query id -> relevant product ids (queries without one left out).
        rrf_k: RRF's constant of the grid's RRF point.

    Returns:
        ``(setting, points)``: the chosen setting and every grid point, its setting with
        ``recall@100`` and ``ndcg@10`` (in [0, 1]), in grid order.

    Raises:
        GraphrelInputError: as :func:`~graphrel.retrieval.serving.fusion.fuse_runs`.
    """
    from graphrel.retrieval.measures.evaluation import retrieval_metrics

    from graphrel.retrieval.serving.fusion_grid import FusionGrid

    # the grid's fusions in numpy (ranx's definitions; FusionGrid says why and what checks it)
    runs, grid, points = FusionGrid(lexical, dense), settings_grid(rrf_k), []
    for setting in grid:
        figures = retrieval_metrics(runs.fuse(setting, depth=CHOICE_DEPTH), qrels)
        points.append({**setting, **{k: figures[k] for k in CHOICE_KEYS}})
    best = max(range(len(points)), key=lambda i: (*(points[i][k] for k in CHOICE_KEYS), -i))
    return dict(grid[best]), points


def read_config(directory: str | Path) -> dict:
    """The fusion config ``hybrid.json`` of a hybrid directory, checked.

    Returns:
        ``{"format", "inputs": [lexical, dense], "method", "norm", "weight", "weights",
        "rrf_k", "depth", "chosen_by", "validation", "grid"}``.

    Raises:
        GraphrelInputError: a missing or unreadable file, another format, or a value out of range.
    """
    path = Path(directory) / CONFIG
    try:
        config = json.loads(path.read_text())
    except OSError:
        raise GraphrelInputError(f"no {CONFIG}: not a hybrid retriever directory", path=Path(directory),
                                 fix="rebuild it with the retrieval stage (retrieval.hybrid: true)") from None
    except ValueError:
        raise GraphrelInputError(f"{CONFIG} is not valid JSON", path=path, fix="rebuild the hybrid") from None
    problem = None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        problem = f"unknown hybrid format {config.get('format') if isinstance(config, dict) else None!r}"
    elif not (isinstance(config.get("inputs"), list) and len(config["inputs"]) == 2
              and all(isinstance(n, str) and n and "/" not in n for n in config["inputs"])):
        problem = f"inputs must be two retriever directory names, got {config.get('inputs')!r}"
    elif config.get("method") == "wsum":
        weight = config.get("weight")
        if config.get("norm") not in WSUM_NORMS or not isinstance(weight, (int, float)) or not 0 <= weight <= 1:
            problem = (f"wsum needs a norm of {WSUM_NORMS} and a weight in [0, 1], "
                       f"got {config.get('norm')!r}, {weight!r}")
    elif config.get("method") != "rrf" or not isinstance(config.get("rrf_k"), int) or config["rrf_k"] < 1:
        problem = f"method must be rrf (with rrf_k >= 1) or wsum, got {config.get('method')!r}"
    if problem is None and (not isinstance(config.get("depth"), int) or config["depth"] < 1):
        problem = f"depth must be a whole number >= 1, got {config.get('depth')!r}"
    if problem:
        raise GraphrelInputError(problem, path=path, fix=f"rebuild the hybrid (expected {FORMAT})")
    return config


def save_hybrid(directory: str | Path, *, inputs: list[Retriever], input_names: list[str], setting: dict,
                grid: list[dict], validation: dict, build_key: str | None = None) -> dict:
    """Write a hybrid retriever directory (``manifest.json`` + ``hybrid.json``) atomically.

    Args:
        directory: the hybrid's directory; ``input_names`` are directories beside it.
        inputs: the loaded BM25 and dense retrievers (parameters, catalogue, build keys).
        input_names: their directory names, BM25 first.
        setting: the chosen ``{"method", "norm", "weight", "rrf_k"}``.
        grid: every point tried (:func:`choose_setting`), [] when none was.
        validation: what the choice was made on (``{"split", "queries", "figures", "inputs"}``).
        build_key: recorded in the manifest (the stage reuses a directory with its key).

    Returns:
        The fusion config written.
    """
    weight = setting.get("weight")
    config = {"format": FORMAT, "inputs": list(input_names), "method": setting["method"], "norm": setting.get("norm"),
              "weight": weight, "weights": None if weight is None else [1.0 - weight, weight],
              "rrf_k": setting.get("rrf_k"), "depth": DEPTH,
              "chosen_by": "recall@100 on the validation queries, ties by NDCG@10, then grid order",
              "validation": validation, "grid": grid}
    manifest = {"format": RETRIEVER_FORMAT, "kind": "hybrid", "name": NAME, "teacher": None,
                "parameters": int(sum(r.manifest.get("parameters", 0) for r in inputs)),
                "products": len(inputs[0].catalogue), "inputs": list(input_names),
                "input_build_keys": {n: r.manifest.get("build_key") for n, r in zip(input_names, inputs)},
                "build_key": build_key}

    def fill(tmp: Path) -> None:
        (tmp / CONFIG).write_text(json.dumps(config, indent=2))
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))

    _write_directory(Path(directory), fill)
    return config


class HybridRetriever(Retriever):
    """A saved hybrid: its inputs' top ``max(depth, k)`` fused by the saved setting, top k kept.

    The interface of :class:`~graphrel.retrieval.serving.retriever.Retriever` (``search``,
    ``search_rows``, ``time_search``, ``catalogue``, ``name``, ``manifest``); load with
    :func:`load_hybrid` or ``Retriever.load``.

    Attributes:
        config: the fusion config (:func:`read_config`).
        inputs: the BM25 and dense retrievers; input_directories: their directories.
    """

    def __init__(self, manifest: dict, config: dict, inputs: list, input_directories: list) -> None:
        super().__init__(manifest, inputs[0].catalogue)
        self.config, self.inputs = config, list(inputs)
        self.input_directories = [Path(d) for d in input_directories]

    def prepare_queries(self, queries, *, batch_size: int = 256) -> None:
        """Both inputs' query side (BM25 tokenisation and the dense query encoder)."""
        for retriever in self.inputs:
            retriever.prepare_queries(queries, batch_size=batch_size)

    def search(self, queries, k: int, *, query_ids=None, batch_size: int = 256) -> pd.DataFrame:
        """The fused top ``k`` of each query: ``query_id, rank, product_id, score`` (fused
        score, higher is better), queries in input order, ranks 1..min(k, N).

        Raises:
            ValueError: k < 1.
        """
        k = checked_depth(k, len(self.catalogue))
        queries = [str(q) for q in queries]
        ids = np.arange(len(queries)) if query_ids is None else np.asarray(query_ids, dtype=object)
        if not queries:
            return pd.DataFrame({"query_id": ids, "rank": np.empty(0, np.int64), "product_id": np.empty(0, object),
                                 "score": np.empty(0)})
        depth, positions = min(max(k, self.config["depth"]), len(self.catalogue)), np.arange(len(queries))
        runs = [r.search(queries, depth, query_ids=positions, batch_size=batch_size) for r in self.inputs]
        fused = fuse_setting(runs[0], runs[1], self.config, depth=k)
        fused["_q"] = fused["query_id"].astype(np.int64)  # the fusion's string ids: back to positions
        fused = fused.sort_values(["_q", "rank"], kind="stable")
        fused["query_id"] = ids[fused["_q"].to_numpy()]
        return fused.drop(columns="_q").reset_index(drop=True)

    def search_rows(self, queries, k: int, *, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """Catalogue rows (Q, min(k, N)) int64 and fused scores (Q, min(k, N)) float64 of :meth:`search`."""
        run = self.search(queries, k, batch_size=batch_size)
        width = min(k, len(self.catalogue))
        if len(run) != len(queries) * width:  # each input returns min(depth, N) >= width products
            raise ValueError(f"the hybrid returned {len(run)} rows for {len(queries)} queries x {width}")
        self._rows = self._rows or {p: i for i, p in enumerate(self.catalogue.product_ids)}
        rows = np.fromiter((self._rows[p] for p in run["product_id"]), dtype=np.int64, count=len(run))
        return rows.reshape(len(queries), width), run["score"].to_numpy(np.float64).reshape(len(queries), width)


def load_hybrid(directory: str | Path, *, threads: int | None = None, index="exact") -> HybridRetriever:
    """Load a hybrid directory of :func:`save_hybrid` and its two input directories beside it.

    Args:
        directory: the hybrid's directory.
        threads: faiss threads of the dense input; index: its index (as ``Retriever.load``).

    Raises:
        GraphrelInputError: a missing or bad ``manifest.json`` / ``hybrid.json``, an input that
            is missing or itself a hybrid, or inputs over different catalogues.
    """
    directory = Path(directory)
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError):
        raise GraphrelInputError("no readable manifest.json: not a retriever directory", path=directory,
                                 fix="pass RUN/retrieval/retrievers/hybrid") from None
    config = read_config(directory)
    paths = [directory.parent / name for name in config["inputs"]]
    for path in paths:
        try:
            kind = json.loads((path / MANIFEST).read_text()).get("kind")
        except (OSError, ValueError):
            raise GraphrelInputError("the hybrid's input retriever is missing", path=path,
                                     fix="keep the hybrid directory beside its inputs "
                                         "(RUN/retrieval/retrievers)") from None
        if kind == "hybrid":
            raise GraphrelInputError("a hybrid's input is a hybrid", path=path, fix="rebuild the hybrid")
    inputs = [Retriever.load(path, threads=threads, index=index) for path in paths]
    if not np.array_equal(inputs[0].catalogue.product_ids, inputs[1].catalogue.product_ids):
        raise GraphrelInputError(f"the hybrid's inputs {config['inputs']} have different catalogues", path=directory,
                                 fix="rebuild the hybrid with the retrieval stage")
    for name, retriever in zip(config["inputs"], inputs):
        recorded = manifest.get("input_build_keys", {}).get(name)
        if recorded is not None and retriever.manifest.get("build_key") != recorded:
            log.warning("hybrid: input %s was rebuilt since the fusion was chosen; rerun the retrieval stage", name)
    return HybridRetriever(manifest, config, inputs, paths)
