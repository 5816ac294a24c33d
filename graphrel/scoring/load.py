"""Student directories: their manifest (``student.json``) and the scorer that loads each.

A student directory of a run (``RUN/student_korder``, ``RUN/student_online``,
``RUN/student_bert2dnn``) holds ``student.json`` (its ``model`` type, checkpoint name and
settings) and the checkpoint. :func:`load_scorer` dispatches on the model type through
:data:`SCORERS`.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

from graphrel.errors import GraphrelInputError
from graphrel.run import STUDENT_CHECKPOINT, STUDENT_MANIFEST


def read_student_manifest(directory: Path, model_type: str | None = None, *,
                          fix: str = "re-run the stage that wrote this student") -> tuple[dict, Path]:
    """``student.json`` of a student directory and the path of its checkpoint.

    Args:
        directory: a student directory.
        model_type: the manifest's ``model`` the caller can load (None: any).
        fix: what to tell the user when the checkpoint is missing.

    Raises:
        GraphrelInputError: no manifest, a manifest that is not a JSON object, another model
            type, or a missing checkpoint.
    """
    manifest_path = directory / STUDENT_MANIFEST
    if not manifest_path.is_file():
        raise GraphrelInputError("not a model directory (no student.json, and not a cross-encoder teacher)",
                                 path=directory, fix="pass a model directory of a run, e.g. RUN/student_korder "
                                                     "or RUN/teacher")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        manifest = None
    if not isinstance(manifest, dict):
        raise GraphrelInputError("student.json is not a JSON object", path=manifest_path,
                                 fix="restore the student.json written with this model")
    if model_type is not None and manifest.get("model") != model_type:
        raise GraphrelInputError(f"unsupported student type {manifest.get('model')!r} (expected {model_type})",
                                 path=manifest_path, fix="load this directory with graphrel.scoring.load.load_scorer")
    checkpoint = directory / manifest.get("checkpoint", STUDENT_CHECKPOINT)
    if model_type is not None and not checkpoint.is_file():
        raise GraphrelInputError("student checkpoint not found", path=checkpoint, fix=fix)
    return manifest, checkpoint


#: Model type in a student directory's manifest -> "module:scorer class" that loads it. A new
#: student type is one more entry; its class has ``load(directory)`` (graph students:
#: ``load(directory, graph=...)``, listed in GRAPH_SCORERS).
SCORERS = {"KOrderStudent": "graphrel.scoring.korder_scorer:StudentScorer",
           "Bert2DnnStudent": "graphrel.scoring.bert2dnn_scorer:Bert2DnnScorer"}

#: Model types whose scorers read a query-product graph (``load(directory, graph=...)``).
GRAPH_SCORERS = ("KOrderStudent",)


def load_scorer(directory: str | Path, *, graph: str | Path | None = None):
    """Load any student directory (k-order graph student, BERM-O, BERT2DNN), or a run's
    cross-encoder teacher (``RUN/teacher``: :class:`~graphrel.scoring.teacher_scorer.TeacherScorer`),
    for scoring.

    Dispatches on ``student.json``'s ``model`` (a teacher directory has none); every scorer has
    ``score(query_ids, queries, product_ids, product_texts) -> (N,) float32 in [0, 1]``
    and ``reset_text_caches()``.

    Args:
        directory: a student directory.
        graph: for graph students, a ``graph.pt`` to read neighbours from instead of the
            manifest's (text-only students and the teacher ignore it).

    Raises:
        GraphrelInputError: neither a teacher directory nor a student manifest, or a model type
            graphrel cannot score.
    """
    directory = Path(directory)
    from graphrel.scoring.teacher_scorer import TeacherScorer, is_teacher_directory

    if is_teacher_directory(directory):
        return TeacherScorer.load(directory)
    model = read_student_manifest(directory)[0].get("model")
    if model not in SCORERS:
        raise GraphrelInputError(f"unsupported student type {model!r}", path=directory / STUDENT_MANIFEST,
                                 fix=f"pass a directory of one of: {', '.join(SCORERS)}")
    module, name = SCORERS[model].split(":")
    scorer_class = getattr(importlib.import_module(module), name)
    return scorer_class.load(directory, graph=graph) if model in GRAPH_SCORERS else scorer_class.load(directory)
