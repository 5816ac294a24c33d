"""Run report: ``report.md`` (metrics table with ratios to the teacher) and a plot of
student vs teacher scores on the unseen test pairs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from graphrel.run import atomic_path

PLOT = "student_vs_teacher.png"
COLUMNS = ("rmse", "auc", "spearman", "ndcg@10", "pairs_per_second")


def metrics_table(models: dict) -> str:
    """Markdown table: one row per model, metrics, % of teacher (AUC, Spearman), speed-up."""
    lines = ["| model | RMSE (1-3) | AUC | Spearman | NDCG@10 | pairs/s | AUC % teacher | Spearman % teacher | speed-up x teacher |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, m in models.items():
        ratio = m.get("ratio_to_teacher")
        lines.append(
            f"| {name} | {m['rmse']:.3f} | {m['auc']:.3f} | {m['spearman']:.3f} | {m['ndcg@10']:.3f} | "
            f"{m['pairs_per_second']:,.0f} | "
            + (f"{100 * ratio['auc']:.1f}% | {100 * ratio['spearman']:.1f}% | {m['speedup_vs_teacher']:,.0f}x |"
               if ratio else "100% | 100% | 1x |"))
    return "\n".join(lines)


def plot_students_vs_teacher(predictions: pd.DataFrame, path: str | Path) -> None:
    """Scatter of each student's test scores against the teacher's (one panel per student)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    students = [c for c in predictions.columns if c.startswith("student")]
    fig, axes = plt.subplots(1, max(1, len(students)), figsize=(5 * max(1, len(students)), 4.6), squeeze=False)
    for ax, name in zip(axes[0], students):
        points = ax.scatter(predictions["teacher"], predictions[name], s=3, alpha=0.25,
                            c=predictions["label"], cmap="viridis", vmin=0, vmax=1)
        fig.colorbar(points, ax=ax, label="human label (normalised)")
        ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--")
        ax.set(xlabel="teacher score", ylabel=f"{name} score", xlim=(0, 1), ylim=(0, 1),
               title=f"{name} vs teacher (test pairs; colour = human label)")
        ax.title.set_fontsize(9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def write_report(run_dir: str | Path, metrics: dict) -> None:
    """Write ``report.md`` and the plot into ``run_dir``."""
    run_dir = Path(run_dir)
    predictions = pd.read_parquet(run_dir / "test_predictions.parquet")
    plot_students_vs_teacher(predictions, run_dir / PLOT)
    split = metrics["split"]
    text = "\n".join([
        "# graphrel run report", "",
        "Metrics on the **unseen test queries** (query-disjoint split). RMSE on the label's original scale; "
        "AUC with relevance = label >= 2.5 on 1-3 (normalised >= 0.75); NDCG@10 per query, averaged. "
        "pairs/s: end to end from texts to scores, as `graphrel score` does it, measured in this run.", "",
        metrics_table(metrics["models"]), "",
        "## Split", "",
        "| split | pairs | queries |", "|---|---|---|",
        *[f"| {k} | {v['pairs']:,} | {v['queries']:,} |" for k, v in split.items()], "",
        "## Stage timings (s)", "",
        *[f"- {k}: {v}" for k, v in metrics.get("timings_seconds", {}).items()], "",
        f"![student vs teacher]({PLOT})", "",
    ])
    with atomic_path(run_dir / "report.md") as tmp:
        tmp.write_text(text)
