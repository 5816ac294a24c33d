"""The CE k-NN report: the targets checked on the measured grid, the markdown section and the plot.

Targets (those of the AXN paper, checked here): AXN beats dual-encoder retrieve-and-rerank at equal budget for k = 1 and
k = 10; AXN's index costs >= 10x fewer CE calls than ANNCUR at matched Top-10-Recall@100.
Matched cost: each method's index-cost curve (AXN fitted on nested subsets of the training
queries, ANNCUR / adaCUR on nested anchor-query sets) gives cost(r) = the fewest index CE calls
of a point reaching Top-10-Recall >= r; the ratio is cost_CUR(r) / cost_AXN(r) at the highest r
both curves reach.

One budget grid: methods are compared only at a budget B (CE calls per test query) that every
compared method was measured at; a method without a figure at a budget of the grid shows "–"
there and no target is judged at that budget (never a figure of another budget). Every table
and the plot state the item set (its size, the catalogue's, judged and sampled products).
"""

from __future__ import annotations

import math

METHODS = ("axn_mf_ind", "axn_mf_trns", "retrieve_rerank_de", "retrieve_rerank_bm25", "anncur", "adacur")
MATCH_BUDGET = 100
MATCH_K = 10


def item_set_note(item_set: dict) -> str:
    """The sentence every table and the plot print about the item set.

    Args:
        item_set: ``{"items", "catalogue", "judged", "sampled", "test_queries"}`` (counts >= 0).

    Returns:
        e.g. "item set: 5,000 of 54,667 catalogue products (1,234 judged for the 300 test
        queries, 3,766 sampled at random); a method that finds judged products is favoured
        against catalogue-scale search".
    """
    s = item_set
    counts = f"{s['judged']:,} judged for the {s['test_queries']:,} test queries, {s['sampled']:,} sampled at random"
    if s["items"] >= s["catalogue"]:
        return f"item set: the whole catalogue, {s['items']:,} products ({counts}); catalogue-scale search"
    return (f"item set: {s['items']:,} of {s['catalogue']:,} catalogue products ({counts}); "
            "a method that finds judged products is favoured against catalogue-scale search")


def _budget_key(budget: int) -> str:
    return f"B={budget}"


def entry_budgets(entry: dict) -> list[int]:
    """The budgets B of one method's entry (its ``"B=<n>"`` keys), ascending."""
    return sorted(int(k[2:]) for k in entry if k.startswith("B="))


def common_budgets(entries: dict, methods, budgets=None) -> list[int]:
    """The budgets every one of ``methods`` has a figure at, ascending.

    Args:
        entries: method -> entry with ``"B=<n>"`` keys (``metrics.json``'s ``knn``).
        methods: the compared methods (a method absent from ``entries`` has no budget).
        budgets: the grid to draw from (default: every budget of any of them).
    """
    have = [set(entry_budgets(entries.get(m, {}))) for m in methods]
    grid = set(budgets) if budgets is not None else set().union(*have)
    return sorted(b for b in grid if all(b in h for h in have))


def axn_versus_rerank(entries: dict, *, model: str = "axn_mf_ind", ks=(1, 10), budgets=None) -> dict:
    """Per budget and k: AXN's and DE retrieve-and-rerank's Top-k-Recall, only at budgets both
    have; ``holds`` when AXN is strictly better at every compared budget for every k.

    Args:
        entries: method -> entry (``metrics.json``'s ``knn``).
        model: the AXN entry compared; ks: the k compared (where both have Top-k-Recall).
        budgets: the budget grid (default: every budget of either).

    Returns:
        ``{"model", "holds", "judged" (any comparison made), "budgets" (compared),
        "not_judged" ({"budget", "missing": [methods without a figure]}), "comparisons"}``.
    """
    axn, rerank = entries.get(model, {}), entries.get("retrieve_rerank_de", {})
    grid = sorted(set(budgets) if budgets is not None else set(entry_budgets(axn)) | set(entry_budgets(rerank)))
    compared = common_budgets(entries, (model, "retrieve_rerank_de"), grid)
    rows, holds = [], True
    for budget in compared:
        key = _budget_key(budget)
        for k in ks:
            name = f"top{k}_recall"
            if name in axn[key] and name in rerank[key]:
                better = axn[key][name] > rerank[key][name]
                holds &= better
                rows.append({"budget": key, "k": k, "axn": axn[key][name], "retrieve_rerank_de": rerank[key][name],
                             "difference": axn[key][name] - rerank[key][name]})
    missing = [{"budget": _budget_key(b), "missing": [m for m, e in ((model, axn), ("retrieve_rerank_de", rerank))
                                                      if _budget_key(b) not in e]} for b in grid if b not in compared]
    return {"model": model, "holds": bool(holds and rows), "judged": bool(rows), "budgets": compared,
            "not_judged": missing, "comparisons": rows}


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
    measured grid (see the module docstring), each only at budgets every compared method has.

    Args:
        grid: every measured row (``method``, ``budget``, settings, ``top{k}_recall``, costs).
        entries: the headline entries (``metrics.json``'s ``knn``).
        axn_settings: the headline AXN settings; cur_rounds: adaCUR's R on the curve.
        budgets: the one budget grid (``KnnConfig.budgets``).

    Returns:
        ``{"budgets", "axn_beats_rerank", "axn_mf_trns_beats_rerank", "index_cost"}``; the index
        cost is drawn at B = 100 if axn_mf_ind, ANNCUR and adaCUR all have it, else the largest
        budget they all have (``budget`` None, curves empty and nothing judged when none);
        ``index_cost["not_judged"]``: the grid's budgets where one of them lacks a figure.
    """
    budgets = sorted(budgets)
    fixed = {"axn_mf_ind": {k: v for k, v in axn_settings.items() if k != "index_queries"}, "anncur": {},
             "adacur": {"rounds": cur_rounds}}
    have = {m: {r["budget"] for r in grid if r["method"] == m and f"top{MATCH_K}_recall" in r
                and all(r.get(f) == v for f, v in settings.items())} for m, settings in fixed.items()}
    shared = [b for b in budgets if all(b in h for h in have.values())]
    budget = (MATCH_BUDGET if MATCH_BUDGET in shared else max(shared)) if shared else None
    axn_curve, anncur_curve, adacur_curve = ([] if budget is None else curve(grid, m, budget, **fixed[m])
                                             for m in ("axn_mf_ind", "anncur", "adacur"))
    anncur_match, adacur_match = matched_index_cost(axn_curve, anncur_curve), matched_index_cost(axn_curve, adacur_curve)
    not_judged = [{"budget": _budget_key(b), "missing": [m for m, h in have.items() if b not in h]}
                  for b in budgets if b not in shared]
    return {"budgets": budgets,
            "axn_beats_rerank": axn_versus_rerank(entries, budgets=budgets),
            "axn_mf_trns_beats_rerank": axn_versus_rerank(entries, model="axn_mf_trns", budgets=budgets),
            "index_cost": {"budget": budget, "k": MATCH_K, "budgets": shared, "not_judged": not_judged,
                           "axn_curve": axn_curve, "anncur_curve": anncur_curve,
                           "adacur_curve": adacur_curve, "versus_anncur": anncur_match, "versus_adacur": adacur_match,
                           "holds": bool(anncur_match["ratio"] is not None and anncur_match["ratio"] >= 10)}}


def _f(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else f"{value:,}"


def _verdict(holds: bool, judged: bool = True) -> str:
    return f"**{'holds' if holds else 'fails'}**" if judged else "**not judged**"


def _not_judged(missing: list) -> str:
    return "".join(f"; not judged at {m['budget']}: no figure of {', '.join(m['missing'])}" for m in missing)


def knn_markdown(result: dict) -> str:
    """The report section "CE k-NN search" (item set, headline table, rounds, variants,
    index-cost curve, targets): every table over the one budget grid ``evaluation["budgets"]``,
    "–" where a method has no figure at a budget; each table states the item set."""
    entries, grid, meta, targets = result["knn"], result["grid"], result["evaluation"], result["targets"]
    truth, budgets, note = meta["ground_truth"], meta["budgets"], item_set_note(meta["item_set"])
    head = "| method | R | " + " | ".join(f"B={b}" for b in budgets) + " |"
    lines = ["## CE k-NN search (AXN, ANNCUR / adaCUR, retrieve-and-rerank)", "", f"**{note[0].upper()}{note[1:]}.**", "",
             f"Exact CE top-k of {meta['test_queries']} unseen test queries over the {meta['items']:,} items of the item set "
             f"({truth['ce_calls']:,} CE calls, {truth['seconds']:.0f} s, {_f(truth['pairs_per_second'], 0)} pairs/s). "
             f"Index: {meta['train_queries']} training queries x k_d = {meta['items_per_query']} CE-scored products. "
             "Top-k-Recall@B = share of the item set's exact CE top-k found with B CE calls per query. Every method is "
             f"searched on the one budget grid B = {', '.join(str(b) for b in budgets)} and charged exactly B CE calls "
             "per test query at search (the column CE calls / query); index CE calls are one-off, on top: AXN "
             "k_d x training queries, ANNCUR / adaCUR anchor queries x items, retrieve-and-rerank none. '–': no "
             "figure at that budget (never one of another budget). Search seconds per query: without the CE (served "
             "from the cached ground truth, still counted) / with the CE estimated at that pairs/s. Index seconds: "
             "its CE scoring plus fitting.", "",
             "| method | B | Top-1 | Top-10 | Top-100 | CE calls index (one-off) | CE calls / query (search) | index s | "
             "search s / query (CE excl. / incl.) |", "|---|---|---|---|---|---|---|---|---|"]
    for method, entry in entries.items():
        for budget in budgets:
            cell = entry.get(f"B={budget}", {})
            lines.append(f"| {method} | {budget} | {_f(cell.get('top1_recall'))} | {_f(cell.get('top10_recall'))} | "
                         f"{_f(cell.get('top100_recall'))} | {_f(entry['ce_calls_index'])} | "
                         f"{_f(cell.get('ce_calls_search'), 0)} | {_f(entry['index_seconds'], 0)} | "
                         f"{_f(cell.get('search_seconds'), 4)} / {_f(cell.get('search_seconds_with_ce'), 2)} |")
    lines += ["", "Settings of the headline rows: " + "; ".join(
        f"{m}: {', '.join(f'{k}={v}' for k, v in e['settings'].items())}" for m, e in entries.items()), ""]
    lines += ["### Rounds R (Top-1 / Top-10 / Top-100 Recall)", "", f"_{note}._", "", head,
              "|---|---|" + "---|" * len(budgets)]
    for method, fixed in (("axn_mf_ind", meta["axn_settings"]), ("axn_mf_trns", meta["axn_settings"]),
                          ("adacur", {"anchor_queries": meta["anchor_queries"]})):
        for rounds in meta["rounds"]:
            cells = []
            for budget in budgets:
                row = _find(grid, method=method, budget=budget, rounds=rounds,
                            **{k: v for k, v in fixed.items() if k != "rounds"})
                cells.append("–" if row is None else " / ".join(_f(row.get(f"top{k}_recall"), 2) for k in meta["top_ks"]))
            lines.append(f"| {method} | {rounds} | " + " | ".join(cells) + " |")
    variant_keys = ("method", "index_source", "first_round", "blend", "rounds", "index_queries")
    variants = list(dict.fromkeys(tuple(row[k] for k in variant_keys) for row in grid if row["method"].startswith("axn")
                                  and row["rounds"] == meta["axn_settings"]["rounds"]
                                  and row["index_queries"] == meta["train_queries"]))
    lines += ["", "### AXN variants (R = {}; Top-10-Recall)".format(meta["axn_settings"]["rounds"]), "", f"_{note}._", "",
              "| model | index source | first round | lambda | " + " | ".join(f"B={b}" for b in budgets) + " |",
              "|---|---|---|---|" + "---|" * len(budgets)]
    for variant in variants:
        cells = [_find(grid, **dict(zip(variant_keys, variant)), budget=b) for b in budgets]
        lines.append(f"| {variant[0]} | {variant[1]} | {variant[2]} | {variant[3]:g} | "
                     + " | ".join(_f(c.get("top10_recall") if c else None) for c in cells) + " |")
    cost = targets["index_cost"]
    lines += ["", f"### Index cost against Top-10-Recall@{cost['budget'] or '–'}", "", f"_{note}._", "",
              "| method | index queries / anchor queries | CE calls index | Top-10-Recall |", "|---|---|---|---|"]
    for name, points in (("axn_mf_ind", cost["axn_curve"]), ("anncur", cost["anncur_curve"]),
                         ("adacur", cost["adacur_curve"])):
        for p in points:
            lines.append(f"| {name} | {p['index_queries'] or p['anchor_queries']} | {p['ce_calls_index']:,} | "
                         f"{_f(p['recall'])} |")
    lines += ["", "### Targets", "", f"_{note}._ Each target is judged only at budgets every compared method has.", ""]
    for name in ("axn_beats_rerank", "axn_mf_trns_beats_rerank"):
        t = targets[name]
        lines.append(f"- {t['model']} beats DE retrieve-and-rerank at every compared budget "
                     f"({', '.join(f'B={b}' for b in t['budgets']) or 'none'}) for k = 1 and 10: "
                     f"{_verdict(t['holds'], t['judged'])} (" + "; ".join(
                         f"{c['budget']} k={c['k']}: {c['axn']:.3f} vs {c['retrieve_rerank_de']:.3f}"
                         for c in t["comparisons"]) + _not_judged(t["not_judged"]) + ")")
    for name in ("versus_anncur", "versus_adacur"):
        m = cost[name]
        lines.append(f"- index CE calls at matched Top-10-Recall@{cost['budget'] or '–'} ({_f(m['recall'])}), "
                     f"{name.split('_')[1]} / AXN: {_f(m['cur_ce_calls'])} / {_f(m['axn_ce_calls'])} = "
                     f"{_f(m['ratio'], 1)}x" + (f" (target >= 10x vs ANNCUR: {_verdict(cost['holds'], m['ratio'] is not None)}"
                                                f"{_not_judged(cost['not_judged'])})" if name == "versus_anncur" else ""))
    return "\n".join(lines) + "\n"


def _find(grid: list, **fixed) -> dict | None:
    for row in grid:
        if all(row.get(k) == v for k, v in fixed.items()):
            return row
    return None


def plot_knn(result: dict, path) -> None:
    """Recall against CE calls: Top-1 and Top-10 against the budget B (search CE calls per query,
    the same grid for every method), and Top-10 against index calls (log scale); the item set in
    the title and in the PNG's ``Description`` text. Written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from graphrel.run import atomic_path

    entries, cost, meta = result["knn"], result["targets"]["index_cost"], result["evaluation"]
    note = item_set_note(meta["item_set"])
    figure, axes = plt.subplots(1, 3, figsize=(15, 5))
    for axis, k in zip(axes[:2], (1, 10)):
        for method, entry in entries.items():
            points = [(b, entry[f"B={b}"][f"top{k}_recall"]) for b in meta["budgets"]
                      if f"top{k}_recall" in entry.get(f"B={b}", {})]
            if points:
                axis.plot(*zip(*points), marker="o", label=method)
        axis.set(xlabel="budget B: CE calls per query (search)", ylabel=f"Top-{k}-Recall", title=f"Top-{k}-Recall@B",
                 ylim=(0, 1.02))
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
                title=f"Top-10-Recall@{cost['budget'] or '–'} against index cost", ylim=(0, 1.02))
    axes[2].grid(alpha=0.3)
    if axes[2].get_legend_handles_labels()[0]:
        axes[2].legend(fontsize=8)
    figure.suptitle(_wrap(note), fontsize=9)
    figure.tight_layout(rect=(0, 0, 1, 0.93))
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110, metadata={"Title": "CE k-NN search", "Description": note})
    plt.close(figure)


def _wrap(text: str, width: int = 150) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))
