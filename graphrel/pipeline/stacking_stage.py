"""Stage ``teacher_stacking``: the lexical teacher and the logistic-regression stack of both
teachers (BERT2DNN, Jiang et al. ICDM 2020). -> stack/, stacked_scores.parquet

The lexical teacher is fitted on the training pairs alone (labels and TF-IDF vocabulary: no
text of a validation or test query shapes it); the stack on the validation labels,
with a query-grouped cross-validation first so the validation figures of the stack are out
of fold. In a stacked run every consumer reads the stack's score as the teacher score.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from graphrel import run as R
from graphrel.pipeline.config import PipelineConfig
from graphrel.pipeline.model_card import write_model_card

log = logging.getLogger("graphrel")

TEACHERS = ("cross_encoder", "lexical")  # the stack's inputs, in its column order


@dataclass
class StackFit:
    """What :func:`fit_stack` learnt: the lexical teacher, the stack, the logits of every
    pair, and each teacher's validation AUC / Spearman (the stack's out of fold)."""

    lexical: object
    stack: object
    lexical_logits: np.ndarray
    stacked_logits: np.ndarray
    validation: dict


def fit_stack(scored: pd.DataFrame, *, seed: int, regularisation: float, lexical_max_iter: int) -> StackFit:
    """Fit the lexical teacher (train labels) and the stack (val labels) on ``scored``: every
    pair with ``split``, texts, ``label`` and the cross-encoder's ``teacher_logit``."""
    from graphrel.metrics import auc, spearman
    from graphrel.teachers.lexical import LexicalTeacher
    from graphrel.teachers.stacking import TeacherStack

    train, val = scored[scored.split == "train"], scored[scored.split == "val"]
    lexical = LexicalTeacher(max_iter=lexical_max_iter, seed=seed)
    lexical.fit(train["query"], train.product_text, train.label.to_numpy(),
                vocabulary_texts=list(train["query"].unique()) + list(train.product_text.unique()))
    lexical_logits = lexical.logits(scored["query"], scored.product_text)
    names = list(TEACHERS)
    all_logits = np.stack([scored.teacher_logit.to_numpy(), lexical_logits], 1)
    is_val = (scored.split == "val").to_numpy()
    stack = TeacherStack(names, regularisation=regularisation)
    val_labels = val.label.to_numpy()
    out_of_fold = stack.cross_validated_logits(all_logits[is_val], val_labels, val.query_id.to_numpy())
    stack.fit(all_logits[is_val], val_labels)
    stacked = stack.logits(all_logits)
    validation = {name: {"auc": auc(all_logits[is_val, i], val_labels),
                         "spearman": spearman(all_logits[is_val, i], val_labels)} for i, name in enumerate(names)}
    validation["stack (out-of-fold)"] = {"auc": auc(out_of_fold, val_labels),
                                         "spearman": spearman(out_of_fold, val_labels)}
    return StackFit(lexical, stack, lexical_logits, stacked, validation)


def stack_teachers(c: PipelineConfig, run_dir: Path, pairs: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
    """Lexical teacher + logistic-regression stack. -> stack/ and stacked_scores.parquet

    Returns the scores table with ``teacher_logit`` / ``teacher_score`` replaced by the
    stack's, and the single teachers' logits in ``cross_encoder_logit`` and ``lexical_logit``
    (reloaded from stacked_scores.parquet if it exists).
    """
    import joblib

    path = run_dir / R.STACKED_SCORES
    if path.exists():
        return pd.read_parquet(path)
    scored = pairs.merge(scores, on=["query_id", "product_id"], how="left", validate="one_to_one")
    fit = fit_stack(scored, seed=c.seed, regularisation=c.stacking.regularisation,
                    lexical_max_iter=c.stacking.lexical_max_iter)
    directory = run_dir / R.STACK_DIR
    directory.mkdir(exist_ok=True)
    with R.atomic_path(directory / "lexical_teacher.joblib") as tmp:
        joblib.dump(fit.lexical, tmp)
    R.write_json({**fit.stack.to_dict(), "validation": fit.validation}, directory / "stack.json")
    write_model_card(directory, name="teacher_stack", kind="stack", config=c, run_dir=run_dir)
    out = scores.assign(cross_encoder_logit=scores.teacher_logit)
    out = out.merge(pd.DataFrame({"query_id": scored.query_id, "product_id": scored.product_id,
                                  "lexical_logit": fit.lexical_logits, "stacked_logit": fit.stacked_logits}),
                    on=["query_id", "product_id"], how="left", validate="one_to_one")
    out["teacher_logit"] = out.pop("stacked_logit")
    out["teacher_score"] = torch.sigmoid(torch.from_numpy(out.teacher_logit.to_numpy())
                                         / c.teacher.temperature).numpy()
    R.write_parquet(out, path)
    log.info("teacher stacking, validation AUC: %s",
             ", ".join(f"{k} {v['auc']:.3f}" for k, v in fit.validation.items()))
    return out
