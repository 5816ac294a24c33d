"""Student stages: the k-order students (``student_k0``, ``student_korder``), BERM-O
(``student_online``, distilled from the k-order student) and BERT2DNN (``student_bert2dnn``).
-> <name>/ with model.ckpt + student.json (what ``graphrel score`` loads) and README.md (model card)
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import torch

from graphrel import run as R
from graphrel.pipeline.config import PipelineConfig
from graphrel.pipeline.evaluation import validation_threshold
from graphrel.pipeline.model_card import KINDS, write_model_card
from graphrel.pipeline.trainer import stage_trainer


class StudentFeaturizer:
    """The students' :class:`~graphrel.data.features.PairFeaturizer` on the run's graph,
    built once, and only when a student still has to be trained (a resumed run skips it)."""

    def __init__(self, run_dir: Path, graph, cap: int, similar_queries: int = 0, min_similarity: float = 0.5) -> None:
        self.run_dir, self.graph, self.cap = run_dir, graph, cap
        self.similar_queries, self.min_similarity = similar_queries, min_similarity
        self.featurizer = None

    def for_student(self, name: str):
        """The featurizer if student ``name`` has no ``student.json`` yet (else None, unless built)."""
        from graphrel.backbone import load_tokenizer
        from graphrel.data.features import PairFeaturizer
        from graphrel.data.tokens import WordpieceCache

        if self.featurizer is None and not (self.run_dir / name / R.STUDENT_MANIFEST).is_file():
            tokens = WordpieceCache(load_tokenizer(str(self.run_dir / R.TEACHER_DIR)))
            self.featurizer = PairFeaturizer(self.graph, tokens, cap=self.cap, similar_queries=self.similar_queries,
                                             min_similarity=self.min_similarity)
        return self.featurizer


def fit_student(c: PipelineConfig, run_dir: Path, name: str, order: int, scored: pd.DataFrame, featurizer, *,
                progress: bool, neighbourhood_statistics: bool | None = None,
                distilled_from: str = "teacher") -> Path:
    """Train one k-order student on ``scored.teacher_logit`` (+ train labels). -> <name>/

    ``neighbourhood_statistics`` defaults to the config's for k >= 1 (off for k = 0);
    ``distilled_from`` names the model whose logits ``teacher_logit`` holds (manifest).
    The checkpoint of the best validation AUC is kept.
    """
    from graphrel.models.korder_data import StudentDataModule
    from graphrel.models.korder import KOrderStudent

    directory = run_dir / name
    if (directory / R.STUDENT_MANIFEST).is_file():
        return directory
    s = c.student
    if neighbourhood_statistics is None:
        neighbourhood_statistics = s.neighbourhood_statistics and order > 0
    reads_graph = order > 0 or neighbourhood_statistics  # the text-only student reads none
    L.seed_everything(c.seed, workers=True, verbose=False)
    # The teacher's wordpiece matrix stays frozen in fine-tuning, so the backbone's is the teacher's.
    model = KOrderStudent(order=order, hidden=s.hidden, text_hidden=s.text_hidden, backbone=c.teacher.backbone,
                          backbone_config=(None if c.teacher.backbone_config is None else
                                           {"vocab_size": featurizer.tokens.tokenizer.vocab_size,
                                            "hidden_size": c.teacher.backbone_config.get("hidden_size", 32)}),
                          learning_rate=s.learning_rate, temperature=s.temperature, label_weight=s.label_weight,
                          neighbourhood_statistics=neighbourhood_statistics,
                          text_fallback=s.text_fallback, relevance_threshold=validation_threshold(c, run_dir),
                          similar_queries=s.similar_queries if reads_graph else 0,
                          min_similarity=s.min_similarity, ranking_loss=s.ranking_loss,
                          ranking_weight=s.ranking_weight)
    data = StudentDataModule(run_dir=str(run_dir), batch_size=s.batch_size, cap=s.cap, seed=c.seed,
                             new_query_share=s.new_query_share, group_by_query=s.ranking_loss != "none",
                             similar_queries=s.similar_queries, min_similarity=s.min_similarity)
    data.set_data(scored, featurizer)
    if model.text_fallback is not None:
        model.load_text_student(KOrderStudent.load_from_checkpoint(
            run_dir / R.TEXT_STUDENT / R.STUDENT_CHECKPOINT, map_location="cpu"))
    trainer = stage_trainer(s.epochs, run_dir, name, progress)
    trainer.fit(model, datamodule=data)
    best = directory / "best.ckpt"
    best.rename(directory / R.STUDENT_CHECKPOINT)
    R.write_json({"model": "KOrderStudent", "order": order, "checkpoint": R.STUDENT_CHECKPOINT,
                  "graph": f"../{R.GRAPH}", "cap": s.cap, "distilled_from": distilled_from,
                  "best_val_auc": float(trainer.checkpoint_callback.best_model_score)},
                 directory / R.STUDENT_MANIFEST)
    write_model_card(directory, name=name, kind=KINDS.get(name, "korder" if order else "k0"), config=c,
                     run_dir=run_dir)
    return directory


def online_targets(scored: pd.DataFrame, graph_student: Path, temperature: float) -> pd.DataFrame:
    """BERM-O's training table: ``scored`` with the ``teacher_logit`` of every training and
    transfer pair (what the student trains on) replaced by the logit whose target
    ``sigmoid(logit / temperature)`` is the k-order graph student's score of that pair;
    other pairs keep theirs."""
    from graphrel.losses import logits_for_targets
    from graphrel.scoring.korder_scorer import StudentScorer

    scorer = StudentScorer.load(graph_student)
    learnt = scored.split.isin(["train", "transfer"]).to_numpy()  # what the student trains on
    rows = scored[learnt]
    scores = scorer.score(rows.query_id, rows["query"], rows.product_id, rows.product_text)
    logits = scored.teacher_logit.to_numpy(np.float32).copy()
    # Targets are sigmoid(logit / T): these logits give back the graph student's scores.
    logits[learnt] = logits_for_targets(torch.from_numpy(scores), temperature).numpy()
    return scored.assign(teacher_logit=logits)


def fit_online_student(c: PipelineConfig, run_dir: Path, scored: pd.DataFrame, featurizer, graph_student: Path, *,
                       progress: bool) -> Path:
    """BERM-O: a k=0 student with precomputed per-node neighbourhood statistics, distilled
    from the k-order graph student's logits on every training and transfer pair
    (:func:`online_targets`). -> student_online/"""
    directory = run_dir / R.ONLINE_STUDENT
    if (directory / R.STUDENT_MANIFEST).is_file():
        return directory
    distilled = online_targets(scored, graph_student, c.student.temperature)
    return fit_student(c, run_dir, R.ONLINE_STUDENT, 0, distilled, featurizer, progress=progress,
                       neighbourhood_statistics=True, distilled_from=graph_student.name)


def fit_bert2dnn_student(c: PipelineConfig, run_dir: Path, scored: pd.DataFrame, *, progress: bool) -> Path:
    """BERT2DNN student on the run's (stacked) teacher scores. -> student_bert2dnn/"""
    from graphrel.models.bert2dnn_training import train_bert2dnn

    directory = run_dir / R.BERT2DNN_STUDENT
    if (directory / R.STUDENT_MANIFEST).is_file():
        return directory
    b = c.bert2dnn
    train_bert2dnn(run_dir, directory, pairs=scored, init=b.init, temperature=b.temperature,
                   epochs=b.epochs, batch_size=b.batch_size, learning_rate=b.learning_rate,
                   label_weight=b.label_weight, min_count=b.min_count, backbone=c.teacher.backbone,
                   backbone_config=b.backbone_config, seed=c.seed, progress=progress,
                   scoring_dtype=b.scoring_dtype,
                   model_options={"match_features": b.match_features, "embedding_dim": b.embedding_dim,
                                  "hidden": tuple(b.hidden), "relevance_threshold": validation_threshold(c, run_dir)})
    write_model_card(directory, name=R.BERT2DNN_STUDENT, kind="bert2dnn", config=c, run_dir=run_dir)
    return directory
