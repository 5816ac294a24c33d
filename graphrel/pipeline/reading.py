"""The report's reading, generated from the intervals: what differs and what does not.

A difference whose 95% interval (paired bootstrap over queries,
:class:`graphrel.intervals.PairedBootstrap`) holds 0 is written as no difference, whatever
its point estimate; only a difference whose interval excludes 0 is named, as better or
worse (for RMSE lower is better).
"""

from __future__ import annotations

#: Figure -> (label, higher is better).
FIGURES = {"auc": ("AUC", True), "spearman": ("Spearman", True), "rmse": ("RMSE", False), "ndcg": ("NDCG", True)}


def verdict(difference: dict, figure: str) -> str:
    """``"better"``, ``"worse"`` or ``"no difference"`` for one ``{"difference", "interval"}``."""
    low, high = difference["interval"]
    if low <= 0 <= high or low != low or high != high:  # holds 0, or undefined (NaN)
        return "no difference"
    higher = low > 0
    return "better" if higher == FIGURES[figure][1] else "worse"


def format_difference(difference: dict, digits: int = 3) -> str:
    """``+0.010 [+0.002, +0.018]``; more digits (up to 5) where a bound that is not 0 would
    print as 0 (a bound of +0.0003 excludes 0, "+0.000" would not say so)."""
    low, high = difference["interval"]
    while digits < 5 and any(bound != 0 and round(bound, digits) == 0 for bound in (low, high)):
        digits += 1
    return f"{difference['difference']:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]"


def difference_rows(models: dict) -> list[dict]:
    """One row per (model, baseline): each figure's difference with its interval and verdict."""
    rows = []
    for name, values in models.items():
        for base, differences in values.get("differences", {}).items():
            row = {"model": name, "minus": base}
            for figure, (label, _) in FIGURES.items():
                if figure in differences:
                    d = differences[figure]
                    mark = {"better": " ▲", "worse": " ▼", "no difference": ""}[verdict(d, figure)]
                    row[label] = format_difference(d) + mark
            rows.append(row)
    return rows


def reading(models: dict, protocol: str) -> list[str]:
    """Sentences for one protocol: per model and baseline, the figures that differ (interval
    excluding 0) and those that do not; a model that is another model's computation says so."""
    lines = []
    for name, values in models.items():
        if "same_computation_as" in values:
            paths = values.get("paths", {})
            lines.append(f"- `{name}` is `{values['same_computation_as']}` under `{protocol}`: its text "
                         f"fallback scored {paths.get('text_fallback', 0):,} of "
                         f"{paths.get('text_fallback', 0) + paths.get('graph', 0):,} pairs, so it is not "
                         "compared again.")
            continue
        for base, differences in values.get("differences", {}).items():
            if "same_computation_as" in models.get(base, {}):
                continue
            by_verdict: dict[str, list[str]] = {"better": [], "worse": [], "no difference": []}
            for figure, (label, _) in FIGURES.items():
                if figure in differences:
                    by_verdict[verdict(differences[figure], figure)].append(
                        f"{label} {format_difference(differences[figure])}")
            parts = []
            if by_verdict["better"]:
                parts.append("better on " + ", ".join(by_verdict["better"]))
            if by_verdict["worse"]:
                parts.append("worse on " + ", ".join(by_verdict["worse"]))
            if by_verdict["no difference"]:
                parts.append("no difference on " + ", ".join(f.split(" ")[0] for f in by_verdict["no difference"]))
            lines.append(f"- `{name}` against `{base}`: " + "; ".join(parts) + ".")
    return lines
