"""Per-query analysis of the evaluated test pairs (``RUN/test_predictions.parquet``: ``query_id,
product_id, label`` in [0, 1], ``teacher``, ``<student>:<protocol>`` scores in [0, 1]) with the
query texts of the run's ``pairs.parquet``:

- :func:`per_query_figures`, :func:`per_query_records`: AUC, Spearman, NDCG of every query;
- :func:`query_slices`, :func:`slice_figures`, :func:`slices_markdown`: the evaluation's figures
  (:class:`~graphrel.pipeline.evaluation.QualityFigures`) on query slices (head / torso / tail;
  1, 2, 3, 4+ words), each with its 95% interval and difference from a baseline by the paired
  bootstrap over the slice's queries (:class:`graphrel.intervals.PairedBootstrap`: Efron &
  Tibshirani 1993; Sakai, "Evaluating evaluation metrics based on the bootstrap", SIGIR 2006);
- :func:`worst_queries`, :func:`worst_queries_markdown`: where a student falls furthest below
  the teacher in NDCG, with the pairs;
- :func:`write_trec_runs`: TREC runs and qrels of the evaluated pairs (trec_eval, ir_measures).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import ConstantInputWarning, mannwhitneyu, pearsonr, rankdata

from graphrel.metrics import per_query_ndcg
from graphrel.pipeline.evaluation import QualityFigures
from graphrel.pipeline.report import markdown_table
from graphrel.retrieval.measures.evaluation import write_trec_run
from graphrel.run import atomic_path

#: Slice kind (a column of :func:`query_slices`) -> its values in reading order.
SLICE_KINDS = {"frequency": ("head", "torso", "tail"), "length": ("1 word", "2 words", "3 words", "4+ words")}
SHOWN = {"auc": "AUC", "spearman": "Spearman", "ndcg": "NDCG"}


def per_query_figures(frame: pd.DataFrame, scores, *, threshold: float, min_pairs: int) -> pd.DataFrame:
    """AUC, Spearman and NDCG of each query's evaluated pairs, by SciPy (queries of one shape in
    one vectorised call: AUC = Mann-Whitney U / (positives * negatives), as ``roc_auc_score``;
    Spearman = Pearson correlation of midranks, as ``spearmanr``) and scikit-learn (NDCG).

    Args:
        frame: the evaluated pairs: ``query_id`` and ``label`` (N,) float in [0, 1], no NaN.
        scores: (N,) float scores of ``frame``'s pairs, in its row order; no NaN.
        threshold: normalised label at or above which a pair is relevant (AUC).
        min_pairs: fewest pairs a query needs for its NDCG, >= 2.

    Returns:
        One row per query, by sorted query id (as str, as the bootstrap's per-query figures):
        ``query_id, pairs``, ``auc`` in [0, 1] (NaN unless a pair is at or above ``threshold``
        and one below), ``spearman`` in [-1, 1] (NaN unless >= 3 pairs, labels and scores not
        constant), ``ndcg`` in [0, 1] (:func:`~graphrel.metrics.per_query_ndcg`: the whole
        ranking's; NaN below ``min_pairs`` pairs or all labels 0).

    Raises:
        ValueError: a missing column, ``scores`` of another length, NaN, ``min_pairs`` < 2.
    """
    labels, scores = _checked(frame, scores, min_pairs)
    ids, ndcg = per_query_ndcg(scores, labels, frame.query_id, min_pairs=min_pairs)
    groups = _groups(frame.query_id)
    sizes, relevant = np.array([len(g) for g in groups], dtype=np.int64), labels >= threshold - 1e-9
    positives = np.array([relevant[g].sum() for g in groups])
    aucs, correlations = np.full(len(ids), np.nan), np.full(len(ids), np.nan)
    for n, k in set(zip(sizes, positives)):
        if 0 < k < n:  # the relevant pairs first
            members = np.flatnonzero((sizes == n) & (positives == k))
            rows = np.stack([groups[i][np.argsort(~relevant[groups[i]], kind="stable")] for i in members])
            u = mannwhitneyu(scores[rows[:, :k]], scores[rows[:, k:]], axis=1, method="asymptotic").statistic
            aucs[members] = u / (k * (n - k))
    for n in set(sizes[sizes >= 3]):
        members = np.flatnonzero(sizes == n)
        rows = np.stack([groups[i] for i in members])
        s, y = scores[rows], labels[rows]
        varied = (np.ptp(s, axis=1) > 0) & (np.ptp(y, axis=1) > 0)
        if varied.any():
            correlations[members[varied]] = pearsonr(rankdata(s[varied], axis=1), rankdata(y[varied], axis=1),
                                                     axis=1).statistic
    return pd.DataFrame({"query_id": ids, "pairs": sizes, "auc": aucs, "spearman": correlations, "ndcg": ndcg})


def per_query_records(frame: pd.DataFrame, score_columns, *, threshold: float, min_pairs: int) -> dict:
    """:func:`per_query_figures` of every model (``score_columns``: name -> (N,) scores, or a
    list of ``frame``'s columns), for ``metrics.json``: model name -> list by sorted query id of
    ``{"query_id", "pairs", "auc", "spearman", "ndcg"}``, figures rounded to 6 decimals, None
    where undefined (never NaN)."""
    out = {}
    for name, scores in _score_columns(frame, score_columns).items():
        table = per_query_figures(frame, scores, threshold=threshold, min_pairs=min_pairs)
        out[name] = [{"query_id": q, "pairs": int(n), "auc": _number(a), "spearman": _number(r),
                      "ndcg": _number(g)} for q, n, a, r, g in table.itertuples(index=False)]
    return out


def query_slices(query_ids, log_counts, query_texts) -> pd.DataFrame:
    """The frequency and length slice of each evaluated query.

    Frequency is the number of pairs the query has in the whole log (every split): Home Depot
    has no traffic counts, so the pairs judged for a query stand in for how often the log shows
    it. Sorted by it, most frequent first (ties by query id), the queries are split by share of
    the evaluated pairs, as traffic usually is: a query whose pairs start in the first third of
    the evaluated pairs is ``head``, in the second ``torso``, after that ``tail`` (each slice
    holds about a third of the pairs, not of the queries). Length: whitespace tokens of the
    text, ``1 word`` (or none), ``2 words``, ``3 words``, ``4+ words``.

    Args:
        query_ids: (N,) the query of each evaluated pair (a query once per evaluated pair).
        log_counts: query id -> its pairs in the whole log (dict or Series, e.g.
            ``pairs.groupby("query_id").size()``); query_texts: query id -> its text.

    Returns:
        One row per query, by sorted query id: ``query_id`` (str), ``evaluated_pairs``,
        ``log_pairs``, ``words`` (int), ``frequency``, ``length`` (str).

    Raises:
        ValueError: a query without a count or a text, or with fewer log than evaluated pairs.
    """
    evaluated = pd.Series(np.asarray(query_ids).astype(str)).value_counts().sort_index()
    table = pd.DataFrame({"query_id": evaluated.index.to_numpy(), "evaluated_pairs": evaluated.to_numpy()})
    table["log_pairs"] = _by_id(log_counts).reindex(table.query_id).to_numpy()
    text = _by_id(query_texts).reindex(table.query_id)
    missing = table.query_id[table.log_pairs.isna() | text.isna().to_numpy()]
    if len(missing):
        raise ValueError(f"{len(missing)} evaluated queries have no log count or text, e.g. {missing.iloc[0]!r}")
    if (table.log_pairs < table.evaluated_pairs).any():
        raise ValueError("a query has fewer pairs in the log than evaluated: pass counts of every split")
    table["log_pairs"] = table.log_pairs.astype(np.int64)
    table["words"] = [len(str(t).split()) for t in text]
    ranked = table.sort_values(["log_pairs", "query_id"], ascending=[False, True], kind="mergesort")
    before, total = ranked.evaluated_pairs.cumsum() - ranked.evaluated_pairs, int(table.evaluated_pairs.sum())
    ranked["frequency"] = np.where(3 * before < total, "head", np.where(3 * before < 2 * total, "torso", "tail"))
    table = ranked.sort_index()
    table["length"] = [SLICE_KINDS["length"][min(max(w, 1), 4) - 1] for w in table.words]
    return table.reset_index(drop=True)


def slice_figures(frame: pd.DataFrame, score_columns, slices: pd.DataFrame, *, threshold: float,
                  label_range: float, resamples: int, seed: int, min_pairs: int, baseline: str = "teacher",
                  kinds=tuple(SLICE_KINDS)) -> dict:
    """Every model's figures on every query slice, with 95% intervals and differences.

    The evaluation's figures (``QualityFigures``: RMSE on the label scale, AUC, Spearman pooled
    over the slice's pairs; NDCG the mean per-query NDCG of its queries with >= ``min_pairs``
    pairs) on each slice's pairs only, with a paired bootstrap over that slice's queries (the
    same draws for every model).

    Args:
        frame: the evaluated pairs (``query_id``, ``label`` (N,) in [0, 1]).
        score_columns: model name -> (N,) scores, or a list of ``frame``'s columns.
        slices: ``query_id`` and the ``kinds`` columns (:func:`query_slices`), every query.
        threshold, label_range, resamples, seed, min_pairs: as ``QualityFigures``.
        baseline: the model every model's difference is taken from (itself included: 0).
        kinds: the slice columns to use.

    Returns:
        ``{kind: {slice: {"queries", "pairs", "ndcg_queries", "models": {name: {"rmse", "auc",
        "spearman", "ndcg", "intervals": {figure: [low, high]}, "differences": {baseline:
        {figure: {"difference", "interval"}}}}}}}}``, slices in reading order (empty ones left
        out); undefined figures (e.g. AUC with one relevance class) None, never NaN.

    Raises:
        ValueError: ``baseline`` not a model, a query without a slice, or as :func:`per_query_figures`.
    """
    columns = _score_columns(frame, score_columns)
    for scores in columns.values():
        _checked(frame, scores, min_pairs)
    if baseline not in columns:
        raise ValueError(f"baseline {baseline!r} is not among the models {list(columns)}")
    ids = frame.query_id.astype(str).to_numpy()
    table = slices.assign(query_id=slices.query_id.astype(str)).set_index("query_id")
    if not np.isin(ids, table.index).all():
        raise ValueError("a query of the frame has no slice")
    out = {}
    for kind in kinds:
        of_pair = table[kind].reindex(ids).to_numpy()
        known = SLICE_KINDS.get(kind, ())
        values = [v for v in known if v in set(of_pair)] + sorted(set(of_pair) - set(known))
        out[kind] = {}
        for value in values:
            rows = np.flatnonzero(of_pair == value)
            part = frame.iloc[rows][["query_id", "label"]].reset_index(drop=True)
            quality = QualityFigures(part, threshold=threshold, label_range=label_range, resamples=resamples,
                                     seed=seed, min_pairs=min_pairs)
            with warnings.catch_warnings():  # undefined figures (one class, no NDCG query): NaN
                warnings.simplefilter("ignore", RuntimeWarning)
                warnings.simplefilter("ignore", ConstantInputWarning)
                per_query = quality.of(baseline, columns[baseline][rows])["per_query"]  # first: the reference
                models = {}
                for name, scores in columns.items():
                    computed = quality.of(name, scores[rows])
                    models[name] = {**computed["values"], "intervals": computed["intervals"],
                                    "differences": {baseline: quality.difference(name, baseline)}}
            out[kind][value] = {"queries": int(part.query_id.nunique()), "pairs": len(rows),
                                "ndcg_queries": int(np.sum(~np.isnan(per_query))), "models": models}
    return _plain(out)


def slices_markdown(figures: dict, models, *, baseline: str = "teacher") -> str:
    """One markdown table per slice kind of :func:`slice_figures`' output, for ``models`` (names,
    in order): a row per slice and model (slice, queries, pairs, NDCG queries on the slice's
    first row), cells ``"0.712 [0.69, 0.73]"`` (95% interval), ▲/▼ where the difference from
    ``baseline`` has its interval above/below 0, ``–`` where undefined."""
    parts = []
    for kind, by_slice in figures.items():
        rows = []
        for value, entry in by_slice.items():
            first = {kind: value, "queries": f"{entry['queries']:,}", "pairs": f"{entry['pairs']:,}",
                     "NDCG queries": f"{entry['ndcg_queries']:,}"}
            rows += [{**({k: v if not i else "" for k, v in first.items()}), "model": name,
                      **{header: _cell(entry["models"][name], f, baseline) for f, header in SHOWN.items()}}
                     for i, name in enumerate(models)]
        parts += [f"Queries by {kind}:", "", markdown_table(rows), ""]
    return "\n".join(parts)


def worst_queries(frame: pd.DataFrame, student_column: str, *, texts, threshold: float, min_pairs: int = 2,
                  count: int = 20, teacher: str = "teacher") -> pd.DataFrame:
    """The ``count`` queries where the student's NDCG falls furthest below the teacher's.

    NDCG of each query's whole ranking of its evaluated pairs (no cut-off, gains = labels), on
    queries with >= ``min_pairs`` pairs whose labels are not all equal (else any order is
    perfect); ordered by student minus teacher NDCG, most negative first, ties by query id.

    Args:
        frame: the evaluated pairs: ``query_id, product_id, label`` and the two score columns.
        student_column, teacher: the score columns, e.g. ``"student_korder:new_query"``.
        texts: query id -> query text (dict or Series).
        threshold: as :func:`per_query_figures` (each query's AUC is given beside its NDCG).
        min_pairs: fewest pairs a query needs, >= 2; count: how many queries, >= 1.

    Returns:
        One row per pair of the chosen queries (worst first; a query's pairs in the student's
        order, ties by product id): ``query_id, query, pairs, teacher_ndcg, student_ndcg,
        ndcg_difference, teacher_auc, student_auc, product_id, label, teacher_score,
        student_score``; ``attrs``: ``student``, ``teacher``, ``min_pairs``.

    Raises:
        ValueError: ``count`` < 1, or as :func:`per_query_figures`.
    """
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    mine = per_query_figures(frame, frame[student_column], threshold=threshold, min_pairs=min_pairs)
    theirs = per_query_figures(frame, frame[teacher], threshold=threshold, min_pairs=min_pairs)
    by_query = frame.label.groupby(frame.query_id.astype(str).to_numpy())
    varied = (by_query.max() - by_query.min()).reindex(mine.query_id).to_numpy() > 0
    queries = pd.DataFrame({"query_id": mine.query_id, "pairs": mine.pairs, "teacher_ndcg": theirs.ndcg,
                            "student_ndcg": mine.ndcg, "ndcg_difference": mine.ndcg - theirs.ndcg,
                            "teacher_auc": theirs.auc, "student_auc": mine.auc})
    queries = queries[varied & queries.ndcg_difference.notna().to_numpy()].sort_values(
        ["ndcg_difference", "query_id"], kind="mergesort").head(count)
    queries.insert(1, "query", _by_id(texts).reindex(queries.query_id).to_numpy())
    queries["order"] = np.arange(len(queries))
    pairs = pd.DataFrame({"query_id": frame.query_id.astype(str), "product_id": frame.product_id.astype(str),
                          "label": frame.label, "teacher_score": frame[teacher],
                          "student_score": frame[student_column]})
    out = queries.merge(pairs, on="query_id").sort_values(["order", "student_score", "product_id"],
                                                          ascending=[True, False, True], kind="mergesort")
    out = out.drop(columns="order").reset_index(drop=True)
    out.attrs = {"student": student_column, "teacher": teacher, "min_pairs": min_pairs}
    return out


def worst_queries_markdown(worst: pd.DataFrame) -> str:
    """A markdown table of :func:`worst_queries`' output: a query's text, pairs and NDCGs on
    its first row, then one row per pair (product id, label, both scores; the student's
    order). Labels on the normalised [0, 1] scale."""
    student, teacher = worst.attrs.get("student", "student"), worst.attrs.get("teacher", "teacher")
    rows = []
    for number, (_, group) in enumerate(worst.groupby("query_id", sort=False), start=1):
        for i, p in enumerate(group.itertuples(index=False)):
            first = {"#": str(number), "query": str(p.query).replace("|", r"\|"), "pairs": str(p.pairs),
                     "NDCG student / teacher (Δ)": f"{p.student_ndcg:.3f} / {p.teacher_ndcg:.3f} "
                                                   f"({p.ndcg_difference:+.3f})"}
            rows.append({**{k: v if not i else "" for k, v in first.items()},
                         "product": str(p.product_id).replace("|", r"\|"), "label": f"{p.label:.3f}",
                         "teacher": f"{p.teacher_score:.3f}", "student": f"{p.student_score:.3f}"})
    caption = (f"Queries where `{student}` falls furthest below `{teacher}` in per-query NDCG (each query's "
               f"whole ranking of its evaluated pairs; queries with >= {worst.attrs.get('min_pairs', 2)} pairs "
               "and labels not all equal), most negative first; each query's pairs in the student's order.")
    return "\n".join([caption, "", markdown_table(rows) if rows else "(no query qualifies)", ""])


def write_trec_runs(frame: pd.DataFrame, score_columns, directory: str | Path, *,
                    label_scale: tuple[float, float]) -> dict:
    """TREC run files and qrels of the evaluated pairs, written atomically into ``directory``.

    One run per model, ``<name with ':' as '.'>.trec`` (by
    :func:`graphrel.retrieval.measures.evaluation.write_trec_run`: ``qid Q0 product_id rank score tag``,
    whitespace in query ids as ``_``): each query's pairs by score, ties by product id, the
    score written being ``pairs - rank + 1`` (as the retrieval stage's runs) so that trec_eval
    evaluates exactly that order. ``qrels.txt``: ``qid 0 product_id grade``, grade = the index
    of the label among the sorted distinct labels of the evaluated pairs (0 = lowest; compared
    on the original scale rounded to 6 decimals): an order-preserving integer grade, as TREC
    qrels need integers (trec_eval's NDCG gains the grade, not the label).

    Args:
        frame: the evaluated pairs: ``query_id, product_id, label`` (N,) in [0, 1].
        score_columns: model name -> (N,) scores, or a list of ``frame``'s columns.
        directory: where to write (created if absent).
        label_scale: (label_min, label_max) of the original scale, e.g. (1, 3).

    Returns:
        ``{"qrels": path, "runs": {name: path}, "grades": {grade: original label}}`` (paths as str).

    Raises:
        ValueError: a product id with whitespace, two query ids alike once whitespace is replaced.
    """
    directory = Path(directory)
    labels, _ = _checked(frame, np.zeros(len(frame)), 2)
    distinct, grades = np.unique(np.round(label_scale[0] + labels * (label_scale[1] - label_scale[0]), 6),
                                 return_inverse=True)
    qids, products = frame.query_id.astype(str), frame.product_id.astype(str)
    written = qids.str.replace(r"\s+", "_", regex=True)
    if products.str.contains(r"\s").any():
        raise ValueError("a product id holds whitespace: it cannot be written in TREC format")
    if pd.DataFrame({"q": qids, "w": written}).drop_duplicates().w.duplicated().any():
        raise ValueError("two query ids become the same once whitespace is replaced by '_'")
    qrels = directory / "qrels.txt"
    with atomic_path(qrels) as tmp:
        tmp.write_text("".join(f"{q} 0 {p} {g}\n" for q, p, g in zip(written, products, grades)), encoding="utf-8")
    runs = {}
    for name, scores in _score_columns(frame, score_columns).items():
        run = pd.DataFrame({"query_id": qids.to_numpy(), "product_id": products.to_numpy(),
                            "s": _checked(frame, scores, 2)[1]})
        run = run.sort_values(["query_id", "s", "product_id"], ascending=[True, False, True], kind="mergesort")
        run["rank"] = run.groupby("query_id").cumcount() + 1
        run["score"] = (run.groupby("query_id")["rank"].transform("size") - run["rank"] + 1).astype(float)
        tag = name.replace(":", ".")
        runs[name] = str(directory / f"{tag}.trec")
        write_trec_run(run, runs[name], tag=tag)
    return {"qrels": str(qrels), "runs": runs, "grades": {int(g): float(v) for g, v in enumerate(distinct)}}


def _checked(frame: pd.DataFrame, scores, min_pairs: int) -> tuple[np.ndarray, np.ndarray]:
    """(labels, scores) as float arrays, after the checks :func:`per_query_figures` names."""
    if missing := {"query_id", "label"} - set(frame.columns):
        raise ValueError(f"the frame lacks column(s) {sorted(missing)}")
    labels, scores = frame.label.to_numpy(float), np.asarray(scores, dtype=float)
    if scores.shape != labels.shape:
        raise ValueError(f"scores have shape {scores.shape}, the frame {labels.shape[0]} pairs")
    if np.isnan(labels).any() or np.isnan(scores).any():
        raise ValueError("NaN in labels or scores (test labels withheld? use test_predictions' label)")
    if min_pairs < 2:
        raise ValueError(f"min_pairs must be >= 2, got {min_pairs}")
    return labels, scores


def _groups(query_ids) -> list[np.ndarray]:
    """Row indices of each query, by sorted query id (as str)."""
    codes = np.unique(np.asarray(query_ids).astype(str), return_inverse=True)[1]
    order = np.argsort(codes, kind="stable")
    return np.split(order, np.cumsum(np.bincount(codes))[:-1])


def _score_columns(frame: pd.DataFrame, score_columns) -> dict[str, np.ndarray]:
    """model name -> (N,) float scores, from a mapping or a list of ``frame``'s columns."""
    if not isinstance(score_columns, Mapping):
        score_columns = {c: frame[c] for c in score_columns}
    return {str(k): np.asarray(v, dtype=float) for k, v in score_columns.items()}


def _by_id(values) -> pd.Series:
    """A dict or Series keyed by query id, as a Series indexed by the ids as str."""
    series = values if isinstance(values, pd.Series) else pd.Series(dict(values))
    return pd.Series(series.to_numpy(), index=series.index.astype(str))


def _number(value, digits: int = 6):
    """A float for JSON, rounded: None for NaN or infinity."""
    return round(float(value), digits) if np.isfinite(value) else None


def _plain(obj):
    """Nested dicts / lists, JSON-ready: NaN and infinity -> None, numpy scalars -> Python numbers."""
    return json.loads(json.dumps(obj, default=lambda o: o.item()), parse_constant=lambda _: None)


def _cell(model: dict, figure: str, baseline: str) -> str:
    """``"0.712 [0.69, 0.73]"`` with ▲/▼ when the difference from ``baseline`` excludes 0."""
    value, (low, high) = model[figure], model["intervals"][figure]
    if value is None:
        return "–"
    text = f"{value:.3f} [{low:.2f}, {high:.2f}]" if low is not None else f"{value:.3f}"
    low, high = model.get("differences", {}).get(baseline, {}).get(figure, {}).get("interval", (None, None))
    return text + (" ▲" if low is not None and low > 0 else " ▼" if high is not None and high < 0 else "")
