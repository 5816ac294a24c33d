"""Drawing an ego graph: concentric rings around the centre (networkx ``shell_layout``),
drawn with networkx and matplotlib to a PNG."""

from __future__ import annotations

import math
from pathlib import Path

import networkx as nx

from graphrel.explore.naming import short
from graphrel.run import atomic_path

__all__ = ["radial_layout", "draw_png"]

QUERY_COLOUR = "#1f77b4"
PRODUCT_COLOUR = "#ff7f0e"
SPLIT_STYLE = {  # edge colour and line style of each split in drawings
    "train": ("#3a3a3a", "solid"),
    "val": ("#2ca02c", "solid"),
    "test": ("#9467bd", "solid"),
    "test_context": ("#9467bd", "dotted"),
    "transfer": ("#a8a8a8", "dashed"),
}
CENTRE_SIZE = 320  # points^2


def radial_layout(ego: nx.Graph) -> dict[str, tuple[float, float]]:
    """Rings around the centre: the centre in the middle, hop h on the circle of radius h.

    ``networkx.shell_layout`` with one shell per hop, each shell's nodes evenly spaced and
    in tree order: each node hangs under its previous-hop neighbour of highest teacher score,
    siblings by teacher score, so that the neighbours a node brought in sit together on the
    next ring, in the order of their parents, and tree edges do not cross.

    Returns:
        node -> (x, y).
    """
    centre = ego.graph["centre"]
    hop = nx.get_node_attributes(ego, "hop")
    children: dict[str, list[str]] = {n: [] for n in ego}
    for name in ego:
        if name != centre:
            parents = [n for n in ego.neighbors(name) if hop[n] == hop[name] - 1]
            children[max(parents, key=lambda n: (ego.edges[name, n]["teacher_score"], n))].append(name)
    shells = [[centre]]
    while True:
        ring = [kid for parent in shells[-1]
                for kid in sorted(children[parent], key=lambda n: (-ego.edges[parent, n]["teacher_score"], n))]
        if not ring:
            break
        shells.append(ring)
    pos = nx.shell_layout(ego, nlist=shells, scale=len(shells), rotate=0)
    return {name: (float(x), float(y)) for name, (x, y) in pos.items()}


def _sizes(ego: nx.Graph, label_width: int) -> tuple[float, float, float, float]:
    """(font size in points, a label's length, a text line, one hop of radius; in inches).

    The rings are at least a label apart and far enough out that neighbours on a ring are a
    text line apart; fonts shrink to keep the figure under ~40 in."""
    hops = max((d["hop"] for _, d in ego.nodes(data=True)), default=0)
    ring_sizes = {h: sum(1 for _, d in ego.nodes(data=True) if d["hop"] == h) for h in range(1, hops + 1)}

    def sizes(font):
        label, line = (label_width + 2) * font * 0.58 / 72 + 0.1, font * 1.7 / 72
        unit = max([label + 0.35] + [n * line / (2 * math.pi * h) for h, n in ring_sizes.items()])
        return label, line, unit

    font = 7.0
    label_in, line_in, unit = sizes(font)
    while 2 * (hops * unit + label_in) > 38 and font > 3.5:  # cap the figure at ~40 in
        font -= 0.5
        label_in, line_in, unit = sizes(font)
    return font, label_in, line_in, unit


def _draw_graph(ax, ego: nx.Graph, pos: dict, hops: int, node_size: float) -> None:
    """Guide circles, edges (width by teacher score, colour and style by split) and nodes."""
    from matplotlib.patches import Circle

    centre = ego.graph["centre"]
    for ring in range(1, hops + 1):  # faint guide circle per hop
        ax.add_patch(Circle((0, 0), ring, fill=False, ec="#e6e6e6", lw=0.8, zorder=0))
    for split, (colour, style) in SPLIT_STYLE.items():
        edges = [(a, b) for a, b, d in ego.edges(data=True) if d["split"] == split]
        if edges:
            drawn = nx.draw_networkx_edges(ego, pos, edgelist=edges, edge_color=colour, style=style, alpha=0.7,
                                           width=[0.3 + 3.0 * ego.edges[e]["teacher_score"] for e in edges], ax=ax)
            drawn.set_zorder(1)
    for kind, colour, shape in (("query", QUERY_COLOUR, "o"), ("product", PRODUCT_COLOUR, "s")):
        nodes = [n for n, d in ego.nodes(data=True) if d["type"] == kind and n != centre]
        if nodes:
            drawn = nx.draw_networkx_nodes(ego, pos, nodelist=nodes, node_color=colour, node_shape=shape,
                                           node_size=node_size, edgecolors="white", linewidths=0.4, ax=ax)
            drawn.set_zorder(3)
    query_centre = ego.nodes[centre]["type"] == "query"
    drawn = nx.draw_networkx_nodes(ego, pos, nodelist=[centre], node_size=CENTRE_SIZE,
                                   node_color=QUERY_COLOUR if query_centre else PRODUCT_COLOUR,
                                   node_shape="o" if query_centre else "s", edgecolors="#d62728", linewidths=3, ax=ax)
    drawn.set_zorder(4)


def _draw_labels(ax, ego: nx.Graph, pos: dict, hops: int, font: float, gap: float, unit: float,
                 label_width: int) -> None:
    """Node labels turned along the radius (the centre's in a box below it)."""
    centre = ego.graph["centre"]
    labels = {n: short(d["text"], label_width, "…") for n, d in ego.nodes(data=True)}
    seen: dict[str, int] = {}
    for label in labels.values():
        seen[label] = seen.get(label, 0) + 1
    for name, data in ego.nodes(data=True):  # products cut to the same label (one brand): add the id
        if data["type"] == "product" and seen[labels[name]] > 1:
            labels[name] = short(f"{data['node_id']} {data['text']}", label_width + 2, "…")
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
    ax.text(0, -(math.sqrt(CENTRE_SIZE) / 2 + 4) / 72 / unit, short(ego.nodes[centre]["text"], 40, "…"),
            fontsize=10, fontweight="bold", ha="center", va="top", zorder=5,
            bbox=dict(boxstyle="round,pad=0.3", fc="#fff3b0", ec="#d62728", lw=1.2))


def _draw_header(fig, ego: nx.Graph, title: str | None, side: float, header: float) -> None:
    """Title, counts and the legend (node kinds, the splits present, teacher-score widths)."""
    from matplotlib.lines import Line2D

    centre_data = ego.nodes[ego.graph["centre"]]
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
                                  f"{short(centre_data['text'], 60, '…')!r}"),
             fontsize=11, fontweight="bold", ha="left", va="top")
    fig.text(0.01, top - 0.28 / (side + header),
             f"{counts['query']} queries, {counts['product']} products, {ego.number_of_edges()} pairs"
             f"{'' if 'max_per_hop' not in ego.graph else ', at most %d new per node' % ego.graph['max_per_hop']}"
             "; edge width = teacher score, colour = split",
             fontsize=8.5, ha="left", va="top")
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.005, top - 0.5 / (side + header)),
               fontsize=7.5, ncol=min(len(handles), max(3, int(side / 1.3))), frameon=False,
               handlelength=2.2, columnspacing=1.2)


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

    hops = max((d["hop"] for _, d in ego.nodes(data=True)), default=0)
    font, label_in, line_in, unit = _sizes(ego, label_width)
    pos = radial_layout(ego)
    side = max(6.0, 2 * (hops * unit + label_in + 0.25))  # inches; the centre in the middle
    header = 1.0
    fig = Figure(figsize=(side, side + header), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_axes([0, 0, 1, side / (side + header)])
    ax.set_axis_off()
    half = side / 2 / unit
    ax.set_xlim(-half, half)
    ax.set_ylim(-half, half)
    ax.set_aspect("equal")
    node_size = max(12.0, min(110.0, (0.8 * line_in * 72) ** 2))
    _draw_graph(ax, ego, pos, hops, node_size)
    gap = (math.sqrt(node_size) / 2 + 3) / 72 / unit  # node radius + 3 pt, in hop units
    _draw_labels(ax, ego, pos, hops, font, gap, unit, label_width)
    _draw_header(fig, ego, title, side, header)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, facecolor="white")
