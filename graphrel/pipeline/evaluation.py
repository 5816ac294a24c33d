"""Honest evaluation of students: pairs the teacher has not scored
(:mod:`graphrel.pipeline.protocols`: ``new_query`` and ``new_pairs``, on the same pairs).

:func:`evaluate` is the pipeline's evaluation stage, and the only stage that reads the test
queries' labels (``test_labels.parquet``). For the teacher(s) and every student under both
protocols it gives:

- quality: RMSE (label scale), AUC, Spearman, and NDCG of each query's whole ranking over
  queries with at least ``evaluation.ndcg_min_pairs`` evaluated pairs, beside the NDCG a
  random order gets on those queries (:func:`graphrel.metrics.per_query_ndcg`);
- a 95% interval on each, and on each model's difference from the teacher and from
  ``student_k0`` (:class:`graphrel.intervals.PairedBootstrap`: queries resampled, the same
  draws for every model);
- the pairs each scoring path took (:meth:`graphrel.scoring.korder_scorer.StudentScorer.paths`);
  a graph student whose text fallback scored every pair under a protocol is recorded as
  that computation (``same_computation_as``), with no speed of its own;
- speed (:mod:`graphrel.pipeline.timing`): every model timed alike in this one call,
  ``evaluation.timing_repeats`` interleaved repetitions from empty text caches after the same
  warm-up; the median with the slowest and fastest repetition.
"""

from __future__ import annotations

import json
import platform
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from graphrel import run as R
from graphrel.errors import GraphrelInputError
from graphrel.intervals import POOLED_METRICS, PairedBootstrap
from graphrel.metrics import auc, per_query_ndcg, random_order_ndcg, rmse, spearman
from graphrel.pipeline.protocols import PROTOCOL_GRAPHS, PROTOCOLS, deduplication_counts
from graphrel.scoring.load import load_scorer
from graphrel.pipeline.timing import Timed, interleaved_seconds, speed
from graphrel.scoring.teacher_backends import RECORD as TEACHER_BACKEND
from graphrel.scoring.teacher_backends import teacher_forward
from graphrel.scoring.teacher_labelling import teacher_logits

#: Models every other model is compared with (when the run has them).
BASELINES = ("teacher", "student_k0")
#: Figures with an interval: pooled over pairs, and the per-query NDCG.
FIGURES = (*POOLED_METRICS, "ndcg")


def label_scale(run_dir: str | Path) -> tuple[float, float]:
    """(label_min, label_max) of a run's data (``label_scale.json``)."""
    scale = json.loads((Path(run_dir) / R.LABEL_SCALE).read_text())
    return scale["label_min"], scale["label_max"]


def validation_threshold(config, run_dir: str | Path) -> float:
    """``evaluation.relevance_threshold`` on the normalised [0, 1] label scale, for the
    validation figures that select checkpoints (``val_auc``); reads ``label_scale.json``."""
    low, high = label_scale(run_dir)
    return (relevance_threshold((low, high), config.evaluation.relevance_threshold) - low) / (high - low)


def relevance_threshold(scale: tuple[float, float], configured: float | None) -> float:
    """The relevance threshold of AUC on the data's label scale: ``configured``
    (``evaluation.relevance_threshold``), or three quarters up the scale if None.

    Raises:
        GraphrelInputError: a configured threshold outside the label scale.
    """
    low, high = scale
    if configured is None:
        return low + 0.75 * (high - low)
    if not low < configured <= high:
        raise GraphrelInputError(f"evaluation.relevance_threshold {configured} is outside the label scale "
                                 f"({low:g}, {high:g}]", fix="set evaluation.relevance_threshold in the config")
    return float(configured)




def add_ratios(models: dict) -> dict:
    """Add ``ratio_to_teacher`` (AUC, Spearman, NDCG) and ``speedup_vs_teacher`` (against the
    teacher as it ran: the backend that labelled the pairs) to every model but ``teacher``, in
    place, and ``speedup_vs_teacher_fp32`` (against the eager fp32 teacher, timed in the same
    repetitions) when the teacher ran on another backend (no speed-up for a model without a
    speed of its own); returns ``models``."""
    teacher = models["teacher"]
    for name, values in models.items():
        if name != "teacher":
            values["ratio_to_teacher"] = {k: values[k] / teacher[k] for k in ("auc", "spearman", "ndcg")}
            if "pairs_per_second" in values:
                values["speedup_vs_teacher"] = values["pairs_per_second"] / teacher["pairs_per_second"]
                if "fp32_pairs_per_second" in teacher:
                    values["speedup_vs_teacher_fp32"] = values["pairs_per_second"] / teacher["fp32_pairs_per_second"]
    return models


class QualityFigures:
    """Quality figures of scores on a set of judged pairs (the evaluated test pairs, or the
    validation pairs when a setting is chosen), with their 95% intervals and differences.

    Args:
        test: the judged pairs: ``query_id`` and ``label`` (N,) in [0, 1].
        threshold: normalised label at or above which a pair is relevant (AUC).
        label_range: width of the label scale (RMSE is reported on it).
        resamples, seed: of the :class:`~graphrel.intervals.PairedBootstrap` over queries.
        min_pairs: fewest pairs a query needs to count in the per-query NDCG.
    """

    def __init__(self, test: pd.DataFrame, *, threshold: float, label_range: float, resamples: int, seed: int,
                 min_pairs: int) -> None:
        self.test, self.threshold, self.label_range, self.min_pairs = test, threshold, label_range, min_pairs
        self.labels = test.label.to_numpy(float)
        self.bootstrap = PairedBootstrap(test.query_id.to_numpy(), self.labels, threshold=threshold,
                                         label_range=label_range, resamples=resamples, seed=seed)
        self._cache: dict[str, dict] = {}

    def of(self, key: str, scores: np.ndarray) -> dict:
        """``{"values", "intervals", "resampled", "per_query"}`` of (N,) ``scores``: RMSE, AUC,
        Spearman and NDCG, their intervals and resamples (cached by ``key``)."""
        if key not in self._cache:
            scores = np.asarray(scores, dtype=float)
            per_query = per_query_ndcg(scores, self.labels, self.test.query_id, min_pairs=self.min_pairs)[1]
            values = {"rmse": rmse(scores, self.labels, label_range=self.label_range),
                      "auc": auc(scores, self.labels, threshold=self.threshold),
                      "spearman": spearman(scores, self.labels), "ndcg": float(np.nanmean(per_query))}
            resampled = {m: self.bootstrap.figures(scores, m) for m in POOLED_METRICS}
            intervals = {m: list(self.bootstrap.bounds(resampled[m])) for m in POOLED_METRICS}
            intervals["ndcg"] = list(self.bootstrap.mean_interval(per_query))
            self._cache[key] = {"values": values, "intervals": intervals, "resampled": resampled,
                                "per_query": per_query}
        return self._cache[key]

    def difference(self, key: str, baseline: str) -> dict:
        """``{figure: {"difference": d, "interval": [low, high]}}`` of model ``key`` minus ``baseline``."""
        mine, theirs = self._cache[key], self._cache[baseline]
        out = {}
        for m in FIGURES:
            if m == "ndcg":
                bounds = self.bootstrap.mean_interval(mine["per_query"], theirs["per_query"])
            else:
                bounds = self.bootstrap.bounds(mine["resampled"][m] - theirs["resampled"][m])
            out[m] = {"difference": mine["values"][m] - theirs["values"][m], "interval": list(bounds)}
        return out


def evaluate(config, run_dir: str | Path, scored: pd.DataFrame, students: dict[str, Path], teacher,
             timings: dict[str, float]) -> dict:
    """Quality (with intervals) and speed of teacher and students on the evaluated test pairs,
    under both protocols. -> test_predictions.parquet; returns the content of metrics.json.

    Reads the test queries' labels (``test_labels.parquet``): the only stage that does.

    Args:
        config: the :class:`~graphrel.pipeline.config.PipelineConfig`.
        run_dir: the run directory.
        scored: every pair with its split and the run's teacher scores (test labels withheld).
        students: student name -> its directory.
        teacher: the fine-tuned cross-encoder.
        timings: stage name -> seconds, reported as is (the caller may still add to it).
    """
    e, run_dir = config.evaluation, Path(run_dir)
    scored = R.with_test_labels(scored, run_dir)
    test = scored[scored.split == "test"].reset_index(drop=True)
    warmup = scored[scored.split.isin(["val", "train"])].head(e.warmup_pairs)
    low, high = label_scale(run_dir)
    relevant_from = relevance_threshold((low, high), e.relevance_threshold)
    quality = QualityFigures(test, threshold=(relevant_from - low) / (high - low), label_range=high - low,
                       resamples=e.bootstrap_resamples, seed=config.seed, min_pairs=e.ndcg_min_pairs)
    backend = teacher_backend(run_dir)  # the backend that labelled the pairs: the teacher is timed on it
    scores, computations = _text_models(test, teacher, config.teacher, run_dir, backend)
    routes = {}  # (student, protocol) -> paths
    for name, directory in students.items():
        scorer = load_scorer(directory, graph=run_dir / PROTOCOL_GRAPHS["new_pairs"])
        paths = scorer.paths(test.query_id, test.product_id, queries=test["query"])
        if "text" in paths:  # text only: one computation for both protocols
            scores[name] = scorer.score(test.query_id, test["query"], test.product_id, test.product_text)
            computations[name] = _timed(scorer)
            continue
        scorers = {"new_pairs": (scorer, paths)}
        for protocol in PROTOCOLS:
            if protocol not in scorers:
                other = load_scorer(directory, graph=run_dir / PROTOCOL_GRAPHS[protocol])
                scorers[protocol] = (other, other.paths(test.query_id, test.product_id, queries=test["query"]))
            scorer, paths = scorers[protocol]
            key = f"{name}:{protocol}"
            scores[key] = scorer.score(test.query_id, test["query"], test.product_id, test.product_text)
            routes[key] = paths
            if not _delegated(paths, scores[key], scores.get("student_k0")):
                computations[key] = _timed(scorer)
    seconds = interleaved_seconds(computations, test, warmup=warmup, repeats=e.timing_repeats)
    speeds = {key: speed(values, len(test)) for key, values in seconds.items()}
    if "teacher_stack" in scores:  # the stack runs both teachers
        speeds["teacher_stack"] = {k: 1 / (1 / speeds["teacher"][k] + 1 / speeds["teacher_lexical"][k])
                                   for k in ("pairs_per_second", "pairs_per_second_min", "pairs_per_second_max")}
    if FP32_TEACHER in speeds:  # timed only: its scores are not the run's teacher scores
        fp32 = speeds.pop(FP32_TEACHER)
        speeds["teacher"] = {**speeds["teacher"], "backend": backend,
                             **{f"fp32_{key}": value for key, value in fp32.items()}}
    protocols = {protocol: _protocol(quality, scores, speeds, routes, protocol) for protocol in PROTOCOLS}
    R.write_parquet(test[["query_id", "product_id", "label"]].assign(**_prediction_columns(scores, students)),
                    run_dir / "test_predictions.parquet")
    counts = {name: {"pairs": int((scored.split == name).sum()),
                     "queries": int(scored.loc[scored.split == name, "query_id"].nunique())}
              for name in ("train", "val", "test_context", "test", "transfer")}
    return {"protocols": protocols, "label_scale": [low, high], "relevance_threshold": relevant_from,
            "split": counts, "deduplication": deduplication_counts(scored), "config": asdict(config),
            "timings_seconds": timings,
            "timing": {"repeats": e.timing_repeats, "warmup_pairs": len(warmup), "interleaved": True,
                       "threads": torch.get_num_threads()},
            "intervals": {"method": "paired bootstrap over queries", "resamples": e.bootstrap_resamples,
                          "confidence": 0.95, "seed": config.seed},
            "ndcg": {"min_pairs": e.ndcg_min_pairs,
                     "queries": int(np.sum(~np.isnan(quality.of("teacher", scores["teacher"])["per_query"]))),
                     "random_order": random_order_ndcg(quality.labels, test.query_id, min_pairs=e.ndcg_min_pairs,
                                                       seed=config.seed)},
            "machine": {"cpu_threads": torch.get_num_threads(), "python": platform.python_version(),
                        "torch": torch.__version__}}


def _timed(scorer) -> Timed:
    return Timed(lambda f: scorer.score(f.query_id, f["query"], f.product_id, f.product_text),
                 scorer.reset_text_caches)


def _delegated(paths: dict, scores: np.ndarray, text_scores) -> bool:
    """Whether the text fallback (a frozen copy of ``student_k0``) scored every pair, with
    ``student_k0``'s very scores: then the row is that computation."""
    return (paths.get("graph", 1) == 0 and text_scores is not None
            and bool(np.array_equal(np.asarray(scores), np.asarray(text_scores))))


def _protocol(quality: QualityFigures, scores: dict, speeds: dict, routes: dict, protocol: str) -> dict:
    """One protocol's ``models`` entry: figures, intervals, differences, paths, speed."""
    models = {}
    for key in scores:
        name, _, own = key.partition(":")
        if own and own != protocol:
            continue
        figures = quality.of(name if not own else key, scores[key])
        models[name] = {**figures["values"], "intervals": figures["intervals"]}
        if key in routes:
            models[name]["paths"] = routes[key]
            if key not in speeds:
                models[name]["same_computation_as"] = "student_k0"
        if key in speeds:
            models[name].update(speeds[key])
    for name in models:
        if name in BASELINES[:1] or "same_computation_as" in models[name]:
            continue  # the teacher is the reference; a delegated row is its delegate's computation
        key = f"{name}:{protocol}" if f"{name}:{protocol}" in scores else name
        models[name]["differences"] = {
            base: quality.difference(key, base) for base in BASELINES if base in models and base != name}
    return {"models": add_ratios(models)}


def _prediction_columns(scores: dict, students: dict) -> dict:
    """test_predictions.parquet's columns: teachers by name, students as ``<name>:<protocol>``
    (a text-only student's one computation under both protocols' names)."""
    out = {}
    for key, values in scores.items():
        if key in students:
            out.update({f"{key}:{protocol}": np.asarray(values) for protocol in PROTOCOLS})
        else:
            out[key] = np.asarray(values)
    return out


#: The timed-only computation of the eager fp32 teacher when the run's teacher ran on another backend.
FP32_TEACHER = "teacher_fp32"


def teacher_backend(run_dir: Path) -> str:
    """The backend that labelled a run's pairs (``teacher_backend.json``; ``fp32`` for a run
    from before backends existed)."""
    path = Path(run_dir) / TEACHER_BACKEND
    return json.loads(path.read_text())["backend"] if path.is_file() else "fp32"


def _text_models(test: pd.DataFrame, teacher, teacher_config, run_dir: Path, backend: str) -> tuple[dict, dict]:
    """Test scores and timed computations of the text-only teachers: the cross-encoder, and in
    a stacked run the lexical teacher and the stack (timed as cross-encoder + lexical)."""
    scores = {"teacher": test.teacher_score.to_numpy()}
    forwards = {b: teacher_forward(teacher, b) for b in {backend, "fp32"}}  # built once, outside the timing

    def timed(name: str) -> Timed:
        return Timed(lambda f: teacher_logits(teacher, f["query"], f.product_text, progress=False,
                                              batch_size=teacher_config.score_batch_size, forward=forwards[name]))

    computations = {"teacher": timed(backend)}
    if backend != "fp32":  # the eager fp32 teacher, timed alike: every speed-up against it too
        computations[FP32_TEACHER] = timed("fp32")
    if "cross_encoder_logit" in test:
        # Stacked run: "teacher" is the cross-encoder; the stack and the lexical teacher get
        # their own rows (the stack's speed: both teachers one after the other).
        import joblib

        lexical = joblib.load(run_dir / R.STACK_DIR / "lexical_teacher.joblib")
        computations["teacher_lexical"] = Timed(lambda f: lexical.logits(f["query"], f.product_text))
        for name, column in (("teacher", "cross_encoder_logit"), ("teacher_lexical", "lexical_logit"),
                             ("teacher_stack", "teacher_logit")):
            scores[name] = 1 / (1 + np.exp(-test[column].to_numpy() / teacher_config.temperature))
    return scores, computations
