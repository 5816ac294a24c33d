"""A run directory opened for inspection: graph, pairs and k-order student, each loaded once."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
from torch_geometric.data import HeteroData

from graphrel.data.graph import EDGE
from graphrel.errors import GraphrelInputError
from graphrel.explore.index import GraphIndex
from graphrel.run import load_run_graph, load_run_pairs

__all__ = ["STUDENT_DIR", "InspectedRun", "open_graph"]

#: The student directory of a run that :func:`graphrel.explore.explain.metapaths` explains.
STUDENT_DIR = "student_korder"


class InspectedRun:
    """A run directory opened for inspection; graph, pairs and student load lazily, once.

    Pass one to :func:`~graphrel.explore.egograph.neighborhood` and
    :func:`~graphrel.explore.explain.metapaths` to reuse the loaded files across calls (a
    path works too, but loads them every call).

    Raises:
        GraphrelInputError: if ``run_dir`` is not an existing directory.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        if not self.run_dir.is_dir():
            raise GraphrelInputError("run directory not found", path=self.run_dir,
                                     fix="pass the --run-dir of a `graphrel pipeline` run")

    @cached_property
    def graph(self) -> HeteroData:
        return load_run_graph(self.run_dir)

    @cached_property
    def pairs(self) -> pd.DataFrame | None:
        """Every pair with split, label and teacher score; None if the run has no pairs file."""
        try:
            return load_run_pairs(self.run_dir, test_labels=True)  # shown with --show-test-labels
        except GraphrelInputError:
            return None

    @cached_property
    def index(self) -> GraphIndex:
        labels = None
        if self.pairs is not None:  # the graph keeps train labels only; the pairs file has all
            graph = self.graph
            store = graph[EDGE]
            q, p = store.edge_index.numpy()
            keys = pd.MultiIndex.from_arrays([np.asarray(graph["query"].node_id, dtype=object)[q],
                                              np.asarray(graph["product"].node_id, dtype=object)[p]])
            table = self.pairs.set_index(["query_id", "product_id"])["label"]
            labels = table.reindex(keys).to_numpy(dtype=np.float64)
        return GraphIndex(self.graph, labels)

    @property
    def has_student(self) -> bool:
        return (self.run_dir / STUDENT_DIR / "student.json").is_file()

    @cached_property
    def student(self):
        """The run's k-order :class:`~graphrel.scoring.korder_scorer.StudentScorer`.

        Raises:
            GraphrelInputError: if the run has no finished k-order student.
        """
        from graphrel.scoring.korder_scorer import StudentScorer

        if not self.has_student:
            raise GraphrelInputError("this run has no k-order student yet", path=self.run_dir / STUDENT_DIR,
                                     fix="let `graphrel pipeline` finish the student_korder stage")
        try:
            return StudentScorer.load(self.run_dir / STUDENT_DIR)
        except GraphrelInputError as error:  # e.g. a checkpoint of an older model version
            raise GraphrelInputError(str(error.args[0]).split(" (fix:")[0],
                                     fix=f"{error.fix or 're-run the student stage'}; or inspect without student "
                                         "scores (--no-student, neighborhood(..., student=False))") from None


def open_graph(run_or_graph) -> tuple[GraphIndex, InspectedRun | None, str]:
    """(index, run or None, source description) of a run directory, InspectedRun or HeteroData."""
    if isinstance(run_or_graph, InspectedRun):
        return run_or_graph.index, run_or_graph, str(run_or_graph.run_dir)
    if isinstance(run_or_graph, HeteroData):
        return GraphIndex(run_or_graph), None, "graph"
    if isinstance(run_or_graph, (str, Path)):
        run = InspectedRun(run_or_graph)
        return run.index, run, str(run.run_dir)
    raise TypeError(f"expected a run directory, InspectedRun or HeteroData, got {type(run_or_graph).__name__}")
