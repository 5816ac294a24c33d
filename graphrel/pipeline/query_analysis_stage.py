"""Per-query analysis of the evaluated test pairs: figures per query, slices by query
frequency and length, the worst queries of the best student, TREC run files.

Runs after the evaluation on its predictions (``test_predictions.parquet``: every model
under both protocols on the same pairs) with :mod:`graphrel.pipeline.query_analysis`:

- ``metrics.json``'s ``query_analysis``: ``per_query`` (each model column's AUC, Spearman
  and NDCG per query, None where undefined), ``slices`` (head / torso / tail by the query's
  judged pairs in the log, and query length in words; every figure with its 95% interval
  and the difference from the teacher), ``worst_queries`` (the best student under
  ``new_query`` against the teacher: its 20 queries of most negative NDCG difference);
- ``RUN/runs/``: one TREC run file per model column and ``qrels.txt`` (ir-measures, ranx
  and trec_eval read them).

The best student is the one with the highest ``new_query`` AUC on these test pairs: a
choice of which list to show, not of any setting.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from graphrel.pipeline import query_analysis as Q
from graphrel.run import atomic_path
from graphrel.pipeline.evaluation import label_scale

#: Where the TREC run files and qrels go, in the run directory.
RUNS_DIR = "runs"
#: The report's section on queries (slices, worst queries), in the run directory.
QUERIES_MARKDOWN = "queries.md"
#: Queries in the worst-queries list.
WORST_QUERIES = 20


def analyse_queries(config, run_dir: str | Path, scored: pd.DataFrame, metrics: dict) -> dict:
    """Per-query figures, slices, worst queries and TREC runs of a run's evaluated pairs.

    Args:
        config: the :class:`~graphrel.pipeline.config.PipelineConfig` (``seed``,
            ``evaluation.bootstrap_resamples``, ``evaluation.ndcg_min_pairs``).
        run_dir: a run whose evaluation wrote ``test_predictions.parquet``.
        scored: every pair of the run (``query_id``, ``query``, ``split``): the log's judged
            pairs per query (transfer candidates left out) and the query texts.
        metrics: the evaluation's figures (which student is best under ``new_query``).

    Returns:
        ``{"per_query", "slices", "worst_queries": {"student", "min_pairs", "queries": [...]},
        "runs": {"qrels", "runs", "grades"}}`` for ``metrics.json``; the report's section is
        written to ``RUN/queries.md``.
    """
    run_dir = Path(run_dir)
    e = config.evaluation
    low, high = label_scale(run_dir)
    threshold = (metrics["relevance_threshold"] - low) / (high - low)
    test = pd.read_parquet(run_dir / "test_predictions.parquet")
    columns = [c for c in test.columns if c not in ("query_id", "product_id", "label")]
    judged = scored[scored["split"] != "transfer"]
    counts = judged.groupby("query_id").size()
    texts = scored.drop_duplicates("query_id").set_index("query_id")["query"]
    slices = Q.query_slices(test["query_id"], counts, texts)  # once per evaluated pair: thirds of the pairs
    figures = Q.slice_figures(test, columns, slices, threshold=threshold, label_range=high - low,
                              resamples=e.bootstrap_resamples, seed=config.seed, min_pairs=e.ndcg_min_pairs)
    models = metrics["protocols"]["new_query"]["models"]
    students = [name for name in models if name.startswith("student") and f"{name}:new_query" in test]
    best = max(students, key=lambda name: models[name]["auc"]) if students else None
    out = {"per_query": Q.per_query_records(test, columns, threshold=threshold, min_pairs=e.ndcg_min_pairs),
           "slices": figures,
           "runs": Q.write_trec_runs(test, columns, run_dir / RUNS_DIR, label_scale=(low, high))}
    sections = ["## Queries: slices and the worst queries", "",
                "Every model on the evaluated pairs of each slice of test queries, 95% intervals from a paired "
                "bootstrap over that slice's queries; ▲ / ▼: the difference from the teacher has an interval above / "
                "below 0. Frequency: head / torso / tail hold a third of the evaluated pairs each, queries ordered "
                "by their judged pairs in the whole log (Home Depot has no traffic counts). Per-query AUC, Spearman "
                f"and NDCG of every model are in metrics.json; TREC run files and qrels in `{RUNS_DIR}/`.", "",
                Q.slices_markdown(figures, columns)]
    if best is not None:
        worst = Q.worst_queries(test, f"{best}:new_query", texts=texts, threshold=threshold, count=WORST_QUERIES)
        out["worst_queries"] = {"student": f"{best}:new_query", "min_pairs": int(worst.attrs.get("min_pairs", 2)),
                                "queries": _records(worst)}
        sections += [f"### The {WORST_QUERIES} worst queries of `{best}` (best student by `new_query` AUC) "
                     "against the teacher", "",
                     "Start from any of them with `graphrel inspect --run-dir RUN --query 'QUERY TEXT' "
                     f"--pair-product-id PRODUCT`.", "", Q.worst_queries_markdown(worst)]
    with atomic_path(run_dir / QUERIES_MARKDOWN) as tmp:
        tmp.write_text("\n".join(sections), encoding="utf-8")
    return out


def _records(worst: pd.DataFrame) -> list[dict]:
    """The worst queries as JSON records, one per query with its pairs."""
    records = []
    for query_id, group in worst.groupby("query_id", sort=False):
        first = group.iloc[0]
        records.append({"query_id": str(query_id), "query": str(first["query"]), "pairs": int(first["pairs"]),
                        "teacher_ndcg": float(first["teacher_ndcg"]), "student_ndcg": float(first["student_ndcg"]),
                        "ndcg_difference": float(first["ndcg_difference"]),
                        "products": [{"product_id": str(r.product_id), "label": float(r.label),
                                      "teacher_score": float(r.teacher_score), "student_score": float(r.student_score)}
                                     for r in group.itertuples(index=False)]})
    return records
