"""Ego graphs to files: networkx node-link JSON (:func:`write_json`) and GraphML
(:func:`write_graphml`), each written atomically."""

from __future__ import annotations

import json
import math
from pathlib import Path

import networkx as nx
import numpy as np

from graphrel.explore.explain import PairExplanation
from graphrel.run import atomic_path

__all__ = ["write_json", "write_graphml"]


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


def _graphml_value(value) -> bool:
    if value is None or isinstance(value, (dict, list, tuple)):
        return False
    return not (isinstance(value, float) and math.isnan(value))


def write_graphml(ego: nx.Graph, path: str | Path) -> None:
    """GraphML (``networkx.write_graphml``), written atomically. Absent attributes (no label,
    no student score) are simply missing on that edge: GraphML has no None/NaN."""
    clean = nx.Graph()
    clean.graph.update({k: v for k, v in ego.graph.items() if _graphml_value(v)})
    clean.add_nodes_from((n, {k: v for k, v in d.items() if _graphml_value(v)}) for n, d in ego.nodes(data=True))
    clean.add_edges_from((a, b, {k: v for k, v in d.items() if _graphml_value(v)}) for a, b, d in ego.edges(data=True))
    with atomic_path(path) as tmp:
        nx.write_graphml(clean, tmp)
