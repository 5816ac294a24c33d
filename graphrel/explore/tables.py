"""Terminal tables of an ego graph (:func:`format_table`) and of a pair explanation
(:func:`format_explanation`)."""

from __future__ import annotations

import math

import networkx as nx

from graphrel.explore.explain import PairExplanation
from graphrel.explore.naming import short

__all__ = ["format_table", "format_explanation"]


def _fmt(value, spec: str = ".3f") -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def _node_line(ego: nx.Graph, name: str, width: int = 70) -> str:
    data = ego.nodes[name]
    if data["type"] == "query":
        shown = repr(short(data["text"], width))
        if data["node_id"] != data["text"]:
            shown += f" [id {data['node_id']}]"
        return f"query {shown} (degree {data['degree']})"
    return f"product {data['node_id']}  {short(data['text'], width)} (degree {data['degree']})"
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
    lines = [f"pair: query {short(e.query, 50)!r} x product {e.product_id} {short(e.product_text, 50)!r}",
             f"  student score {_fmt(e.score)}   teacher score {_fmt(e.teacher_score)}   "
             f"label {_fmt(e.label)}   split {e.split or '-'}   ({seen})"]
    if e.text_fallback:  # explained by the path that made the score: text only
        lines += ["  scored by the student's text fallback (nothing known of the pair in the graph): its "
                  "text-only copy read the query and the product text alone; no graph neighbour entered the score",
                  f"  graph neighbours the fallback did not read: {len(e.neighbours)}"]
        return "\n".join(lines)
    if e.metapath_weights:
        lines.append("  metapath weights: " + "  ".join(f"{m} {w:.3f}" for m, w in e.metapath_weights.items()))
    else:
        lines.append("  the student reads no metapaths (order 0)")
    if not len(e.neighbours):
        lines.append("  no neighbours on any metapath")
        return "\n".join(lines)
    lines += ["  contribution = student score - score without that neighbour (+ raised the score); "
              "Q~Q teacher column: text similarity", "",
              f"  {'metapath':<8}  {'#':>2}  {'teacher':>7}  {'attention':>9}  {'contrib.':>9}  neighbour",
              f"  {'-' * 8}  {'-' * 2}  {'-' * 7}  {'-' * 9}  {'-' * 9}  {'-' * 40}"]
    for row in e.neighbours.itertuples():
        who = (f"query {short(row.neighbour_text, 50)!r}" if row.neighbour_type == "query"
               else f"product {row.neighbour_id}  {short(row.neighbour_text, 50)}")
        if isinstance(row.via, str):
            who += f"  (via {'product' if row.metapath == 'Q-P-Q' else 'query'} {short(row.via, 30)!r})"
        if row.built:
            who += "  [built: nearest logged query]" if row.metapath == "Q~Q" else "  [built: via a nearest logged query]"
        lines.append(f"  {row.metapath:<8}  {row.rank:>2}  {row.teacher_score:>7.3f}  {row.attention:>9.3f}  "
                     f"{row.contribution:>+9.4f}  {who}")
    for name in e.metapath_weights:
        if name not in set(e.neighbours["metapath"]):
            lines.append(f"  {name:<8}   -  (no neighbours)")
    return "\n".join(lines)
