"""The main job, wired: split -> teacher fit -> teacher scoring -> (stacking) -> graphs ->
students -> evaluation -> report.

:class:`Pipeline` only wires: each stage is a unit of its own module (what it reads and
writes: :mod:`graphrel.pipeline.stages`), run through :meth:`Pipeline._stage`, which skips a
stage whose outputs exist and were built from the same config values and inputs
(:mod:`graphrel.pipeline.records`), and logs and times every stage.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pandas as pd
import torch

from graphrel import run as R
from graphrel.pipeline.config import PipelineConfig
from graphrel.pipeline.calibration_stage import calibrate_models
from graphrel.pipeline.evaluation import evaluate
from graphrel.scoring.teacher_backends import RECORD as TEACHER_BACKEND
from graphrel.pipeline.model_card import run_models, update_model_cards
from graphrel.pipeline.query_analysis_stage import analyse_queries
from graphrel.pipeline.graph_stage import build_graphs
from graphrel.pipeline.records import StageRecords
from graphrel.pipeline.report import write_report
from graphrel.pipeline.split_stage import split_pairs
from graphrel.pipeline.stacking_stage import stack_teachers
from graphrel.pipeline.stages import pipeline_stages
from graphrel.pipeline.student_stages import (StudentFeaturizer, fit_bert2dnn_student, fit_online_student,
                                              fit_student)
from graphrel.pipeline.teacher_stages import fit_teacher, score_with_teacher

log = logging.getLogger("graphrel")


class Pipeline:
    """Run the main job into ``run_dir`` (see :mod:`graphrel.run` for the layout).

    Args:
        config: the job's config (:mod:`graphrel.pipeline.config`).
        run_dir: the run directory; finished stages found there with the same key are reused.
        progress: show progress bars.
    """

    def __init__(self, config: PipelineConfig, run_dir: str | Path, *, progress: bool = True) -> None:
        self.config = config
        self.run_dir = Path(run_dir)
        self.progress = progress
        self.timings: dict[str, float] = {}
        self.stages = pipeline_stages(config)

    def run(self) -> dict:
        """Run every stage (skipping up-to-date ones) and write metrics.json and report.md;
        returns the metrics."""
        c, run_dir, progress = self.config, self.run_dir, self.progress
        run_dir.mkdir(parents=True, exist_ok=True)
        self.records = StageRecords(run_dir)
        torch.manual_seed(c.seed)
        pairs = self._stage("split", split_pairs, c, run_dir)
        teacher = self._stage("teacher_fit", fit_teacher, c, run_dir, pairs, progress=progress)
        scores = self._stage("teacher_scoring", score_with_teacher, c, run_dir, pairs, teacher, progress=progress)
        if c.stacking.enabled:
            scores = self._stage("teacher_stacking", stack_teachers, c, run_dir, pairs, scores)
        else:  # a stack left by an earlier run must not become this run's teacher score
            self.records.remove("teacher_stacking", [run_dir / o for o in self.stages["teacher_stacking"].outputs],
                                "stacking is off")
        scored = pairs.merge(scores, on=["query_id", "product_id"], how="left", validate="one_to_one")
        graph = self._stage("graph", build_graphs, run_dir, scored)
        students = self._students(scored, graph)
        metrics = self._stage("evaluate", evaluate, c, run_dir, scored, students, teacher, self.timings)
        if (run_dir / TEACHER_BACKEND).is_file():  # which backend labelled the pairs, its speed-up and agreement
            metrics["teacher_backend"] = json.loads((run_dir / TEACHER_BACKEND).read_text())
        metrics["calibration"] = self._stage("calibration", calibrate_models, c, run_dir, scored, students)
        metrics["query_analysis"] = self._stage("query_analysis", analyse_queries, c, run_dir, scored, metrics)
        if c.retrieval.enabled:
            metrics.update(self._retrieval())
        if c.knn.enabled:
            from graphrel.retrieval.knn.evaluation import run_knn_evaluation

            metrics["knn"] = self._stage("knn", run_knn_evaluation, run_dir, run_dir / R.KNN_DIR, c.knn)["knn"]
        R.write_json(metrics, run_dir / "metrics.json")
        write_report(run_dir, metrics)
        update_model_cards(run_dir, metrics, run_models(run_dir, students))  # the cards get the figures
        return metrics

    def _students(self, scored: pd.DataFrame, graph) -> dict[str, Path]:
        """Train the config's students (k=0, k-order, BERM-O, BERT2DNN); their directories by name."""
        c, run_dir, progress = self.config, self.run_dir, self.progress
        featurizers = StudentFeaturizer(run_dir, graph, c.student.cap, c.student.similar_queries,
                                        c.student.min_similarity)
        orders = {R.TEXT_STUDENT: 0, R.GRAPH_STUDENT: c.student.order}
        if c.student.order == 0:
            orders.pop(R.GRAPH_STUDENT)
        dirs = {}
        for name, order in orders.items():
            # the featurizer is asked for once the stage has removed outdated outputs
            dirs[name] = self._stage(name, lambda n=name, k=order: fit_student(
                c, run_dir, n, k, scored, featurizers.for_student(n), progress=progress))
        if c.student.online and R.GRAPH_STUDENT in dirs:
            dirs[R.ONLINE_STUDENT] = self._stage(R.ONLINE_STUDENT, lambda: fit_online_student(
                c, run_dir, scored, featurizers.for_student(R.ONLINE_STUDENT), dirs[R.GRAPH_STUDENT],
                progress=progress))
        if c.bert2dnn.enabled:
            dirs[R.BERT2DNN_STUDENT] = self._stage(R.BERT2DNN_STUDENT, fit_bert2dnn_student, c, run_dir, scored,
                                                   progress=progress)
        return dirs

    def _retrieval(self) -> dict:
        """The retrieval stage (catalogue retrieval and two-stage re-ranking) into ``RUN/retrieval``: not keyed here,
        since every retriever inside keeps its own build key (an interrupted stage resumes, a
        changed option rebuilds only what it changes). Returns the ``metrics.json`` entries
        ``retrieval``, ``retrieval_two_stage``, ``retrieval_index_comparison`` and
        ``retrieval_teacher_geometry``."""
        from graphrel.retrieval.stage import run_retrieval

        result = self._stage("retrieval", run_retrieval, self.run_dir, self.run_dir / R.RETRIEVAL_DIR,
                             self.config.retrieval)
        return {"retrieval": result["retrieval"], "retrieval_two_stage": result["two_stage"],
                "retrieval_index_comparison": result["index_comparison"],
                "retrieval_teacher_geometry": result["teacher_geometry"]}

    def _stage(self, name: str, function, *args, **kwargs):
        """Run ``function(*args, **kwargs)`` as stage ``name``. A keyed stage (one of
        :attr:`stages`) first has its outputs (and scratch) of another key removed, and
        ``function`` reloads outputs that are up to date; its key is recorded once it
        finishes. Every stage is logged and timed."""
        start = time.perf_counter()
        stage = self.stages.get(name)
        fresh = True
        if stage is not None:
            key = stage.key(self.records.fingerprint)
            fresh = not self.records.up_to_date(name, key, [self.run_dir / o for o in stage.outputs],
                                                [self.run_dir / o for o in stage.scratch])
        log.info("stage %s %s", name, "..." if fresh else "is up to date: reusing its outputs")
        result = function(*args, **kwargs)
        if stage is not None:
            self.records.finished(name, key)
        self.timings[name] = round(time.perf_counter() - start, 1)
        log.info("stage %s done in %.1fs", name, self.timings[name])
        return result
