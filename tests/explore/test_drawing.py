"""Tests of graphrel.explore.drawing: the ring layout and the PNG."""

from __future__ import annotations

import math

import numpy as np
import pytest

from explore_run import busy_query, generic_graph, pairs, real_data, run_dir  # noqa: F401 (fixtures)
from graphrel.explore import neighborhood
from graphrel.explore.command import inspect_command
from graphrel.explore.drawing import draw_png, radial_layout


def _angle(point) -> float:
    return math.atan2(point[1], point[0]) % (2 * math.pi)


def test_radial_layout_puts_each_hop_on_its_ring(generic_graph):
    ego = neighborhood(generic_graph, product_id="p4", hops=4)
    pos = radial_layout(ego)
    for name, (x, y) in pos.items():
        assert math.hypot(x, y) == pytest.approx(ego.nodes[name]["hop"])
    for hop in range(1, 5):  # evenly spaced on its ring: neighbours on a ring never overlap
        angles = np.sort([_angle(pos[n]) for n in pos if ego.nodes[n]["hop"] == hop])
        gaps = np.diff(np.append(angles, angles[0] + 2 * math.pi))
        assert gaps == pytest.approx(2 * math.pi / len(angles), abs=1e-6)


def test_radial_layout_keeps_children_together_in_their_parents_order(generic_graph):
    ego = neighborhood(generic_graph, query="q1", hops=3)
    pos = radial_layout(ego)
    for hop in (1, 2, 3):
        ring = sorted((n for n in ego if ego.nodes[n]["hop"] == hop), key=lambda n: _angle(pos[n]))
        # each node's parent: its previous-hop neighbour of highest teacher score
        parents = [max((m for m in ego.neighbors(n) if ego.nodes[m]["hop"] == hop - 1),
                       key=lambda m: (ego.edges[n, m]["teacher_score"], m)) for n in ring]
        order = [_angle(pos[m]) if hop > 1 else 0.0 for m in parents]
        assert order == sorted(order), ring
        scores = [ego.edges[n, m]["teacher_score"] for n, m in zip(ring, parents)]
        for k in range(1, len(ring)):  # siblings by teacher score, best first
            if parents[k] == parents[k - 1]:
                assert scores[k] <= scores[k - 1]


def test_generic_graph_png(generic_graph, tmp_path):
    draw_png(neighborhood(generic_graph, query="q1", hops=3), tmp_path / "g.png")
    assert (tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG"
    assert [p.name for p in tmp_path.iterdir()] == ["g.png"]


@real_data
def test_png_is_drawn(run_dir, busy_query, tmp_path):
    import matplotlib.image

    out = tmp_path / "ego.png"
    inspect_command(["--run-dir", str(run_dir), "--query", busy_query, "--hops", "3", "--format", "png",
                     "--out", str(out), "--no-student"])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 30_000
    height, width = matplotlib.image.imread(out).shape[:2]
    assert height > 600 and width > 600
