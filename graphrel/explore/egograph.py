"""The ego graph: the neighbourhood of a query or a product, breadth first, as a networkx graph.

"What does the graph know around ``angle bracket``?" -> :func:`neighborhood`, the ego graph
up to ``hops`` hops in the query-product bipartite graph, with teacher scores, student
scores, human labels and split membership on edges (attributes in :mod:`graphrel.explore`).
"""

from __future__ import annotations

import math

import networkx as nx
import numpy as np

from graphrel.data.graph import SPLIT_CODES
from graphrel.errors import GraphrelInputError
from graphrel.explore.index import GraphIndex, unknown_product, unknown_query
from graphrel.explore.inspected_run import STUDENT_DIR, InspectedRun, open_graph
from graphrel.explore.naming import node_name

__all__ = ["MAX_HOPS", "DEFAULT_LABEL_SPLITS", "check_hops", "neighborhood"]

#: Largest ``hops`` accepted: beyond 4 hops an ego graph is most of the catalogue.
MAX_HOPS = 4
#: Splits whose human labels are shown by default (see :mod:`graphrel.explore`).
DEFAULT_LABEL_SPLITS = ("train", "val")

SPLIT_NAMES = {code: name for name, code in SPLIT_CODES.items()}

Node = tuple[str, int]  # (kind, node index)


def check_hops(hops, max_per_hop) -> None:
    """``hops`` a whole number from 0 to :data:`MAX_HOPS`; ``max_per_hop`` None or >= 1."""
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
        label_splits: splits whose human labels are put on edges (see :mod:`graphrel.explore`).
        student: score every edge with the run's k-order student, if it has one.

    Returns:
        ``networkx.Graph`` with node and edge attributes as in :mod:`graphrel.explore` and
        graph attributes ``centre``, ``hops``, ``max_per_hop`` (only when set),
        ``label_splits`` (comma-separated), ``source`` (run directory or "graph") and
        ``student`` (only when student scores are present).

    Raises:
        GraphrelInputError: unknown query or product id (with the closest known ones), both
            or neither of ``query`` / ``product_id``, hops outside 0..MAX_HOPS, bad
            ``max_per_hop``, missing run directory or graph.
    """
    check_hops(hops, max_per_hop)
    if (query is None) == (product_id is None):
        raise GraphrelInputError("give exactly one centre: a query or a product id",
                                 fix="pass --query TEXT or --product-id ID")
    unknown_split = set(label_splits) - set(SPLIT_CODES)
    if unknown_split:
        raise GraphrelInputError(f"unknown split(s) {sorted(unknown_split)} in label_splits",
                                 fix=f"choose from {list(SPLIT_CODES)}")
    index, run, source = open_graph(run_or_graph)
    centre = _centre(index, query, product_id, run.run_dir if run is not None else None)
    hop_of = _breadth_first(index, centre, hops, max_per_hop)
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
    _add_nodes(ego, index, hop_of)
    student_scores = None
    if student and run is not None and run.has_student and len(edges):
        student_scores = _student_scores(run, index, edges)
        ego.graph["student"] = STUDENT_DIR
    _add_edges(ego, index, edges, student_scores, label_splits)
    return ego


def _centre(index: GraphIndex, query: str | None, product_id: str | None, where) -> Node:
    if query is not None:
        found = index.find_query(query)
        if found is None:
            raise unknown_query(index, query, where)
        return "query", found
    found = index.find_product(product_id)
    if found is None:
        raise unknown_product(index, product_id, where)
    return "product", found


def _breadth_first(index: GraphIndex, centre: Node, hops: int, max_per_hop: int | None) -> dict[Node, int]:
    """Node -> the hop at which it was first reached (at most ``max_per_hop`` new
    neighbours per expanded node, highest teacher score first)."""
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
    return hop_of


def _add_nodes(ego: nx.Graph, index: GraphIndex, hop_of: dict[Node, int]) -> None:
    for (kind, node), hop in sorted(hop_of.items(), key=lambda item: (item[1], item[0])):
        if kind == "query":
            node_id, text, degree = index.query_ids[node], index.query_texts[node], index.query_degree[node]
        else:
            node_id, text, degree = index.product_ids[node], index.product_texts[node], index.product_degree[node]
        ego.add_node(node_name(kind, node_id), type=kind, node_id=node_id, text=text, degree=int(degree), hop=int(hop))


def _student_scores(run: InspectedRun, index: GraphIndex, edges: np.ndarray) -> np.ndarray:
    q, p = index.src[edges], index.dst[edges]
    return run.student.score([index.query_ids[i] for i in q], [index.query_texts[i] for i in q],
                             [index.product_ids[i] for i in p], [index.product_texts[i] for i in p])


def _add_edges(ego: nx.Graph, index: GraphIndex, edges: np.ndarray, student_scores: np.ndarray | None,
               label_splits: tuple[str, ...]) -> None:
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
