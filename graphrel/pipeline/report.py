"""Run report: ``report.md`` (one metrics table per evaluation protocol, with ratios to the
teacher) and a plot of student vs teacher scores on the evaluated test pairs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from graphrel.run import atomic_path

PLOT = "student_vs_teacher.png"
COLUMNS = ("rmse", "auc", "spearman", "ndcg@10", "pairs_per_second")


def markdown_table(rows: list[dict], *, align: str = "left") -> str:
    """A markdown table, one row per dict (keys: the column headers), of cells formatted by
    the caller: strings are written as they are (``disable_numparse``: ``"1,234"`` and
    ``"0.500"`` stay so). ``align="right"`` right-aligns every column (``---:``)."""
    frame = pd.DataFrame(rows)
    if align == "right":
        return frame.to_markdown(index=False, disable_numparse=True, tablefmt="pipe",
                                 colalign=("right",) * len(frame.columns))
    return frame.to_markdown(index=False, disable_numparse=True, tablefmt="github")


def metrics_table(models: dict, label_scale: tuple[float, float] = (1.0, 3.0)) -> str:
    """Markdown table: one row per model, metrics, % of teacher (AUC, Spearman), speed-up.

    Args:
        models: model name -> metrics (``rmse``, ``auc``, ``spearman``, ``ndcg@10``,
            ``pairs_per_second``; students also ``ratio_to_teacher``, ``speedup_vs_teacher``).
        label_scale: (min, max) of the labels, named in the RMSE column.
    """
    low, high = label_scale
    rows = []
    for name, m in models.items():
        ratio = m.get("ratio_to_teacher")
        rows.append({"model": name, f"RMSE ({low:g}-{high:g})": f"{m['rmse']:.3f}", "AUC": f"{m['auc']:.3f}",
                     "Spearman": f"{m['spearman']:.3f}", "NDCG@10": f"{m['ndcg@10']:.3f}",
                     "pairs/s": f"{m['pairs_per_second']:,.0f}",
                     "AUC % teacher": f"{100 * ratio['auc']:.1f}%" if ratio else "100%",
                     "Spearman % teacher": f"{100 * ratio['spearman']:.1f}%" if ratio else "100%",
                     "speed-up x teacher": f"{m['speedup_vs_teacher']:,.1f}x" if ratio else "1x"})
    return markdown_table(rows)


def protocol_tables(metrics: dict) -> str:
    """One headed table per protocol (``new_query`` first), from a run's ``metrics.json``."""
    parts = []
    for protocol, description in PROTOCOL_TEXT.items():
        if protocol in metrics["protocols"]:
            parts += [f"### {protocol}: {description}", "",
                      metrics_table(metrics["protocols"][protocol]["models"], tuple(metrics["label_scale"])), ""]
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
    """The retrieval stage's section (``RUN/retrieval/retrieval.md``) and the CE k-NN section
    (``RUN/knn/knn.md``) when this run has them."""
    from graphrel.run import KNN_DIR, RETRIEVAL_DIR

    sections = []
    for key, path in (("retrieval", run_dir / RETRIEVAL_DIR / "retrieval.md"), ("knn", run_dir / KNN_DIR / "knn.md")):
        if key in metrics and path.is_file():
            sections += [path.read_text(encoding="utf-8").rstrip(), ""]
    return sections


def write_report(run_dir: str | Path, metrics: dict) -> None:
    """Write ``report.md`` and the plot into ``run_dir``."""
    run_dir = Path(run_dir)
    predictions = pd.read_parquet(run_dir / "test_predictions.parquet")
    plot_students_vs_teacher(predictions, run_dir / PLOT)
    split, (low, high) = metrics["split"], metrics["label_scale"]
    threshold = metrics["relevance_threshold"]
    timing = metrics.get("timing", {})
    text = "\n".join([
        "# graphrel run report", "",
        f"Every model on the same **{split['test']['pairs']:,} evaluated pairs** of "
        f"{split['test']['queries']:,} unseen test queries (query-disjoint split). A student is for pairs "
        "the teacher has not scored: no evaluated pair is an edge of any graph a student was trained or "
        "scored with. Two protocols differ only in the graph the students read; text-only models "
        "(teacher, k=0 student, BERT2DNN) score the same in both.", "",
        f"RMSE on the label's scale ({low:g}-{high:g}); AUC with relevance = label >= {threshold:g}; "
        "Spearman over all pairs; NDCG@10 per query, averaged. pairs/s: end to end from texts to scores "
        f"(as `graphrel score`), the median of {timing.get('repeats', '?')} runs per model in this run, each "
        f"after emptying the model's text caches and a warm-up on {timing.get('warmup_pairs', '?')} other pairs.",
        "", protocol_tables(metrics),
        "## Split", "",
        markdown_table([{"split": k, "pairs": f"{v['pairs']:,}", "queries": f"{v['queries']:,}"}
                        for k, v in split.items()]), "",
        "`test_context`: judged pairs of test queries kept in the graph (teacher-scored, labels hidden) "
        "under `new_pairs`; `test`: the evaluated pairs.", "",
        *_retrieval_section(run_dir, metrics),
        "## Stage timings (s)", "",
        *[f"- {k}: {v}" for k, v in metrics.get("timings_seconds", {}).items()], "",
        f"![student vs teacher]({PLOT})", "",
    ])
    with atomic_path(run_dir / "report.md") as tmp:
        tmp.write_text(text)
