"""The main job's stages, declared: what each writes, reads and is keyed on.

A stage's *key* is the config values its outputs depend on plus, under ``inputs``, the
fingerprints of the stages whose outputs it reads; :class:`~graphrel.pipeline.records.
StageRecords` keeps the key of every finished stage in ``stages.json`` and re-runs a stage
whose key changed (so a changed value re-runs every stage that reads, however indirectly,
what it changed). Keys are part of every finished run: changing what goes into one re-runs
that stage of every existing run directory.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable

from graphrel import run as R
from graphrel.pipeline.config import PipelineConfig
from graphrel.pipeline.protocols import PROTOCOL_GRAPHS
from graphrel.scoring.teacher_backends import RECORD as TEACHER_BACKEND


@dataclass(frozen=True)
class Stage:
    """One stage of the main job.

    Args:
        name: the stage's name in ``stages.json`` and in the log.
        outputs: the files and folders it writes, relative to the run directory.
        reads: the stages whose outputs it reads, by the name their fingerprint has in its
            key (``{"scores": "teacher_stacking"}``).
        values: the config values its outputs depend on.
        scratch: work in progress it may leave (removed with the outputs when the key changes).
    """

    name: str
    outputs: tuple[str, ...]
    reads: dict[str, str] = field(default_factory=dict)
    values: dict = field(default_factory=dict)
    scratch: tuple[str, ...] = ()

    def key(self, fingerprint: Callable[[str], str | None]) -> dict:
        """The stage's key, given ``fingerprint(stage)`` of the finished stages it reads."""
        if not self.reads:
            return dict(self.values)
        return {"inputs": {name: fingerprint(stage) for name, stage in self.reads.items()}, **self.values}


def pipeline_stages(c: PipelineConfig) -> dict[str, Stage]:
    """Every keyed stage of the main job with config ``c``, by name (the evaluation is not
    keyed: it runs every time). Students and the graph read the stack's scores when
    ``stacking.enabled``, else the cross-encoder's."""
    scores = "teacher_stacking" if c.stacking.enabled else "teacher_scoring"
    backbone = {"backbone": c.teacher.backbone, "backbone_config": c.teacher.backbone_config}
    student = {k: v for k, v in asdict(c.student).items() if k != "online"}
    if c.student.ranking_loss == "none":  # trains as before the option existed: finished runs keep their students
        student = {k: v for k, v in student.items() if k not in ("ranking_loss", "ranking_weight")}
    text_only = ("order", "cap", "new_query_share", "neighbourhood_statistics", "text_fallback",  # no graph
                 "similar_queries", "min_similarity")
    # graph students start their text fallback from the text student's weights
    fallback = {R.TEXT_STUDENT: R.TEXT_STUDENT} if c.student.text_fallback else {}
    threshold = {"relevance_threshold": c.evaluation.relevance_threshold}  # selects checkpoints (val_auc)
    # the backend changes the scores (fp32: as before backends existed, finished runs keep theirs);
    # agreement_pairs can change which backend ``auto`` (or a named one that may fail) runs
    backend = {} if c.teacher.scoring_backend == "fp32" else \
        {"scoring_backend": c.teacher.scoring_backend, "agreement_pairs": c.teacher.agreement_pairs}
    stages = [
        Stage("split", (R.PAIRS, R.TEST_LABELS, R.LABEL_SCALE),
              values={"seed": c.seed, "data": asdict(c.data), "transfer": asdict(c.transfer),
                      "context_fraction": c.evaluation.context_fraction,
                      # what the split is: a run split otherwise (by query id, test labels in
                      # pairs.parquet) re-runs every stage, never reused with another split
                      "split": {"queries_by": "text key", "test_labels": "withheld"}}),
        Stage("teacher_fit", (R.TEACHER_DIR,), {"split": "split"},
              {"seed": c.seed, "teacher": {k: v for k, v in asdict(c.teacher).items()
                                           if k not in ("score_batch_size", "temperature", "scoring_backend",
                                                        "agreement_pairs")
                                           # float32 fine-tuning: as before the option, finished runs keep theirs
                                           and (k, v) != ("precision", "32-true")
                                           # no catalogue negatives: as before the option
                                           and (k, v) not in (("random_negatives", 0), ("mined_negatives", 0))
                                           and not (k == "mined_depth" and not c.teacher.mined_negatives)},
               **threshold}),
        Stage("teacher_scoring", (TEACHER_BACKEND, R.TEACHER_SCORES), {"split": "split",
                                                                   "teacher_fit": "teacher_fit"},
              {"temperature": c.teacher.temperature, **backend}, scratch=(R.TEACHER_SCORE_PARTS,)),
        Stage("teacher_stacking", (R.STACKED_SCORES, R.STACK_DIR), {"teacher_scoring": "teacher_scoring"},
              {"seed": c.seed, "stacking": asdict(c.stacking)}),
        Stage("graph", tuple(PROTOCOL_GRAPHS.values()), {"scores": scores}),
        Stage(R.TEXT_STUDENT, (R.TEXT_STUDENT,), {"graph": "graph"},
              {"seed": c.seed, **backbone, **threshold,
               "student": {k: v for k, v in student.items() if k not in text_only}}),
        Stage(R.GRAPH_STUDENT, (R.GRAPH_STUDENT,), {"graph": "graph", **fallback},
              {"seed": c.seed, **backbone, **threshold, "student": student}),
        Stage(R.ONLINE_STUDENT, (R.ONLINE_STUDENT,), {R.GRAPH_STUDENT: R.GRAPH_STUDENT, **fallback},
              {"seed": c.seed, **backbone, **threshold, "student": student}),
        Stage(R.BERT2DNN_STUDENT, (R.BERT2DNN_STUDENT,), {"scores": scores},
              {"seed": c.seed, "backbone": c.teacher.backbone, **threshold, "bert2dnn": asdict(c.bert2dnn)}),
    ]
    return {stage.name: stage for stage in stages}
