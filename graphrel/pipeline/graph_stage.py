"""Stage ``graph``: the protocols' query-product graphs. -> graph.pt, graph_new_query.pt"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from graphrel import run as R
from graphrel.pipeline.protocols import PROTOCOL_GRAPHS, PROTOCOLS, protocol_edges


def build_graphs(run_dir: Path, scored: pd.DataFrame):
    """The protocols' query-product graphs with teacher scores (train labels only); no
    evaluated test pair is an edge of either. -> graph.pt (``new_pairs``; students train
    and ``graphrel score`` reads it) and graph_new_query.pt (``new_query``).

    Returns the ``new_pairs`` graph (``HeteroData``); graphs already written are reloaded.
    """
    from graphrel.data.graph import build_graph

    graphs = {}
    for protocol in PROTOCOLS:
        path = run_dir / PROTOCOL_GRAPHS[protocol]
        if path.exists():
            graphs[protocol] = R.load_run_graph(path)
            continue
        graphs[protocol] = build_graph(protocol_edges(scored, protocol), label_splits=("train",))
        R.save_graph(graphs[protocol], path)
    return graphs["new_pairs"]
