"""Neighbourhood inspection: the graph around a query or product, and why the student scored a pair.

Two questions scientists ask of a run:

- "What does the graph know around ``angle bracket``?" -> :func:`neighborhood`, the ego
  graph (a :class:`networkx.Graph`) up to ``hops`` hops in the query-product bipartite
  graph, with teacher scores, student scores, human labels and split membership on edges;
- "Why did the student rate this pair low?" -> :func:`metapaths`, the Q-P, P-Q, Q-P-Q and
  P-Q-P neighbours the k-order student read for the pair, with their attention weights and
  their contribution (the change in score when that one neighbour is removed).

``graphrel inspect`` (:func:`inspect_command`) prints either as a table, or exports the ego
graph as node-link JSON, GraphML or a PNG drawing.

Node names in the ego graph are ``"query:<query_id>"`` and ``"product:<product_id>"``.

Node attributes:
    ``type`` ("query" / "product"), ``node_id`` (the query or product id; named so because
    ``id`` is the node key of networkx's node-link JSON), ``text``, ``degree`` (edges in the
    full graph, every split) and ``hop`` (distance from the centre).

Edge attributes:
    ``teacher_score`` (float in [0, 1]), ``student_score`` (float in [0, 1]; only when the run
    has a k-order student), ``label`` (human label normalised to [0, 1]; only on edges whose
    split is in ``label_splits``, omitted elsewhere) and ``split``
    (train / val / test_context / transfer, always present; the evaluated ``test`` pairs
    are never edges of a run's graph).

Labels policy: by default labels of ``train`` and ``val`` pairs are shown (the student was
trained on the former and selected on the latter) and test queries' labels are hidden, so that
looking at the graph while debugging a model does not tune it against the held-out
evaluation; the ``split`` attribute still shows test membership. Pass
``label_splits=("train", "val", "test", "test_context")`` (``--show-test-labels``) for deliberate error
analysis. Transfer pairs have no human label.
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import re
import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import torch
from torch_geometric.data import HeteroData

from graphrel.data.graph import EDGE, SPLIT_CODES
from graphrel.errors import GraphrelInputError
from graphrel.run import atomic_path, load_run_graph, load_run_pairs

#: Largest ``hops`` accepted: beyond 4 hops an ego graph is most of the catalogue.
MAX_HOPS = 4
#: Splits whose human labels are shown by default (see module docstring).
DEFAULT_LABEL_SPLITS = ("train", "val")
#: The student directory of a run that :func:`metapaths` explains.
STUDENT_DIR = "student_korder"
FORMATS = ("table", "json", "graphml", "png")

SPLIT_NAMES = {code: name for name, code in SPLIT_CODES.items()}
QUERY_COLOUR = "#1f77b4"
PRODUCT_COLOUR = "#ff7f0e"
SPLIT_STYLE = {  # edge colour and line style of each split in drawings
    "train": ("#3a3a3a", "solid"),
    "val": ("#2ca02c", "solid"),
    "test": ("#9467bd", "solid"),
    "test_context": ("#9467bd", "dotted"),
    "transfer": ("#a8a8a8", "dashed"),
}


def node_name(kind: str, node_id: str) -> str:
    """Name of a node in the ego graph: ``"query:<id>"`` or ``"product:<id>"``."""
    return f"{kind}:{node_id}"


def _short(text: str, width: int, ellipsis: str = "...") -> str:
    """``text`` on one line, cut to ``width`` characters."""
    text = re.sub(r"\s+", " ", str(text)).strip()
    return text if len(text) <= width else text[: max(1, width - len(ellipsis))].rstrip() + ellipsis


def _float_or_none(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


# -- the graph, as arrays ------------------------------------------------------------------
class _GraphIndex:
    """Arrays and look-ups over a query-product HeteroData (built once per graph)."""

    def __init__(self, graph: HeteroData, edge_labels: np.ndarray | None = None) -> None:
        if "query" not in graph.node_types or EDGE not in graph.edge_types:
            raise GraphrelInputError("not a graphrel query-product graph (no query nodes or shown edges)",
                                     fix="pass a graph built by graphrel.data.graph.build_graph or a run directory")
        self.query_ids = [str(x) for x in graph["query"].node_id]
        self.query_texts = [str(x) for x in graph["query"].text]
        self.product_ids = [str(x) for x in graph["product"].node_id]
        self.product_texts = [str(x) for x in graph["product"].text]
        store = graph[EDGE]
        self.src, self.dst = (x.astype(np.int64) for x in store.edge_index.numpy())
        self.teacher = store.teacher_score.numpy().astype(np.float64)
        self.split = store.split.numpy().astype(np.int64)
        self.label = (store.label.numpy().astype(np.float64) if edge_labels is None
                      else np.asarray(edge_labels, dtype=np.float64))
        self.query_degree = np.bincount(self.src, minlength=len(self.query_ids))
        self.product_degree = np.bincount(self.dst, minlength=len(self.product_ids))
        # Edges of each node, best teacher score first (CSR).
        self._by_query = self._csr(self.src, len(self.query_ids))
        self._by_product = self._csr(self.dst, len(self.product_ids))
        self.query_position = {q: i for i, q in enumerate(self.query_ids)}
        self.product_position = {p: i for i, p in enumerate(self.product_ids)}
        self._query_by_text: dict[str, list[int]] = {}
        for i, text in enumerate(self.query_texts):
            self._query_by_text.setdefault(text, []).append(i)

    @cached_property
    def edge_score(self) -> dict[tuple[int, int], float]:
        """(query index, product index) -> teacher score of that edge."""
        return {(int(q), int(p)): float(s) for q, p, s in zip(self.src, self.dst, self.teacher)}

    def _csr(self, node: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
        order = np.lexsort((-self.teacher, node))
        return order, np.searchsorted(node[order], np.arange(count + 1))

    def edges_of(self, kind: str, index: int) -> np.ndarray:
        """Edge numbers of a node, highest teacher score first."""
        order, starts = self._by_query if kind == "query" else self._by_product
        return order[starts[index]:starts[index + 1]]

    def find_query(self, query: str) -> int | None:
        """Node index of a query given by id or text; None if unknown."""
        query = str(query)
        if query in self.query_position:
            return self.query_position[query]
        found = self._query_by_text.get(query)
        if found is None:
            normal = " ".join(query.split()).casefold()
            found = [i for i, t in enumerate(self.query_texts) if " ".join(t.split()).casefold() == normal] or None
        if found is None:
            return None
        if len(found) > 1:
            ids = ", ".join(repr(self.query_ids[i]) for i in found[:5])
            raise GraphrelInputError(f"query text {query!r} belongs to several query ids ({ids})",
                                     fix="pass one query id instead of the text")
        return found[0]

    def find_product(self, product_id: str) -> int | None:
        return self.product_position.get(str(product_id).strip())

    def query_suggestions(self, query: str, n: int = 5) -> list[str]:
        pool = sorted(set(self.query_texts) | set(self.query_ids))
        return difflib.get_close_matches(str(query), pool, n=n, cutoff=0.6)

    def product_suggestions(self, product_id: str, n: int = 5) -> tuple[list[str], list[tuple[str, str]]]:
        """Closest product ids, and (id, text) of products whose text is closest."""
        product_id = str(product_id)
        ids = difflib.get_close_matches(product_id, self.product_ids, n=n, cutoff=0.6)
        by_text = {}
        for i, text in enumerate(self.product_texts):
            by_text.setdefault(text, i)
        texts = difflib.get_close_matches(product_id, list(by_text), n=3, cutoff=0.5)
        if not texts:  # a few words of a long title: match against title prefixes too
            prefixes = {}
            for text, i in by_text.items():
                prefixes.setdefault(text[: len(product_id) + 10], i)
            found = difflib.get_close_matches(product_id, list(prefixes), n=3, cutoff=0.6)
            return ids, [(self.product_ids[prefixes[t]], self.product_texts[prefixes[t]]) for t in found]
        return ids, [(self.product_ids[by_text[t]], t) for t in texts]


def _unknown_query(index: _GraphIndex, query: str, where) -> GraphrelInputError:
    close = index.query_suggestions(query)
    hint = "closest: " + ", ".join(repr(c) for c in close) if close else "no close match"
    return GraphrelInputError(f"unknown query {query!r}; {hint}", path=where,
                              fix="pass a query of the run (exact text or query id), e.g. one of the closest")


def _unknown_product(index: _GraphIndex, product_id: str, where, extra_fix: str = "") -> GraphrelInputError:
    ids, texts = index.product_suggestions(product_id)
    hints = []
    if ids:
        hints.append("closest ids: " + ", ".join(repr(i) for i in ids))
    if texts:
        hints.append("products whose text is close: " + ", ".join(f"{i!r} ({_short(t, 40)})" for i, t in texts))
    hint = "; ".join(hints) if hints else "no close match"
    return GraphrelInputError(f"unknown product id {product_id!r}; {hint}", path=where,
                              fix="pass a product id of the run, e.g. one of the closest" + extra_fix)


# -- a run -----------------------------------------------------------------------------------
class InspectedRun:
    """A run directory opened for inspection; graph, pairs and student load lazily, once.

    Pass one to :func:`neighborhood` and :func:`metapaths` to reuse the loaded files across
    calls (a path works too, but loads them every call).

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
            return load_run_pairs(self.run_dir)
        except GraphrelInputError:
            return None

    @cached_property
    def index(self) -> _GraphIndex:
        labels = None
        if self.pairs is not None:  # the graph keeps train labels only; the pairs file has all
            graph = self.graph
            store = graph[EDGE]
            q, p = store.edge_index.numpy()
            keys = pd.MultiIndex.from_arrays([np.asarray(graph["query"].node_id, dtype=object)[q],
                                              np.asarray(graph["product"].node_id, dtype=object)[p]])
            table = self.pairs.set_index(["query_id", "product_id"])["label"]
            labels = table.reindex(keys).to_numpy(dtype=np.float64)
        return _GraphIndex(self.graph, labels)

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


def _open(run_or_graph) -> tuple[_GraphIndex, InspectedRun | None, str]:
    if isinstance(run_or_graph, InspectedRun):
        return run_or_graph.index, run_or_graph, str(run_or_graph.run_dir)
    if isinstance(run_or_graph, HeteroData):
        return _GraphIndex(run_or_graph), None, "graph"
    if isinstance(run_or_graph, (str, Path)):
        run = InspectedRun(run_or_graph)
        return run.index, run, str(run.run_dir)
    raise TypeError(f"expected a run directory, InspectedRun or HeteroData, got {type(run_or_graph).__name__}")


# -- 1. the ego graph -------------------------------------------------------------------------
def _check_hops(hops, max_per_hop) -> None:
    if isinstance(hops, bool) or not isinstance(hops, (int, np.integer)) or not 0 <= hops <= MAX_HOPS:
        raise GraphrelInputError(f"hops must be an integer from 0 to {MAX_HOPS}, got {hops!r}",
                                 fix="use --hops 1 or 2 (2 = the query's products and their other queries); "
                                     "use --max-per-hop to keep a wide neighbourhood readable")
    if max_per_hop is not None and (isinstance(max_per_hop, bool) or not isinstance(max_per_hop, (int, np.integer))
                                    or max_per_hop < 1):
        raise GraphrelInputError(f"max-per-hop must be a positive integer, got {max_per_hop!r}",
                                 fix="use e.g. --max-per-hop 10, or leave it out to keep every neighbour")


def neighborhood(run_or_graph, query: str | None = None, product_id: str | None = None, hops: int = 2,
                 max_per_hop: int | None = None, *, label_splits: tuple[str, ...] = DEFAULT_LABEL_SPLITS,
                 student: bool = True) -> nx.Graph:
    """Ego graph around a query or a product, up to ``hops`` hops in the bipartite graph.

    Hop 1 of a query is its products (every pair of the graph: labelled or transfer), hop 2
    those products' other queries, and so on. The result holds every graph edge between its
    nodes (the induced subgraph), so a hop-2 query shared by two products is linked to both.

    Args:
        run_or_graph: a run directory (path or :class:`InspectedRun`), or a query-product
            ``HeteroData`` (:func:`graphrel.data.graph.build_graph`).
        query: centre query, by query id or exact text (Home Depot: the id is the text).
        product_id: centre product id (give exactly one of ``query`` / ``product_id``).
        hops: 0 to :data:`MAX_HOPS`.
        max_per_hop: keep at most this many new neighbours per expanded node, highest teacher
            score first; None keeps all.
        label_splits: splits whose human labels are put on edges (module docstring).
        student: score every edge with the run's k-order student, if it has one.

    Returns:
        ``networkx.Graph`` with node and edge attributes as in the module docstring and graph
        attributes ``centre``, ``hops``, ``max_per_hop`` (only when set), ``label_splits``
        (comma-separated), ``source`` (run directory or "graph") and ``student`` (only when
        student scores are present).

    Raises:
        GraphrelInputError: unknown query or product id (with the closest known ones), both
            or neither of ``query`` / ``product_id``, hops outside 0..MAX_HOPS, bad
            ``max_per_hop``, missing run directory or graph.
    """
    _check_hops(hops, max_per_hop)
    if (query is None) == (product_id is None):
        raise GraphrelInputError("give exactly one centre: a query or a product id",
                                 fix="pass --query TEXT or --product-id ID")
    unknown_split = set(label_splits) - set(SPLIT_CODES)
    if unknown_split:
        raise GraphrelInputError(f"unknown split(s) {sorted(unknown_split)} in label_splits",
                                 fix=f"choose from {list(SPLIT_CODES)}")
    index, run, source = _open(run_or_graph)
    where = run.run_dir if run is not None else None
    if query is not None:
        found = index.find_query(query)
        if found is None:
            raise _unknown_query(index, query, where)
        centre = ("query", found)
    else:
        found = index.find_product(product_id)
        if found is None:
            raise _unknown_product(index, product_id, where)
        centre = ("product", found)

    # Breadth-first expansion; a node keeps the hop at which it was first reached.
    hop_of = {centre: 0}
    frontier = [centre]
    for hop in range(1, hops + 1):
        reached = []
        for kind, node in frontier:
            other = "product" if kind == "query" else "query"
            ends = index.dst if kind == "query" else index.src
            taken = 0
            for edge in index.edges_of(kind, node):
                neighbour = (other, int(ends[edge]))
                if neighbour in hop_of:
                    continue
                if max_per_hop is not None and taken >= max_per_hop:
                    break
                hop_of[neighbour] = hop
                reached.append(neighbour)
                taken += 1
        frontier = reached

    queries = np.array(sorted(n for k, n in hop_of if k == "query"), dtype=np.int64)
    products = np.array(sorted(n for k, n in hop_of if k == "product"), dtype=np.int64)
    edges = np.flatnonzero(np.isin(index.src, queries) & np.isin(index.dst, products))
    edges = edges[np.lexsort((-index.teacher[edges],))]

    ego = nx.Graph()
    kind, node = centre
    centre_id = index.query_ids[node] if kind == "query" else index.product_ids[node]
    ego.graph.update(centre=node_name(kind, centre_id), hops=int(hops), label_splits=",".join(label_splits),
                     source=source)
    if max_per_hop is not None:
        ego.graph["max_per_hop"] = int(max_per_hop)
    for (kind, node), hop in sorted(hop_of.items(), key=lambda item: (item[1], item[0])):
        if kind == "query":
            node_id, text, degree = index.query_ids[node], index.query_texts[node], index.query_degree[node]
        else:
            node_id, text, degree = index.product_ids[node], index.product_texts[node], index.product_degree[node]
        ego.add_node(node_name(kind, node_id), type=kind, node_id=node_id, text=text, degree=int(degree), hop=int(hop))

    student_scores = None
    if student and run is not None and run.has_student and len(edges):
        scorer = run.student
        q, p = index.src[edges], index.dst[edges]
        student_scores = scorer.score([index.query_ids[i] for i in q], [index.query_texts[i] for i in q],
                                      [index.product_ids[i] for i in p], [index.product_texts[i] for i in p])
        ego.graph["student"] = STUDENT_DIR
    show = {SPLIT_CODES[s] for s in label_splits}
    for k, edge in enumerate(edges):
        q, p = int(index.src[edge]), int(index.dst[edge])
        attrs = {"teacher_score": float(index.teacher[edge]), "split": SPLIT_NAMES[int(index.split[edge])]}
        if student_scores is not None:
            attrs["student_score"] = float(student_scores[k])
        label = index.label[edge]
        if int(index.split[edge]) in show and not math.isnan(label):
            attrs["label"] = float(label)
        ego.add_edge(node_name("query", index.query_ids[q]), node_name("product", index.product_ids[p]), **attrs)
    return ego


# -- 2. what the student read for one pair ---------------------------------------------------
@dataclass
class PairExplanation:
    """What the k-order student read for one pair (:func:`metapaths`).

    Attributes:
        query_id, query, product_id, product_text: the pair.
        score: the student's score of the pair, in [0, 1].
        query_in_graph, product_in_graph: whether each end is a graph node (an unseen end
            has no neighbours on the metapaths that start from it).
        teacher_score, label, split: of the pair itself when it is a pair of the run
            (``label`` only where ``label_splits`` allows), else None.
        metapath_weights: metapath -> metapath-level attention weight (sums to 1).
        neighbours: one row per neighbour the student read, columns ``metapath``, ``rank``
            (1 = highest attention within the metapath), ``neighbour_type``,
            ``neighbour_id``, ``neighbour_text``, ``via`` (two-hop metapaths: the id of the
            middle node, a Q-P or P-Q neighbour of the pair; else None), ``teacher_score`` (of the metapath
            instance; for two-hop paths the product of its two edges' scores),
            ``attention`` (sums to 1 per metapath), ``metapath_weight``,
            ``score_without`` (the student's score with only this neighbour removed) and
            ``contribution`` = ``score - score_without`` (positive: this neighbour raised
            the score).
    """

    query_id: str
    query: str
    product_id: str
    product_text: str
    score: float
    query_in_graph: bool
    product_in_graph: bool
    teacher_score: float | None = None
    label: float | None = None
    split: str | None = None
    metapath_weights: dict[str, float] = field(default_factory=dict)
    neighbours: pd.DataFrame = field(default_factory=pd.DataFrame)

    def to_dict(self) -> dict:
        """JSON-ready dict (NaN as None)."""
        out = {k: getattr(self, k) for k in ("query_id", "query", "product_id", "product_text", "score",
                                             "query_in_graph", "product_in_graph", "teacher_score", "label",
                                             "split", "metapath_weights")}
        rows = self.neighbours.astype(object).where(self.neighbours.notna(), None)
        out["neighbours"] = rows.to_dict(orient="records")
        return out


def _via(index: _GraphIndex, batch: dict, name: str, node: int, instance: float) -> int | None:
    """Middle node of a two-hop metapath instance (None for one-hop metapaths).

    Q-P-Q: the product p' among the pair's Q-P neighbours with edges q-p' and p'-q'' whose
    score product is the instance score; P-Q-P likewise through the P-Q neighbours.
    """
    if name not in ("Q-P-Q", "P-Q-P"):
        return None
    first = "Q-P" if name == "Q-P-Q" else "P-Q"
    best, best_error = None, math.inf
    for middle, score in zip(batch[f"{first}/ids"][0].tolist(), batch[f"{first}/scores"][0].tolist()):
        if middle < 0:
            continue
        key = (node, middle) if name == "Q-P-Q" else (middle, node)
        if key in index.edge_score:
            error = abs(score * index.edge_score[key] - instance)
            if error < best_error:
                best, best_error = middle, error
    return best


def metapaths(run, query: str, product_id: str, *, product_text: str | None = None,
              label_splits: tuple[str, ...] = DEFAULT_LABEL_SPLITS) -> PairExplanation:
    """The metapath neighbours the run's k-order student used for a pair, with attention and contribution.

    The pair is featurised exactly as ``graphrel score`` does (its own edge never reaches its
    features). Each neighbour's contribution comes from re-scoring the pair with only that
    neighbour removed (its id set to -1 and its score to NaN), all in one batch.

    Args:
        run: a run directory (path or :class:`InspectedRun`) with ``student_korder/``.
        query: query id or text. A query outside the graph is scored as unseen (id = text,
            the Home Depot convention), with no Q-P / Q-P-Q neighbours.
        product_id: product id. A product outside the graph needs ``product_text``.
        product_text: text of a product that is not in the graph (ignored for graph products).
        label_splits: splits whose label of the pair is reported.

    Returns:
        :class:`PairExplanation`.

    Raises:
        GraphrelInputError: missing run directory or student; unknown product without
            ``product_text`` (with the closest known ids).
    """
    if not isinstance(run, InspectedRun):
        run = InspectedRun(run)
    index = run.index
    scorer = run.student
    model, featurizer = scorer.model, scorer.featurizer
    if not str(query).strip():
        raise GraphrelInputError("empty query", fix="pass the query text")
    q = index.find_query(query)
    query_id, query_text = (index.query_ids[q], index.query_texts[q]) if q is not None else (str(query), str(query))
    p = index.find_product(product_id)
    if p is not None:
        product_id, product_text = index.product_ids[p], index.product_texts[p]
    elif product_text is None:
        raise _unknown_product(index, product_id, run.run_dir,
                               extra_fix=", or give the text of a product outside the graph (--pair-product-text)")
    else:
        product_id = str(product_id)

    batch = featurizer.from_texts([query_id], [query_text], [product_id], [product_text])
    names = list(model.metapaths)
    used = []  # (metapath, slot) of every real neighbour
    for name in names:
        ids = batch[f"{name}/ids"][0]
        used += [(name, int(j)) for j in torch.nonzero(ids >= 0).flatten()]
    # Row 0: the pair as it is; row r: the pair without neighbour used[r - 1].
    ablated = {key: value.repeat(len(used) + 1, *([1] * (value.dim() - 1))) for key, value in batch.items()}
    for row, (name, slot) in enumerate(used, start=1):
        ablated[f"{name}/ids"][row, slot] = -1
        ablated[f"{name}/scores"][row, slot] = float("nan")
    model.eval()
    with torch.inference_mode():
        logits, attention = model(ablated, return_attention=True)
    scores = torch.sigmoid(logits).double().numpy()
    weights = ({name: float(attention["metapaths"][0, m]) for m, name in enumerate(names)} if names else {})

    rows = []
    for row, (name, slot) in enumerate(used, start=1):
        kind = "product" if name in ("Q-P", "P-Q-P") else "query"
        node = int(batch[f"{name}/ids"][0, slot])
        instance = float(batch[f"{name}/scores"][0, slot])
        via = _via(index, batch, name, node, instance)
        rows.append({
            "metapath": name,
            "neighbour_type": kind,
            "neighbour_id": index.query_ids[node] if kind == "query" else index.product_ids[node],
            "neighbour_text": index.query_texts[node] if kind == "query" else index.product_texts[node],
            "via": None if via is None else (index.product_ids[via] if name == "Q-P-Q" else index.query_ids[via]),
            "teacher_score": instance,
            "attention": float(attention[name][0, slot]),
            "metapath_weight": weights[name],
            "score_without": float(scores[row]),
            "contribution": float(scores[0] - scores[row]),
        })
    columns = ["metapath", "rank", "neighbour_type", "neighbour_id", "neighbour_text", "via", "teacher_score",
               "attention", "metapath_weight", "score_without", "contribution"]
    table = pd.DataFrame(rows, columns=[c for c in columns if c != "rank"])
    if len(table):
        table["order"] = table["metapath"].map({n: i for i, n in enumerate(names)})
        table = table.sort_values(["order", "attention"], ascending=[True, False], kind="stable")
        table["rank"] = table.groupby("metapath").cumcount() + 1
        table = table.drop(columns="order").reset_index(drop=True)
    table = table.reindex(columns=columns)

    explanation = PairExplanation(query_id=query_id, query=query_text, product_id=product_id,
                                  product_text=product_text, score=float(scores[0]), query_in_graph=q is not None,
                                  product_in_graph=p is not None, metapath_weights=weights, neighbours=table)
    if run.pairs is not None:
        own = run.pairs[(run.pairs["query_id"] == query_id) & (run.pairs["product_id"] == product_id)]
        if len(own):
            own = own.iloc[0]
            explanation.teacher_score = _float_or_none(own.get("teacher_score"))
            explanation.split = str(own["split"])
            if explanation.split in label_splits:
                explanation.label = _float_or_none(own.get("label"))
    return explanation


# -- 3. output: table, json, graphml, png ------------------------------------------------------
def _fmt(value, spec: str = ".3f") -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def _node_line(ego: nx.Graph, name: str, width: int = 70) -> str:
    data = ego.nodes[name]
    if data["type"] == "query":
        shown = repr(_short(data["text"], width))
        if data["node_id"] != data["text"]:
            shown += f" [id {data['node_id']}]"
        return f"query {shown} (degree {data['degree']})"
    return f"product {data['node_id']}  {_short(data['text'], width)} (degree {data['degree']})"


def format_table(ego: nx.Graph) -> str:
    """Terminal summary of an ego graph: centre, then each hop as a tree below its parents.

    A node reached from several nodes of the previous hop is listed under each of them (with
    that edge's scores); its own neighbours are listed once, at its first listing.
    """
    centre = ego.graph["centre"]
    counts = {}
    for _, data in ego.nodes(data=True):
        key = (data["hop"], data["type"])
        counts[key] = counts.get(key, 0) + 1
    plural = {"query": "queries", "product": "products"}
    by_hop = ", ".join(f"hop {h}: {n} {t if n == 1 else plural[t]}" for (h, t), n in sorted(counts.items()) if h)
    cap = f", at most {ego.graph['max_per_hop']} new per node" if "max_per_hop" in ego.graph else ""
    lines = [f"centre: {_node_line(ego, centre)}",
             f"ego graph: {ego.graph['hops']} hop(s){cap} -- {ego.number_of_nodes()} nodes, "
             f"{ego.number_of_edges()} edges ({by_hop or 'no neighbours'})",
             f"labels shown for {ego.graph['label_splits'].replace(',', ', ') or 'no'} pairs"
             + ("" if "test" in ego.graph["label_splits"].split(",") else " (test labels hidden; --show-test-labels)")
             + ("" if "student" in ego.graph else "; no student scores (no k-order student)"),
             "",
             f"{'teacher':>7}  {'student':>7}  {'label':>5}  {'split':<8}  node",
             f"{'-' * 7}  {'-' * 7}  {'-' * 5}  {'-' * 8}  {'-' * 40}"]
    expanded = {centre}

    def children(name):
        hop = ego.nodes[name]["hop"]
        found = [n for n in ego.neighbors(name) if ego.nodes[n]["hop"] == hop + 1]
        return sorted(found, key=lambda n: (-ego.edges[name, n]["teacher_score"], n))

    def walk(name, prefix):
        kids = children(name)
        for i, kid in enumerate(kids):
            last = i == len(kids) - 1
            edge = ego.edges[name, kid]
            again = kid in expanded
            tail = "  (listed above)" if again and children(kid) else ""
            lines.append(f"{_fmt(edge['teacher_score']):>7}  {_fmt(edge.get('student_score')):>7}  "
                         f"{_fmt(edge.get('label')):>5}  {edge['split']:<8}  {prefix}{'`- ' if last else '|- '}"
                         f"{_node_line(ego, kid)}{tail}")
            if not again:
                expanded.add(kid)
                walk(kid, prefix + ("   " if last else "|  "))

    lines.append(f"{'':>7}  {'':>7}  {'':>5}  {'':<8}  {_node_line(ego, centre)}")
    walk(centre, "")
    return "\n".join(lines)


def format_explanation(explanation: PairExplanation) -> str:
    """Terminal table of :func:`metapaths`."""
    e = explanation
    seen = ", ".join(f"{what} {'in graph' if flag else 'NOT in graph (unseen)'}"
                     for what, flag in (("query", e.query_in_graph), ("product", e.product_in_graph)))
    lines = [f"pair: query {_short(e.query, 50)!r} x product {e.product_id} {_short(e.product_text, 50)!r}",
             f"  student score {_fmt(e.score)}   teacher score {_fmt(e.teacher_score)}   "
             f"label {_fmt(e.label)}   split {e.split or '-'}   ({seen})"]
    if e.metapath_weights:
        lines.append("  metapath weights: " + "  ".join(f"{m} {w:.3f}" for m, w in e.metapath_weights.items()))
    else:
        lines.append("  the student reads no metapaths (order 0)")
    if not len(e.neighbours):
        lines.append("  no neighbours on any metapath")
        return "\n".join(lines)
    lines += ["  contribution = student score - score without that neighbour (+ raised the score)", "",
              f"  {'metapath':<8}  {'#':>2}  {'teacher':>7}  {'attention':>9}  {'contrib.':>9}  neighbour",
              f"  {'-' * 8}  {'-' * 2}  {'-' * 7}  {'-' * 9}  {'-' * 9}  {'-' * 40}"]
    for row in e.neighbours.itertuples():
        who = (f"query {_short(row.neighbour_text, 50)!r}" if row.neighbour_type == "query"
               else f"product {row.neighbour_id}  {_short(row.neighbour_text, 50)}")
        if isinstance(row.via, str):
            who += f"  (via {'product' if row.metapath == 'Q-P-Q' else 'query'} {_short(row.via, 30)!r})"
        lines.append(f"  {row.metapath:<8}  {row.rank:>2}  {row.teacher_score:>7.3f}  {row.attention:>9.3f}  "
                     f"{row.contribution:>+9.4f}  {who}")
    for name in e.metapath_weights:
        if name not in set(e.neighbours["metapath"]):
            lines.append(f"  {name:<8}   -  (no neighbours)")
    return "\n".join(lines)


def _json_safe(value):
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else float(value)
    return value


def write_json(ego: nx.Graph, path: str | Path, explanation: PairExplanation | None = None) -> None:
    """Node-link JSON (``networkx.node_link_data``, edges under ``"edges"``), written atomically.

    Read back with ``networkx.node_link_graph(json.load(f), edges="edges")``. With an
    explanation, it is stored as the graph attribute ``pair``.
    """
    data = nx.node_link_data(ego, edges="edges")
    if explanation is not None:
        data["graph"]["pair"] = explanation.to_dict()
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_json_safe(data), indent=1, allow_nan=False), encoding="utf-8")


def write_graphml(ego: nx.Graph, path: str | Path) -> None:
    """GraphML (``networkx.write_graphml``), written atomically. Absent attributes (no label,
    no student score) are simply missing on that edge: GraphML has no None/NaN."""
    clean = nx.Graph()
    clean.graph.update({k: v for k, v in ego.graph.items() if _graphml_value(v)})
    clean.add_nodes_from((n, {k: v for k, v in d.items() if _graphml_value(v)}) for n, d in ego.nodes(data=True))
    clean.add_edges_from((a, b, {k: v for k, v in d.items() if _graphml_value(v)}) for a, b, d in ego.edges(data=True))
    with atomic_path(path) as tmp:
        nx.write_graphml(clean, tmp)


def _graphml_value(value) -> bool:
    if value is None or isinstance(value, (dict, list, tuple)):
        return False
    return not (isinstance(value, float) and math.isnan(value))


def _spread_on_circle(angles: np.ndarray, gap: float) -> np.ndarray:
    """Move angles (radians) apart to at least ``gap``, as little as possible, keeping their order.

    Least-squares on the line (pool-adjacent-violators on ``angle_i - i * gap``), cut at the
    widest empty arc; evenly spaced if the nodes need the whole circle.
    """
    n = len(angles)
    if n < 2:
        return angles
    gap = min(gap, 2 * math.pi / n)
    order = np.argsort(angles % (2 * math.pi), kind="stable")
    a = angles[order] % (2 * math.pi)
    holes = np.diff(np.concatenate([a, [a[0] + 2 * math.pi]]))
    start = (int(np.argmax(holes)) + 1) % n  # begin after the widest empty arc
    a = np.roll(a, -start)
    a = a + 2 * math.pi * (np.arange(n) >= n - start)  # unwrap to increasing
    b = a - gap * np.arange(n)
    sums, counts = [], []
    for value in b:  # isotonic (non-decreasing) regression of b
        sums.append(value)
        counts.append(1)
        while len(sums) > 1 and sums[-2] / counts[-2] > sums[-1] / counts[-1]:
            last_sum, last_count = sums.pop(), counts.pop()
            sums[-1] += last_sum
            counts[-1] += last_count
    fitted = np.repeat([s / c for s, c in zip(sums, counts)], counts)
    x = fitted + gap * np.arange(n)
    if x[-1] - x[0] > 2 * math.pi - gap:
        x = x[0] + 2 * math.pi / n * np.arange(n)
    out = np.empty(n)
    out[order[np.roll(np.arange(n), -start)]] = x
    return out


def _wrap(angle: float) -> float:
    """Angle in (-pi, pi]."""
    return math.atan2(math.sin(angle), math.cos(angle))


def _crossings(edges: list[tuple[str, str]], pos: dict[str, tuple[float, float]]) -> int:
    """Number of crossing pairs among straight ``edges``; 0 when there are too many to count."""
    if len(edges) < 2 or len(edges) > 1500:
        return 0
    names = sorted({n for e in edges for n in e})
    where = {n: i for i, n in enumerate(names)}
    xy = np.array([pos[n] for n in names])
    ends = np.array([(where[a], where[b]) for a, b in edges])
    a, b = xy[ends[:, 0]], xy[ends[:, 1]]

    def side(p, q, r):  # sign of the turn p -> q -> r; rows: segment p-q, columns: point r
        return np.sign((q[:, None, 0] - p[:, None, 0]) * (r[None, :, 1] - p[:, None, 1])
                       - (q[:, None, 1] - p[:, None, 1]) * (r[None, :, 0] - p[:, None, 0]))

    straddles = side(a, b, a) * side(a, b, b) < 0  # [i, j]: segment j's ends on both sides of line i
    shared = ((ends[:, None, 0] == ends[None, :, 0]) | (ends[:, None, 0] == ends[None, :, 1])
              | (ends[:, None, 1] == ends[None, :, 0]) | (ends[:, None, 1] == ends[None, :, 1]))
    return int((straddles & straddles.T & ~shared).sum() // 2)


def radial_layout(ego: nx.Graph, spacing: float = 0.0, sweeps: int = 8) -> dict[str, tuple[float, float]]:
    """Radial tree layout: the centre in the middle, hop h on the circle of radius h.

    Each node hangs under its previous-hop neighbour of highest teacher score; every subtree
    gets an arc proportional to its number of leaves, so a node's neighbours sit next to it
    and tree edges do not cross. ``sweeps`` barycentre passes then reorder siblings so that
    the other edges (a query shared by two products) cross less: a child sits on the side
    of its other parents, and first-hop nodes follow the mean angle of their neighbours.
    Finally the nodes of each ring are pushed apart (keeping their order) to at least
    ``spacing`` of arc (in units of the hop radius), and the first ring, which has room, to
    at least half an even share of the circle.

    Returns:
        node -> (x, y).
    """
    centre = ego.graph["centre"]
    hop = nx.get_node_attributes(ego, "hop")
    children: dict[str, list[str]] = {n: [] for n in ego}
    for name in ego:
        if name == centre:
            continue
        parents = [n for n in ego.neighbors(name) if hop[n] == hop[name] - 1]
        parent = max(parents, key=lambda n: (ego.edges[name, n]["teacher_score"], n))
        children[parent].append(name)
    leaves: dict[str, int] = {}

    def count(name):
        kids = children[name]
        kids.sort(key=lambda n: (-ego.edges[name, n]["teacher_score"], n))
        leaves[name] = max(1, sum(count(k) for k in kids))
        return leaves[name]

    count(centre)
    top = math.pi / 2  # placement starts at the top and runs clockwise
    theta: dict[str, float] = {}

    def place(name, start, span):
        angle = start
        for kid in children[name]:
            width = span * leaves[kid] / leaves[name]
            theta[kid] = angle + width / 2
            place(kid, angle, width)
            angle += width

    def mean_angle(nodes):
        if not nodes:
            return None
        return math.atan2(sum(math.sin(theta[n]) for n in nodes), sum(math.cos(theta[n]) for n in nodes))

    def positions():
        pos = {centre: (0.0, 0.0)}
        rings: dict[int, list[str]] = {}
        for name in theta:
            rings.setdefault(hop[name], []).append(name)
        for ring, names in rings.items():
            gap = spacing / ring if ring > 1 else max(spacing, math.pi / len(names))
            angles = _spread_on_circle(np.array([theta[n] for n in names]), gap)
            for name, angle in zip(names, angles):
                pos[name] = (ring * math.cos(angle), ring * math.sin(angle))
        return pos

    place(centre, top, -2 * math.pi)
    edges = list(ego.edges)
    best_pos = positions()
    best = _crossings(edges, best_pos)
    for _ in range(sweeps if best else 0):
        first = {}
        for kid in children[centre]:  # first ring: towards the mean angle of its own neighbours
            mean = mean_angle([n for n in ego.neighbors(kid) if hop[n] == 2])
            first[kid] = (top - (theta[kid] if mean is None else mean)) % (2 * math.pi)
        children[centre].sort(key=lambda n: first[n])
        for parent, kids in children.items():  # siblings: towards their other parents
            if parent == centre or len(kids) < 2:
                continue
            side = {}
            for kid in kids:
                mean = mean_angle([n for n in ego.neighbors(kid) if hop[n] == hop[kid] - 1 and n != parent])
                side[kid] = 0.0 if mean is None else _wrap(theta[parent] - mean)
            kids.sort(key=lambda n: side[n])  # stable: ties keep teacher-score order
        theta.clear()
        place(centre, top, -2 * math.pi)
        pos = positions()
        crossings = _crossings(edges, pos)
        if crossings < best:
            best, best_pos = crossings, pos
    return best_pos


def draw_png(ego: nx.Graph, path: str | Path, *, title: str | None = None, label_width: int = 20,
             dpi: int = 110) -> None:
    """Draw an ego graph to a PNG (Agg backend; no pyplot state), written atomically.

    Radial layout (:func:`radial_layout`): the centre in the middle (red ring, label in a
    box), hop h on the h-th circle. Queries blue circles, products orange squares; edge
    width by teacher score, edge colour by split (transfer pairs dashed); labels shortened
    to ``label_width`` characters and turned along the radius. The rings are at least a
    label apart and far enough out that neighbours on a ring are a text line apart, so the
    figure grows with the node count (about 9 in at 60 nodes, 17 in at 300; fonts shrink
    beyond ~40 in).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    centre = ego.graph["centre"]
    centre_data = ego.nodes[centre]
    hops = max((d["hop"] for _, d in ego.nodes(data=True)), default=0)
    ring_sizes = {h: sum(1 for _, d in ego.nodes(data=True) if d["hop"] == h) for h in range(1, hops + 1)}

    def sizes(font):  # inches: a label's length, a text line, one hop of radius
        label, line = (label_width + 2) * font * 0.58 / 72 + 0.1, font * 1.7 / 72
        unit = max([label + 0.35] + [n * line / (2 * math.pi * h) for h, n in ring_sizes.items()])
        return label, line, unit

    font = 7.0
    label_in, line_in, unit = sizes(font)
    while 2 * (hops * unit + label_in) > 38 and font > 3.5:  # cap the figure at ~40 in
        font -= 0.5
        label_in, line_in, unit = sizes(font)
    pos = radial_layout(ego, spacing=line_in / unit)
    extent = hops * unit + label_in + 0.25  # inches from the centre to the edge of the drawing
    side = max(6.0, 2 * extent)
    header = 1.0
    fig = Figure(figsize=(side, side + header), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_axes([0, 0, 1, side / (side + header)])
    ax.set_axis_off()
    half = side / 2 / unit
    ax.set_xlim(-half, half)
    ax.set_ylim(-half, half)
    ax.set_aspect("equal")

    from matplotlib.patches import Circle

    for ring in range(1, hops + 1):  # faint guide circle per hop
        ax.add_patch(Circle((0, 0), ring, fill=False, ec="#e6e6e6", lw=0.8, zorder=0))
    for split, (colour, style) in SPLIT_STYLE.items():
        edges = [(a, b) for a, b, d in ego.edges(data=True) if d["split"] == split]
        if edges:
            drawn = nx.draw_networkx_edges(ego, pos, edgelist=edges, edge_color=colour, style=style, alpha=0.7,
                                           width=[0.3 + 3.0 * ego.edges[e]["teacher_score"] for e in edges], ax=ax)
            drawn.set_zorder(1)
    node_size = max(12.0, min(110.0, (0.8 * line_in * 72) ** 2))
    for kind, colour, shape in (("query", QUERY_COLOUR, "o"), ("product", PRODUCT_COLOUR, "s")):
        nodes = [n for n, d in ego.nodes(data=True) if d["type"] == kind and n != centre]
        if nodes:
            drawn = nx.draw_networkx_nodes(ego, pos, nodelist=nodes, node_color=colour, node_shape=shape,
                                           node_size=node_size, edgecolors="white", linewidths=0.4, ax=ax)
            drawn.set_zorder(3)
    drawn = nx.draw_networkx_nodes(ego, pos, nodelist=[centre], node_size=320,
                                   node_color=QUERY_COLOUR if centre_data["type"] == "query" else PRODUCT_COLOUR,
                                   node_shape="o" if centre_data["type"] == "query" else "s",
                                   edgecolors="#d62728", linewidths=3, ax=ax)
    drawn.set_zorder(4)

    gap = (math.sqrt(node_size) / 2 + 3) / 72 / unit  # node radius + 3 pt, in hop units
    labels = {n: _short(d["text"], label_width, "…") for n, d in ego.nodes(data=True)}
    seen: dict[str, int] = {}
    for label in labels.values():
        seen[label] = seen.get(label, 0) + 1
    for name, data in ego.nodes(data=True):  # products cut to the same label (one brand): add the id
        if data["type"] == "product" and seen[labels[name]] > 1:
            labels[name] = _short(f"{data['node_id']} {data['text']}", label_width + 2, "…")
    for name, data in ego.nodes(data=True):
        if name == centre:
            continue
        x, y = pos[name]
        angle = math.atan2(y, x)
        flip = math.cos(angle) < -1e-9
        ax.text(x + gap * math.cos(angle), y + gap * math.sin(angle), labels[name],
                fontsize=font, rotation=math.degrees(angle) + (180 if flip else 0), rotation_mode="anchor",
                ha="right" if flip else "left", va="center", zorder=2,
                color="#0d3b66" if data["type"] == "query" else "#8a4000",
                # a node with outer neighbours has its label over their edges: lift it off them
                bbox=(dict(boxstyle="round,pad=0.12", fc="white", ec="none", alpha=0.8)
                      if data["hop"] < hops else None))
    ax.text(0, -(math.sqrt(320) / 2 + 4) / 72 / unit, _short(centre_data["text"], 40, "…"), fontsize=10,
            fontweight="bold", ha="center", va="top", zorder=5,
            bbox=dict(boxstyle="round,pad=0.3", fc="#fff3b0", ec="#d62728", lw=1.2))

    handles = [
        Line2D([], [], marker="o", ls="", color=QUERY_COLOUR, markersize=7, label="query"),
        Line2D([], [], marker="s", ls="", color=PRODUCT_COLOUR, markersize=7, label="product"),
        Line2D([], [], marker="o", ls="", mfc="white", mec="#d62728", mew=2.5, markersize=9, label="centre"),
    ]
    present = {d["split"] for _, _, d in ego.edges(data=True)}
    handles += [Line2D([], [], color=c, ls=s, lw=2, label=f"{split} pair")
                for split, (c, s) in SPLIT_STYLE.items() if split in present]
    handles += [Line2D([], [], color="#3a3a3a", lw=0.3 + 3.0 * s, label=f"teacher {s:g}") for s in (0.1, 0.5, 1.0)]
    top = 1 - 0.08 / (side + header)
    counts = {t: sum(1 for _, d in ego.nodes(data=True) if d["type"] == t) for t in ("query", "product")}
    fig.text(0.01, top, title or (f"{ego.graph['hops']}-hop neighbourhood of {centre_data['type']} "
                                  f"{_short(centre_data['text'], 60, '…')!r}"),
             fontsize=11, fontweight="bold", ha="left", va="top")
    fig.text(0.01, top - 0.28 / (side + header),
             f"{counts['query']} queries, {counts['product']} products, {ego.number_of_edges()} pairs"
             f"{'' if 'max_per_hop' not in ego.graph else ', at most %d new per node' % ego.graph['max_per_hop']}"
             "; edge width = teacher score, colour = split",
             fontsize=8.5, ha="left", va="top")
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.005, top - 0.5 / (side + header)),
               fontsize=7.5, ncol=min(len(handles), max(3, int(side / 1.3))), frameon=False,
               handlelength=2.2, columnspacing=1.2)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, facecolor="white")


# -- the command ---------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    from graphrel.options import ArgumentParser, whole_number

    parser = ArgumentParser(prog="graphrel inspect", description=(
        "Inspect the query-product graph of a run: the ego graph around a query or a product (teacher "
        "and student scores, human labels, split of every pair), and with --pair-product-id the metapath "
        "neighbours the k-order student read for one pair, with attention weights and contributions."))
    centre = parser.add_mutually_exclusive_group(required=True)
    centre.add_argument("--query", help="centre query: its exact text or query id")
    centre.add_argument("--product-id", help="centre product id")
    parser.add_argument("--run-dir", required=True, help="run directory of `graphrel pipeline`")
    parser.add_argument("--pair-product-id", help="also explain the student's score of (--query, this product)")
    parser.add_argument("--pair-product-text", help="text of --pair-product-id when that product is not in the graph")
    parser.add_argument("--hops", type=whole_number(0, MAX_HOPS, example=2), default=2,
                        help=f"hops around the centre, 0 to {MAX_HOPS} (default 2)")
    parser.add_argument("--max-per-hop", type=whole_number(1, example=10), default=None,
                        help="keep at most N new neighbours per node, highest teacher score first (default: all)")
    parser.add_argument("--format", default="table", choices=FORMATS,
                        help="table: print to the terminal (default); json: networkx node-link JSON; graphml; "
                             "png: a drawing. json/graphml/png need --out")
    parser.add_argument("--out", help="output file (json, graphml, png; optional for table)")
    parser.add_argument("--show-test-labels", action="store_true",
                        help="also show human labels of test pairs (hidden by default: held-out evaluation)")
    parser.add_argument("--no-student", action="store_true", help="skip student scores on edges (faster)")
    return parser


def _check_out(out: str | None, fmt: str) -> Path | None:
    if out is None:
        if fmt != "table":
            raise GraphrelInputError(f"--format {fmt} needs an output file",
                                     fix=f"add --out FILE.{'png' if fmt == 'png' else fmt}")
        return None
    path = Path(out)
    if path.is_dir():
        raise GraphrelInputError("output path is a directory", path=path, fix="give a file path to --out")
    if not path.parent.exists():
        raise GraphrelInputError("output folder does not exist", path=path.parent,
                                 fix="create it or choose another --out")
    return path


def inspect_command(argv: list[str]) -> None:
    """``graphrel inspect``: parse ``argv`` (without the command name) and inspect a run.

    Raises:
        GraphrelInputError: every user error, malformed or out-of-range options included
            (``graphrel`` prints it on one line, exit 2).
        SystemExit: from argparse for ``--help``.
    """
    args = _parser().parse_args(argv)
    out = _check_out(args.out, args.format)
    if args.pair_product_id is not None and args.query is None:
        raise GraphrelInputError("--pair-product-id explains a (query, product) pair and needs --query",
                                 fix="pass --query TEXT with --pair-product-id")
    _check_hops(args.hops, args.max_per_hop)
    run = InspectedRun(args.run_dir)
    splits = DEFAULT_LABEL_SPLITS + (("test", "test_context") if args.show_test_labels else ())
    ego = neighborhood(run, query=args.query, product_id=args.product_id, hops=args.hops,
                       max_per_hop=args.max_per_hop, label_splits=splits, student=not args.no_student)
    explanation = None
    if args.pair_product_id is not None:
        explanation = metapaths(run, args.query, args.pair_product_id, product_text=args.pair_product_text,
                                label_splits=splits)
    try:
        if args.format == "table":
            text = format_table(ego) + ("\n\n" + format_explanation(explanation) if explanation else "")
            if out is None:
                print(text)
            else:
                with atomic_path(out) as tmp:
                    tmp.write_text(text + "\n", encoding="utf-8")
                print(f"wrote {out}")
            return
        if args.format == "json":
            write_json(ego, out, explanation)
        elif args.format == "graphml":
            write_graphml(ego, out)
        else:
            draw_png(ego, out)
    except OSError as error:
        raise GraphrelInputError(f"cannot write output ({error.strerror})", path=out,
                                 fix="choose a writable --out path") from None
    print(f"wrote {out} ({ego.number_of_nodes()} nodes, {ego.number_of_edges()} edges)")
    if args.format == "png" and ego.number_of_nodes() > 150 and args.max_per_hop is None:
        print("tip: --max-per-hop 15 keeps the highest-teacher-score neighbours of each node and the picture small")
    if explanation is not None:
        print(format_explanation(explanation))


def main(argv: list[str] | None = None) -> None:  # pragma: no cover - convenience: python -m graphrel.inspect
    inspect_command(list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":  # pragma: no cover
    main()
