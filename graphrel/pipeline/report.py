"""Run report: ``report.md`` (one metrics table per evaluation protocol, with ratios to the
teacher) and a plot of student vs teacher scores on the evaluated test pairs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from graphrel.run import atomic_path

PLOT = "student_vs_teacher.png"


def markdown_table(rows: list[dict], *, align: str = "left") -> str:
    """A markdown table, one row per dict (keys: the column headers), of cells formatted by
    the caller: strings are written as they are (``disable_numparse``: ``"1,234"`` and
    ``"0.500"`` stay so). ``align="right"`` right-aligns every column (``---:``)."""
    frame = pd.DataFrame(rows)
    if align == "right":
        return frame.to_markdown(index=False, disable_numparse=True, tablefmt="pipe",
                                 colalign=("right",) * len(frame.columns))
    return frame.to_markdown(index=False, disable_numparse=True, tablefmt="github")


def _with_interval(values: dict, figure: str) -> str:
    low, high = values.get("intervals", {}).get(figure, (float("nan"), float("nan")))
    return f"{values[figure]:.3f} [{low:.3f}, {high:.3f}]"


def _speed(values: dict) -> str:
    if "pairs_per_second" not in values:
        return "–"
    if "pairs_per_second_min" not in values:
        return f"{values['pairs_per_second']:,.0f}"
    return (f"{values['pairs_per_second']:,.0f} ({values['pairs_per_second_min']:,.0f}–"
            f"{values['pairs_per_second_max']:,.0f})")


def _paths(values: dict) -> str:
    paths = values.get("paths")
    if not paths:
        return ""
    if "same_computation_as" in values:
        return (f"= {values['same_computation_as']}: text fallback for {paths['text_fallback']:,} of "
                f"{paths['text_fallback'] + paths['graph']:,} pairs")
    line = f"graph {paths['graph']:,}, text fallback {paths['text_fallback']:,}"
    if "built_neighbourhood" in paths:
        line += (f" (built neighbourhood {paths['built_neighbourhood']:,}, "
                 f"nothing known {paths['nothing_known']:,})")
    return line


def metrics_table(models: dict, label_scale: tuple[float, float] = (1.0, 3.0)) -> str:
    """Markdown table: one row per model: each figure with its 95% interval, % of the teacher
    (AUC, Spearman), pairs/s (median, slowest–fastest repetition), speed-up, scoring paths.

    Args:
        models: model name -> metrics (``rmse``, ``auc``, ``spearman``, ``ndcg``, ``intervals``,
            ``pairs_per_second`` (+ ``_min`` / ``_max``); students also ``ratio_to_teacher``,
            ``speedup_vs_teacher``, ``paths``, ``same_computation_as``).
        label_scale: (min, max) of the labels, named in the RMSE column.
    """
    low, high = label_scale
    rows = []
    fp32 = "fp32_pairs_per_second" in models.get("teacher", {})  # the teacher ran on another backend
    for name, m in models.items():
        ratio = m.get("ratio_to_teacher")
        if name == "teacher" and "backend" in m:
            name = f"teacher ({m['backend']}; eager fp32: {m['fp32_pairs_per_second']:,.0f} pairs/s)"
        same = m.get("same_computation_as")
        rows.append({"model": name, f"RMSE ({low:g}-{high:g})": _with_interval(m, "rmse"),
                     "AUC": _with_interval(m, "auc"), "Spearman": _with_interval(m, "spearman"),
                     "NDCG": _with_interval(m, "ndcg") if "ndcg" in m else "",
                     "AUC % teacher": f"{100 * ratio['auc']:.1f}%" if ratio else "100%",
                     "Spearman % teacher": f"{100 * ratio['spearman']:.1f}%" if ratio else "100%",
                     "pairs/s (min–max)": f"= {same}" if same else _speed(m),
                     "speed-up x teacher": (f"= {same}" if same else f"{m['speedup_vs_teacher']:,.1f}x"
                                            if ratio and "speedup_vs_teacher" in m else "1x"),
                     **({"x eager fp32 teacher": (f"= {same}" if same else f"{m['speedup_vs_teacher_fp32']:,.1f}x"
                                                  if "speedup_vs_teacher_fp32" in m else
                                                  f"{m['pairs_per_second'] / m['fp32_pairs_per_second']:.2f}x"
                                                  if "fp32_pairs_per_second" in m else "")}
                        if fp32 else {}),
                     "scoring paths": _paths(m)})
    return markdown_table(rows)


def protocol_tables(metrics: dict) -> str:
    """Per protocol (``new_query`` first): the metrics table, the differences against the
    teacher and ``student_k0`` with their intervals, and the reading generated from them."""
    from graphrel.pipeline.reading import difference_rows, reading

    ndcg = metrics.get("ndcg", {})
    parts = []
    for protocol, description in PROTOCOL_TEXT.items():
        if protocol not in metrics["protocols"]:
            continue
        models = metrics["protocols"][protocol]["models"]
        parts += [f"### {protocol}: {description}", "", metrics_table(models, tuple(metrics["label_scale"])), ""]
        if ndcg:
            parts += [f"NDCG: each query's whole ranking of its evaluated pairs, over the {ndcg['queries']:,} queries "
                      f"with at least {ndcg['min_pairs']} of them; a random order scores {ndcg['random_order']:.3f} "
                      "there.", ""]
        differences = difference_rows(models)
        if differences:
            parts += [f"Differences under `{protocol}` (95% interval; ▲ better, ▼ worse: the interval excludes 0):",
                      "", markdown_table(differences), "", "Reading:", "", *reading(models, protocol), ""]
    return "\n".join(parts)


PROTOCOL_TEXT = {
    "new_query": "the query is new to the log (no edge of any val or test query in the graph)",
    "new_pairs": "new candidates of a logged query (the query's other judged pairs are teacher-scored "
                 "graph context; the evaluated pairs are not edges)",
}


def plot_students_vs_teacher(predictions: pd.DataFrame, path: str | Path) -> None:
    """Scatter of each student's test scores against the teacher's: one panel per column
    ``"<student>:<protocol>"`` of ``predictions``, a row per protocol."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = [c for c in predictions.columns if c.startswith("student")]
    protocols = list(dict.fromkeys(c.split(":")[-1] for c in columns)) or [""]
    students = list(dict.fromkeys(c.split(":")[0] for c in columns)) or [""]
    fig, axes = plt.subplots(len(protocols), len(students), figsize=(5 * len(students), 4.6 * len(protocols)),
                             squeeze=False)
    for row, protocol in enumerate(protocols):
        for ax, name in zip(axes[row], students):
            column = f"{name}:{protocol}"
            if column not in predictions:
                ax.set_axis_off()
                continue
            points = ax.scatter(predictions["teacher"], predictions[column], s=3, alpha=0.25,
                                c=predictions["label"], cmap="viridis", vmin=0, vmax=1)
            fig.colorbar(points, ax=ax, label="human label (normalised)")
            ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--")
            ax.set(xlabel="teacher score", ylabel=f"{name} score", xlim=(0, 1), ylim=(0, 1),
                   title=f"{name} vs teacher, {protocol} (evaluated test pairs; colour = human label)")
            ax.title.set_fontsize(9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def _retrieval_section(run_dir: Path, metrics: dict) -> list[str]:
    """The per-query section (``RUN/queries.md``: slices, worst queries), the retrieval stage's
    section (``RUN/retrieval/retrieval.md``) and the CE k-NN section (``RUN/knn/knn.md``) when
    this run has them."""
    from graphrel.run import KNN_DIR, RETRIEVAL_DIR

    sections = []
    for key, path in (("query_analysis", run_dir / "queries.md"), ("retrieval", run_dir / RETRIEVAL_DIR / "retrieval.md"),
                      ("knn", run_dir / KNN_DIR / "knn.md")):
        if key in metrics and path.is_file():
            sections += [path.read_text(encoding="utf-8").rstrip(), ""]
    return sections


def _deduplication_section(counts: dict | None) -> list[str]:
    """The text de-duplication counts (queries and titles compared by NFKC, case-folded,
    white-space-collapsed text)."""
    if not counts:
        return []
    removed, twins = counts["edges_removed"], counts["evaluated_pairs_with_a_removed_twin"]
    return ["## Text de-duplication", "",
            f"Texts are compared by key (Unicode NFKC, case-folded, white space collapsed). "
            f"{counts['query_ids_sharing_a_text']:,} query ids share their text with another id (each such "
            f"text is in one split); {counts['product_ids_sharing_a_title']:,} product ids share their title with "
            "another id. Edges whose (query, title) text pair is an evaluated pair's, under another id, are "
            "removed from the graphs: "
            + "; ".join(f"`{p}` {removed[p]:,} edges ({twins[p]:,} evaluated pairs had such a twin)" for p in removed)
            + ".", ""]


def _teacher_backend_section(record: dict | None) -> list[str]:
    """Which backend labelled the pairs, and every backend's agreement with fp32 and speed."""
    if not record:
        return []
    rows = [{"backend": name, "pairs/s": f"{row['pairs_per_second']:,.0f}", "x fp32": f"{row['speedup']:.2f}",
             "Spearman with fp32": "–" if row["spearman"] is None else f"{row['spearman']:.5f}",
             "max logit difference": f"{row['max_abs_logit_difference']:.3f}"}
            for name, row in record["agreement"]["backends"].items()]
    return ["## Teacher scoring backend", "",
            f"The pairs were labelled with **{record['backend']}** ({record['reason']}). Every backend on "
            f"{record['held_pairs']} held pairs, the same batches, median of "
            f"{record['agreement'].get('repeats', '?')} interleaved repetitions:", "", markdown_table(rows), ""]


def _calibration_section(calibration: dict | None) -> list[str]:
    """ECE and squared error before and after calibration per model column, and the
    reliability diagrams (:mod:`graphrel.pipeline.calibration_stage`)."""
    if not calibration:
        return []
    from graphrel.pipeline.calibration_stage import RELIABILITY_PLOT

    def figure(value) -> str:
        return "–" if value is None else f"{value:.4f}"

    rows = [{"model": column, "method (chosen on validation)": values["method"],
             "ECE before": figure(values["test"]["ece_before"]), "ECE after": figure(values["test"]["ece_after"]),
             "MSE before": figure(values["test"]["mse_before"]), "MSE after": figure(values["test"]["mse_after"])}
            for column, values in calibration["models"].items()]
    low, high = calibration["label_scale"]
    return ["## Calibration", "",
            f"Each model's score in [0, 1] mapped to the expected label on the {low:g}–{high:g} scale "
            "(isotonic or Platt, chosen by out-of-fold squared error over validation queries) by a calibrator "
            f"fitted on the {calibration['fitted_on']}. Expected calibration error (10 equal-mass score bins: the "
            "pair-weighted gap between mean score and mean normalised label) and squared error on the test "
            "pairs, normalised scale, before and after. `graphrel score --calibrated` applies the model's "
            "`calibrator.json`.", "",
            markdown_table(rows), "", f"![reliability diagrams]({RELIABILITY_PLOT})", ""]


def write_report(run_dir: str | Path, metrics: dict) -> None:
    """Write ``report.md`` and the plot into ``run_dir``."""
    run_dir = Path(run_dir)
    predictions = pd.read_parquet(run_dir / "test_predictions.parquet")
    plot_students_vs_teacher(predictions, run_dir / PLOT)
    split, (low, high) = metrics["split"], metrics["label_scale"]
    threshold = metrics["relevance_threshold"]
    timing = metrics.get("timing", {})
    intervals = metrics.get("intervals", {})
    text = "\n".join([
        "# graphrel run report", "",
        f"Every model on the same **{split['test']['pairs']:,} evaluated pairs** of "
        f"{split['test']['queries']:,} unseen test queries (query-disjoint split). A student is for pairs "
        "the teacher has not scored: no evaluated pair is an edge of any graph a student was trained or "
        "scored with. Two protocols differ only in the graph the students read; text-only models "
        "(teacher, k=0 student, BERT2DNN) score the same in both.", "",
        f"RMSE on the label's scale ({low:g}-{high:g}); AUC with relevance = label >= {threshold:g}; "
        "Spearman over all pairs. Every figure carries its 95% interval: "
        f"{intervals.get('method', 'paired bootstrap over queries')}, {intervals.get('resamples', '?')} "
        "resamples, the same draws for every model. pairs/s: end to end from texts to scores "
        f"(as `graphrel score`), the median (slowest–fastest) of {timing.get('repeats', '?')} interleaved "
        "repetitions per model in this run, each after emptying the model's text caches and a warm-up on "
        f"{timing.get('warmup_pairs', '?')} other pairs. A graph student whose text fallback scored every pair "
        "is shown as that computation, without a speed of its own.",
        "", protocol_tables(metrics),
        "## Split", "",
        markdown_table([{"split": k, "pairs": f"{v['pairs']:,}", "queries": f"{v['queries']:,}"}
                        for k, v in split.items()]), "",
        "`test_context`: judged pairs of test queries kept in the graph (teacher-scored, labels hidden) "
        "under `new_pairs`; `test`: the evaluated pairs.", "",
        *_teacher_backend_section(metrics.get("teacher_backend")),
        *_calibration_section(metrics.get("calibration")),
        *_deduplication_section(metrics.get("deduplication")),
        *_retrieval_section(run_dir, metrics),
        "## Stage timings (s)", "",
        *[f"- {k}: {v}" for k, v in metrics.get("timings_seconds", {}).items()], "",
        f"![student vs teacher]({PLOT})", "",
    ])
    with atomic_path(run_dir / "report.md") as tmp:
        tmp.write_text(text)
