"""The CE k-NN report: the targets checked on the measured grid, the markdown section and the plot.

Targets (those of the AXN paper, checked here): AXN beats dual-encoder retrieve-and-rerank at equal budget for k = 1 and
k = 10; AXN's index costs >= 10x fewer CE calls than ANNCUR at matched Top-10-Recall@100.
Matched cost: each method's index-cost curve (AXN fitted on nested subsets of the training
queries, ANNCUR / adaCUR on nested anchor-query sets) gives cost(r) = the fewest index CE calls
of a point reaching Top-10-Recall >= r; the ratio is cost_CUR(r) / cost_AXN(r) at the highest r
both curves reach.
"""

from __future__ import annotations

import math

METHODS = ("axn_mf_ind", "axn_mf_trns", "retrieve_rerank_de", "retrieve_rerank_bm25", "anncur", "adacur")
MATCH_BUDGET = 100
MATCH_K = 10


def _budget_key(budget: int) -> str:
    return f"B={budget}"


def axn_versus_rerank(entries: dict, *, model: str = "axn_mf_ind", ks=(1, 10)) -> dict:
    """Per budget and k: AXN's and DE retrieve-and-rerank's Top-k-Recall; ``holds`` when AXN is
    strictly better at every budget for every k."""
    axn, rerank = entries[model], entries["retrieve_rerank_de"]
    rows, holds = [], True
    for key in (k for k in axn if k.startswith("B=")):
        for k in ks:
            name = f"top{k}_recall"
            if name in axn[key] and name in rerank.get(key, {}):
                better = axn[key][name] > rerank[key][name]
                holds &= better
                rows.append({"budget": key, "k": k, "axn": axn[key][name], "retrieve_rerank_de": rerank[key][name],
                             "difference": axn[key][name] - rerank[key][name]})
    return {"model": model, "holds": bool(holds and rows), "comparisons": rows}


def _cost_at(points: list, level: float) -> float | None:
    reaching = [p["ce_calls_index"] for p in points if p["recall"] >= level - 1e-12]
    return min(reaching) if reaching else None


def matched_index_cost(axn_points: list, cur_points: list) -> dict:
    """Index CE calls of CUR over AXN at the highest Top-10-Recall both curves reach.

    Args:
        axn_points, cur_points: ``[{"ce_calls_index", "recall"}]``.

    Returns:
        ``{"recall", "axn_ce_calls", "cur_ce_calls", "ratio"}`` (None values without points).
    """
    if not axn_points or not cur_points:
        return {"recall": None, "axn_ce_calls": None, "cur_ce_calls": None, "ratio": None}
    level = min(max(p["recall"] for p in axn_points), max(p["recall"] for p in cur_points))
    axn, cur = _cost_at(axn_points, level), _cost_at(cur_points, level)
    return {"recall": level, "axn_ce_calls": axn, "cur_ce_calls": cur, "ratio": cur / axn if axn else None}


def curve(grid: list, method: str, budget: int, k: int = MATCH_K, **fixed) -> list:
    """Index-cost curve of one method: ``[{"ce_calls_index", "recall", ...}]`` sorted by cost."""
    points = []
    for row in grid:
        if row["method"] == method and row["budget"] == budget and all(row.get(f) == v for f, v in fixed.items()) \
                and f"top{k}_recall" in row:
            points.append({"ce_calls_index": row["ce_calls_index"], "recall": row[f"top{k}_recall"],
                           "index_queries": row.get("index_queries"), "anchor_queries": row.get("anchor_queries")})
    return sorted(points, key=lambda p: p["ce_calls_index"])


def knn_targets(grid: list, entries: dict, axn_settings: dict, cur_rounds: int, budgets) -> dict:
    """Both targets (AXN against retrieve-and-rerank, and index cost against ANNCUR) on the
    measured grid (see the module docstring)."""
    budget = MATCH_BUDGET if MATCH_BUDGET in budgets else max(budgets)
    axn_curve = curve(grid, "axn_mf_ind", budget, **{k: v for k, v in axn_settings.items() if k != "index_queries"})
    anncur_curve = curve(grid, "anncur", budget)
    adacur_curve = curve(grid, "adacur", budget, rounds=cur_rounds)
    anncur_match, adacur_match = matched_index_cost(axn_curve, anncur_curve), matched_index_cost(axn_curve, adacur_curve)
    return {"axn_beats_rerank": axn_versus_rerank(entries),
            "axn_mf_trns_beats_rerank": axn_versus_rerank(entries, model="axn_mf_trns"),
            "index_cost": {"budget": budget, "k": MATCH_K, "axn_curve": axn_curve, "anncur_curve": anncur_curve,
                           "adacur_curve": adacur_curve, "versus_anncur": anncur_match, "versus_adacur": adacur_match,
                           "holds": bool(anncur_match["ratio"] is not None and anncur_match["ratio"] >= 10)}}


def _f(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else f"{value:,}"


def knn_markdown(result: dict) -> str:
    """The report section "CE k-NN search" (headline table, rounds, index-cost curve, targets)."""
    entries, grid, meta, targets = result["knn"], result["grid"], result["evaluation"], result["targets"]
    truth = meta["ground_truth"]
    lines = ["## CE k-NN search (AXN, ANNCUR / adaCUR, retrieve-and-rerank)", "",
             f"Exact CE top-k of {meta['test_queries']} unseen test queries over {meta['items']:,} items "
             f"({truth['ce_calls']:,} CE calls, {truth['seconds']:.0f} s, {_f(truth['pairs_per_second'], 0)} pairs/s). "
             f"Index: {meta['train_queries']} training queries x k_d = {meta['items_per_query']} CE-scored products. "
             "Top-k-Recall@B = share of the exact CE top-k found with B CE calls per query. Search seconds per "
             "query: without the CE (served from the cached ground truth, still counted) / with the CE "
             "estimated at that pairs/s. Index seconds: its CE scoring plus fitting.", "",
             "| method | B | Top-1 | Top-10 | Top-100 | CE calls index | CE calls / query | index s | search s / query (CE excl. / incl.) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for method, entry in entries.items():
        for key in (k for k in entry if k.startswith("B=")):
            cell = entry[key]
            lines.append(f"| {method} | {key[2:]} | {_f(cell.get('top1_recall'))} | {_f(cell.get('top10_recall'))} | "
                         f"{_f(cell.get('top100_recall'))} | {_f(entry['ce_calls_index'])} | "
                         f"{_f(cell['ce_calls_search'], 0)} | {_f(entry['index_seconds'], 0)} | "
                         f"{_f(cell['search_seconds'], 4)} / {_f(cell.get('search_seconds_with_ce'), 2)} |")
    lines += ["", "Settings of the headline rows: " + "; ".join(
        f"{m}: {', '.join(f'{k}={v}' for k, v in e['settings'].items())}" for m, e in entries.items()), ""]
    lines += ["### Rounds R (Top-1 / Top-10 / Top-100 Recall)", "", "| method | R | " + " | ".join(
        f"B={b}" for b in meta["budgets"]) + " |", "|---|---|" + "---|" * len(meta["budgets"])]
    for method, fixed in (("axn_mf_ind", meta["axn_settings"]), ("axn_mf_trns", meta["axn_settings"]),
                          ("adacur", {"anchor_queries": meta["anchor_queries"]})):
        for rounds in meta["rounds"]:
            cells = []
            for budget in meta["budgets"]:
                row = _find(grid, method=method, budget=budget, rounds=rounds,
                            **{k: v for k, v in fixed.items() if k != "rounds"})
                cells.append("–" if row is None else " / ".join(_f(row.get(f"top{k}_recall"), 2) for k in meta["top_ks"]))
            lines.append(f"| {method} | {rounds} | " + " | ".join(cells) + " |")
    lines += ["", "### AXN variants (R = {}; Top-10-Recall)".format(meta["axn_settings"]["rounds"]), "",
              "| model | index source | first round | lambda | " + " | ".join(f"B={b}" for b in meta["budgets"]) + " |",
              "|---|---|---|---|" + "---|" * len(meta["budgets"])]
    for row in grid:
        if row["method"].startswith("axn") and row["budget"] == meta["budgets"][0] \
                and row["rounds"] == meta["axn_settings"]["rounds"] and row["index_queries"] == meta["train_queries"]:
            cells = [_find(grid, **{**{k: row[k] for k in ("method", "index_source", "first_round", "blend", "rounds",
                                                          "index_queries")}, "budget": b}) for b in meta["budgets"]]
            lines.append(f"| {row['method']} | {row['index_source']} | {row['first_round']} | {row['blend']:g} | "
                         + " | ".join(_f(c.get("top10_recall") if c else None) for c in cells) + " |")
    cost = targets["index_cost"]
    lines += ["", f"### Index cost against Top-10-Recall@{cost['budget']}", "",
              "| method | index queries / anchor queries | CE calls index | Top-10-Recall |", "|---|---|---|---|"]
    for name, points in (("axn_mf_ind", cost["axn_curve"]), ("anncur", cost["anncur_curve"]),
                         ("adacur", cost["adacur_curve"])):
        for p in points:
            lines.append(f"| {name} | {p['index_queries'] or p['anchor_queries']} | {p['ce_calls_index']:,} | "
                         f"{_f(p['recall'])} |")
    lines += ["", "### Targets", ""]
    for name in ("axn_beats_rerank", "axn_mf_trns_beats_rerank"):
        t = targets[name]
        lines.append(f"- {t['model']} beats DE retrieve-and-rerank at every budget for k = 1 and 10: "
                     f"**{'holds' if t['holds'] else 'fails'}** (" + "; ".join(
                         f"{c['budget']} k={c['k']}: {c['axn']:.3f} vs {c['retrieve_rerank_de']:.3f}"
                         for c in t["comparisons"]) + ")")
    for name in ("versus_anncur", "versus_adacur"):
        m = cost[name]
        lines.append(f"- index CE calls at matched Top-10-Recall@{cost['budget']} ({_f(m['recall'])}), "
                     f"{name.split('_')[1]} / AXN: {_f(m['cur_ce_calls'])} / {_f(m['axn_ce_calls'])} = "
                     f"{_f(m['ratio'], 1)}x" + (f" (target >= 10x vs ANNCUR: **{'holds' if cost['holds'] else 'fails'}**)"
                                                if name == "versus_anncur" else ""))
    return "\n".join(lines) + "\n"


def _find(grid: list, **fixed) -> dict | None:
    for row in grid:
        if all(row.get(k) == v for k, v in fixed.items()):
            return row
    return None


def plot_knn(result: dict, path) -> None:
    """Recall against CE calls: Top-1 and Top-10 against search calls per query, and Top-10 against
    index calls (log scale). Written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from graphrel.run import atomic_path

    entries, cost = result["knn"], result["targets"]["index_cost"]
    figure, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for axis, k in zip(axes[:2], (1, 10)):
        for method, entry in entries.items():
            points = [(entry[b]["ce_calls_search"], entry[b][f"top{k}_recall"]) for b in entry
                      if b.startswith("B=") and f"top{k}_recall" in entry[b]]
            if points:
                axis.plot(*zip(*points), marker="o", label=method)
        axis.set(xlabel="CE calls per query (search)", ylabel=f"Top-{k}-Recall", title=f"Top-{k}-Recall@B", ylim=(0, 1.02))
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    for name, points in (("AXN MF-Ind", cost["axn_curve"]), ("ANNCUR", cost["anncur_curve"]),
                         ("adaCUR", cost["adacur_curve"])):
        if points:
            axes[2].plot([p["ce_calls_index"] for p in points], [p["recall"] for p in points], marker="o", label=name)
    rerank = entries["retrieve_rerank_de"].get(f"B={cost['budget']}", {}).get("top10_recall")
    if rerank is not None:
        axes[2].axhline(rerank, color="grey", linestyle="--", label="DE retrieve-and-rerank")
    axes[2].set(xscale="log", xlabel="CE calls to build the index", ylabel="Top-10-Recall",
                title=f"Top-10-Recall@{cost['budget']} against index cost", ylim=(0, 1.02))
    axes[2].grid(alpha=0.3)
    axes[2].legend(fontsize=8)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110)
    plt.close(figure)
