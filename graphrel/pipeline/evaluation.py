"""Honest evaluation of students: pairs the teacher has not scored.

A student exists for pairs the teacher has *not* scored, so no evaluated pair may be an edge
of a graph a student is trained or scored with (its edge would hold the teacher's score).
Every model is reported under two protocols, on the same evaluated pairs:

- ``new_query``: the query is new to the log. Every edge of val and test queries (labelled
  and transfer set) is absent from the graph the student reads (``graph_new_query.pt``);
  product-side neighbourhoods from training queries remain.
- ``new_pairs``: new candidates of a logged query. Each test query keeps a seeded share of
  its labelled pairs (split ``test_context``) and its transfer candidates in the graph as
  teacher-scored context (``graph.pt``); the other pairs (split ``test``) are absent from
  every graph and are the ones evaluated.

BERM (Liu et al., EMNLP 2022 Industry, arXiv 2210.01701) and BERT2DNN (Jiang et al., ICDM
2020, arXiv 2010.10442) report students on pairs outside their training graph; the two
protocols here are this project's reconstruction of that setting on a public log.

Speeds: every model gets the same warm-up (pairs other than the timed ones) and the median
of the same number of timed runs, each starting from empty text caches.

:func:`evaluate` is the pipeline's evaluation stage: quality and speed of the teacher(s) and
every student under both protocols.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from graphrel import run as R
from graphrel.errors import GraphrelInputError
from graphrel.metrics import relevance_metrics
from graphrel.scoring.load import load_scorer
from graphrel.scoring.teacher_labelling import teacher_logits

#: Protocol name -> the run's graph file a student reads neighbours from under it.
PROTOCOL_GRAPHS = {"new_query": "graph_new_query.pt", "new_pairs": "graph.pt"}
PROTOCOLS = tuple(PROTOCOL_GRAPHS)


def hold_out_test_pairs(labelled: pd.DataFrame, *, context_fraction: float, seed: int) -> pd.DataFrame:
    """Split each test query's labelled pairs into graph context and evaluated pairs.

    Per test query, ``floor(context_fraction * n)`` of its n labelled pairs, drawn with
    ``seed``, get split ``test_context`` (teacher-scored graph context under ``new_pairs``);
    the rest keep split ``test`` and are evaluated (a query with one pair keeps it evaluated).

    Args:
        labelled: pairs with ``query_id`` and ``split`` (train / val / test).
        context_fraction: share in [0, 1) of each test query's pairs kept as context.
        seed: draws the context pairs.

    Returns:
        A copy of ``labelled`` with the context pairs' ``split`` set to ``test_context``.

    Raises:
        ValueError: ``context_fraction`` outside [0, 1).
    """
    if not 0 <= context_fraction < 1:
        raise ValueError(f"context_fraction must be in [0, 1), got {context_fraction}")
    out = labelled.copy()
    is_test = (out["split"] == "test").to_numpy()
    rank = np.random.default_rng(seed).random(len(out))
    frame = pd.DataFrame({"query_id": out["query_id"].to_numpy(), "rank": rank})[is_test]
    position = frame.groupby("query_id")["rank"].rank(method="first").to_numpy() - 1  # 0 .. n-1
    size = frame.groupby("query_id")["rank"].transform("size").to_numpy()
    context = position < np.floor(context_fraction * size)
    split = out["split"].to_numpy(dtype=object).copy()
    split[np.flatnonzero(is_test)[context]] = "test_context"
    out["split"] = split
    return out


def protocol_edges(scored: pd.DataFrame, protocol: str) -> pd.DataFrame:
    """The pairs that are edges of a protocol's graph (never a ``test`` pair).

    Args:
        scored: every pair of a run with ``query_id`` and ``split``.
        protocol: ``new_query`` (pairs of training queries only: training pairs and their
            transfer candidates) or ``new_pairs`` (every pair but the evaluated ``test`` ones).

    Raises:
        ValueError: unknown protocol.
    """
    if protocol == "new_pairs":
        return scored[scored["split"] != "test"]
    if protocol == "new_query":
        train_queries = scored.loc[scored["split"] == "train", "query_id"].unique()
        keep = scored["query_id"].isin(train_queries) & scored["split"].isin(["train", "transfer"])
        return scored[keep]
    raise ValueError(f"unknown protocol {protocol!r}; choose from {PROTOCOLS}")


def median_seconds(score: Callable[[pd.DataFrame], object], pairs: pd.DataFrame, *, warmup: pd.DataFrame,
                   repeats: int, reset: Callable[[], None] | None = None) -> float:
    """Median wall time (s) of ``score(pairs)`` over ``repeats`` runs.

    Before each run ``reset()`` empties the model's text caches and ``score(warmup)`` (other
    pairs, untimed) warms up lazy state, so no run finds the timed texts already cached.

    Raises:
        ValueError: ``repeats`` < 1.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    seconds = []
    for _ in range(repeats):
        if reset is not None:
            reset()
        score(warmup)
        start = time.perf_counter()
        score(pairs)
        seconds.append(time.perf_counter() - start)
    return float(np.median(seconds))


def add_ratios(models: dict) -> dict:
    """Add ``ratio_to_teacher`` (AUC, Spearman, NDCG@10) and ``speedup_vs_teacher`` to every
    model but ``teacher``, in place; returns ``models``."""
    teacher = models["teacher"]
    for name, values in models.items():
        if name != "teacher":
            values["ratio_to_teacher"] = {k: values[k] / teacher[k] for k in ("auc", "spearman", "ndcg@10")}
            values["speedup_vs_teacher"] = values["pairs_per_second"] / teacher["pairs_per_second"]
    return models


def label_scale(run_dir: str | Path) -> tuple[float, float]:
    """(label_min, label_max) of a run's data (``label_scale.json``)."""
    scale = json.loads((Path(run_dir) / R.LABEL_SCALE).read_text())
    return scale["label_min"], scale["label_max"]


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


@dataclass
class _Bench:
    """Quality and speed of any model on the evaluated pairs ``test``, every model alike."""

    test: pd.DataFrame
    warmup: pd.DataFrame
    repeats: int
    label_range: float
    threshold: float  # relevance threshold on labels normalised to [0, 1]

    def quality(self, scores) -> dict:
        return relevance_metrics(scores, self.test.label, self.test.query_id, label_range=self.label_range,
                                 threshold=self.threshold)

    def speed(self, score, reset=None) -> float:
        """Pairs per second of ``score(frame)`` (:func:`median_seconds`)."""
        return len(self.test) / median_seconds(score, self.test, warmup=self.warmup, repeats=self.repeats,
                                               reset=reset)


def evaluate(config, run_dir: str | Path, scored: pd.DataFrame, students: dict[str, Path], teacher,
             timings: dict[str, float]) -> dict:
    """Metrics and speed of teacher and students on the evaluated test pairs, under both
    protocols. -> test_predictions.parquet; returns the content of metrics.json.

    Every model is timed the same way in this one call (speeds are compared as ratios:
    this machine's speed swings between stages): the median of ``timing_repeats`` runs
    over the evaluated pairs, each after emptying its text caches and a warm-up on
    validation pairs. Graph students are timed under each protocol with that protocol's
    graph (under ``new_query`` every test query is looked up and not found).

    Args:
        config: the :class:`~graphrel.pipeline.config.PipelineConfig`.
        run_dir: the run directory.
        scored: every pair with its split and the run's teacher scores.
        students: student name -> its directory.
        teacher: the fine-tuned cross-encoder.
        timings: stage name -> seconds, reported as is (the caller may still add to it).
    """
    e, run_dir = config.evaluation, Path(run_dir)
    test = scored[scored.split == "test"].reset_index(drop=True)
    warmup = scored[scored.split.isin(["val", "train"])].head(e.warmup_pairs)
    low, high = label_scale(run_dir)
    relevant_from = relevance_threshold((low, high), e.relevance_threshold)
    bench = _Bench(test, warmup, e.timing_repeats, high - low, (relevant_from - low) / (high - low))
    text_models, predictions = _text_models(bench, teacher, config.teacher, run_dir)
    protocols = {}
    for protocol in PROTOCOLS:
        models = {name: dict(values) for name, values in text_models.items()}
        for name, directory in students.items():
            models[name], predictions[f"{name}:{protocol}"] = _student(bench, directory,
                                                                       run_dir / PROTOCOL_GRAPHS[protocol])
        protocols[protocol] = {"models": add_ratios(models)}
    R.write_parquet(test[["query_id", "product_id", "label"]].assign(**predictions),
                    run_dir / "test_predictions.parquet")
    counts = {name: {"pairs": int((scored.split == name).sum()),
                     "queries": int(scored.loc[scored.split == name, "query_id"].nunique())}
              for name in ("train", "val", "test_context", "test", "transfer")}
    return {"protocols": protocols, "label_scale": [low, high], "relevance_threshold": relevant_from,
            "split": counts, "config": asdict(config), "timings_seconds": timings,
            "timing": {"repeats": e.timing_repeats, "warmup_pairs": len(warmup)},
            "machine": {"cpu_threads": torch.get_num_threads(), "python": platform.python_version(),
                        "torch": torch.__version__}}


def _text_models(bench: _Bench, teacher, teacher_config, run_dir: Path) -> tuple[dict, dict]:
    """Metrics and test scores of the text-only teachers: the cross-encoder, and in a
    stacked run the lexical teacher and the stack (timed as cross-encoder + lexical)."""
    test = bench.test
    teacher_speed = bench.speed(lambda f: teacher_logits(teacher, f["query"], f.product_text, progress=False,
                                                         batch_size=teacher_config.score_batch_size))
    models = {"teacher": {**bench.quality(test.teacher_score), "pairs_per_second": teacher_speed}}
    predictions = {"teacher": test.teacher_score.to_numpy()}
    if "cross_encoder_logit" in test:
        # Stacked run: "teacher" is the cross-encoder (timed above); the stack and the
        # lexical teacher get their own rows, timed with the stack (cross-encoder + lexical).
        import joblib

        lexical = joblib.load(run_dir / R.STACK_DIR / "lexical_teacher.joblib")
        lexical_speed = bench.speed(lambda f: lexical.logits(f["query"], f.product_text))
        for name, column, pairs_per_second in (
                ("teacher", "cross_encoder_logit", teacher_speed),
                ("teacher_lexical", "lexical_logit", lexical_speed),
                ("teacher_stack", "teacher_logit", 1 / (1 / teacher_speed + 1 / lexical_speed))):
            score = 1 / (1 + np.exp(-test[column].to_numpy() / teacher_config.temperature))
            models[name] = {**bench.quality(score), "pairs_per_second": pairs_per_second}
            predictions[name] = score
    return models, predictions


def _student(bench: _Bench, directory: Path, graph: Path) -> tuple[dict, np.ndarray]:
    """Metrics and test scores of one student reading ``graph`` (if it reads a graph)."""
    test = bench.test
    scorer = load_scorer(directory, graph=graph)
    scores = scorer.score(test.query_id, test["query"], test.product_id, test.product_text)
    quality = bench.quality(scores)
    speed = bench.speed(lambda f: scorer.score(f.query_id, f["query"], f.product_id, f.product_text),
                        scorer.reset_text_caches)
    return {**quality, "pairs_per_second": speed}, scores
