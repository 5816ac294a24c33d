"""The main job: split -> teacher fit -> transfer set -> teacher scoring -> graph ->
students (k=0 and k) -> evaluation on unseen test queries -> report.

Each stage writes its output atomically into the run directory and is skipped when that
output already exists, so an interrupted pipeline resumes where it stopped.
"""

from __future__ import annotations

import json
import logging
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import torch

from graphrel import run as R
from graphrel.backbone import MINILM
from graphrel.data.pairs import load_dataset, split_by_query
from graphrel.errors import GraphrelInputError

log = logging.getLogger("graphrel")


@dataclass
class DataConfig:
    """Which pairs, and how to split them.

    Args:
        kind: ``home_depot``, ``esci`` or ``generic``.
        path: the pairs file.
        options: loader options (generic: query_column, product_id_column,
            product_text_column, label_column, label_min, label_max, encoding, ...).
        val_fraction, test_fraction: shares of queries (query-disjoint split).
        max_queries: keep a random subset of this many queries (None = all), for quick runs.
    """

    kind: str = "home_depot"
    path: str = "data/home-depot/train.csv.zip"
    options: dict = field(default_factory=dict)
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    max_queries: int | None = None


@dataclass
class TransferConfig:
    """Transfer set: per query, TF-IDF top-k plus random catalogue products (unlabelled)."""

    tfidf_per_query: int = 2
    random_per_query: int = 1


@dataclass
class TeacherConfig:
    """Cross-encoder teacher: fine-tuning and scoring.

    ``max_train_pairs`` caps the pairs it is fine-tuned on (the slow stage: ≈36-55 pairs/s
    on 2 CPU cores); ``backbone_config`` builds a tiny random model (tests only).
    """

    backbone: str = MINILM
    backbone_config: dict | None = None
    max_train_pairs: int | None = 12000
    max_val_pairs: int | None = 2000
    epochs: int = 1
    batch_size: int = 32
    learning_rate: float = 5e-5
    max_length: int = 64
    temperature: float = 1.0
    score_batch_size: int = 128


@dataclass
class StudentConfig:
    """k-order graph students (k=0 is always trained too, as the ablation)."""

    order: int = 2
    cap: int = 8
    hidden: int = 32
    text_hidden: int = 128
    epochs: int = 4
    batch_size: int = 256
    learning_rate: float = 2e-3
    label_weight: float = 1.0
    temperature: float = 1.0


@dataclass
class PipelineConfig:
    """Everything the main job needs; one ``seed`` drives split, init and sampling."""

    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    transfer: TransferConfig = field(default_factory=TransferConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    student: StudentConfig = field(default_factory=StudentConfig)


def _trainer(epochs: int, run_dir: Path, name: str, progress: bool, monitor: str | None = "val_auc"):
    from lightning.pytorch.callbacks import ModelCheckpoint

    callbacks = []
    if monitor:
        callbacks.append(ModelCheckpoint(dirpath=run_dir / name, filename="best", monitor=monitor, mode="max",
                                         save_top_k=1, enable_version_counter=False))
    return L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False, callbacks=callbacks,
                     enable_checkpointing=bool(monitor),
                     enable_progress_bar=progress, enable_model_summary=False, num_sanity_val_steps=0,
                     deterministic=True, default_root_dir=run_dir)


class Pipeline:
    """Run the main job into ``run_dir`` (see :mod:`graphrel.run` for the layout)."""

    def __init__(self, config: PipelineConfig, run_dir: str | Path, *, progress: bool = True) -> None:
        self.config = config
        self.run_dir = Path(run_dir)
        self.progress = progress
        self.timings: dict[str, float] = {}

    # -- stages ------------------------------------------------------------------------
    def split(self) -> pd.DataFrame:
        """Load, validate and split the pairs; add the transfer set. -> pairs.parquet"""
        path = self.run_dir / R.PAIRS
        if path.exists():
            return pd.read_parquet(path)
        c = self.config
        pairs = load_dataset(c.data.kind, c.data.path, **c.data.options)
        if c.data.max_queries is not None:
            queries = np.sort(pairs.frame["query_id"].unique())
            keep = np.random.default_rng(c.seed).permutation(queries)[: c.data.max_queries]
            pairs = pairs.subset(pairs.frame["query_id"].isin(set(keep)).to_numpy())
        splits = split_by_query(pairs, val_fraction=c.data.val_fraction, test_fraction=c.data.test_fraction,
                                seed=c.seed)
        frames = [s.frame.assign(split=name) for name, s in splits.items()]
        labelled = pd.concat(frames, ignore_index=True)
        from graphrel.data.transfer import transfer_candidates

        transfer = transfer_candidates(labelled, tfidf_per_query=c.transfer.tfidf_per_query,
                                       random_per_query=c.transfer.random_per_query, seed=c.seed)
        transfer = transfer.drop(columns="source").assign(row_id=-1, relevance=np.nan, label=np.nan,
                                                           split="transfer")
        out = pd.concat([labelled, transfer[labelled.columns]], ignore_index=True)
        out.attrs = {}
        R.write_parquet(out, path)
        R.write_json({"label_min": pairs.label_min, "label_max": pairs.label_max, "source": pairs.source},
                     self.run_dir / "label_scale.json")
        return out

    def label_range(self) -> float:
        scale = json.loads((self.run_dir / "label_scale.json").read_text())
        return scale["label_max"] - scale["label_min"]

    def fit_teacher(self, pairs: pd.DataFrame):
        """Fine-tune the cross-encoder on (a cap of) the training pairs. -> teacher/"""
        from graphrel.data.datamodules import TeacherDataModule, sample_rows
        from graphrel.models.teacher import CrossEncoderTeacher
        from graphrel.scoring import load_teacher

        c, t = self.config, self.config.teacher
        directory = self.run_dir / R.TEACHER_DIR
        if (directory / "config.json").is_file():
            return load_teacher(directory, max_length=t.max_length, temperature=t.temperature)
        L.seed_everything(c.seed, workers=True, verbose=False)
        teacher = CrossEncoderTeacher(backbone=t.backbone, backbone_config=t.backbone_config,
                                      learning_rate=t.learning_rate, max_length=t.max_length,
                                      temperature=t.temperature)
        data = TeacherDataModule(backbone=t.backbone, batch_size=t.batch_size, max_length=t.max_length, seed=c.seed)
        data.set_frames(sample_rows(pairs[pairs.split == "train"], t.max_train_pairs, c.seed),
                        sample_rows(pairs[pairs.split == "val"], t.max_val_pairs, c.seed))
        trainer = _trainer(t.epochs, self.run_dir, "teacher_checkpoints", self.progress, monitor=None)
        trainer.fit(teacher, datamodule=data)
        tmp = self.run_dir / ".teacher.tmp"
        teacher.save_pretrained(tmp)
        trainer.save_checkpoint(tmp / "teacher.ckpt")
        tmp.rename(directory)
        return teacher

    def score_with_teacher(self, pairs: pd.DataFrame, teacher) -> pd.DataFrame:
        """Teacher logits and scores of every pair (labelled and transfer). -> teacher_scores.parquet"""
        from graphrel.scoring import teacher_logits

        path = self.run_dir / R.TEACHER_SCORES
        if path.exists():
            return pd.read_parquet(path)
        t = self.config.teacher
        logits = teacher_logits(teacher, pairs["query"], pairs["product_text"], batch_size=t.score_batch_size,
                                progress=self.progress)
        scores = pd.DataFrame({"query_id": pairs["query_id"], "product_id": pairs["product_id"],
                               "teacher_logit": logits,
                               "teacher_score": torch.sigmoid(torch.from_numpy(logits) / t.temperature).numpy()})
        R.write_parquet(scores, path)
        return scores

    def build_graph(self, scored: pd.DataFrame):
        """Query-product graph with teacher scores; train labels only. -> graph.pt"""
        from graphrel.data.graph import build_graph

        path = self.run_dir / R.GRAPH
        if path.exists():
            return R.load_run_graph(path)
        graph = build_graph(scored, label_splits=("train",))
        R.save_graph(graph, path)
        return graph

    def fit_student(self, name: str, order: int, scored: pd.DataFrame, featurizer) -> Path:
        """Train one k-order student on teacher scores (+ train labels). -> <name>/"""
        from graphrel.data.datamodules import StudentDataModule
        from graphrel.models.korder import KOrderStudent

        directory = self.run_dir / name
        if (directory / R.STUDENT_MANIFEST).is_file():
            return directory
        c, s = self.config, self.config.student
        L.seed_everything(c.seed, workers=True, verbose=False)
        # The teacher's wordpiece matrix stays frozen in fine-tuning, so the backbone's is the teacher's.
        model = KOrderStudent(order=order, hidden=s.hidden, text_hidden=s.text_hidden, backbone=c.teacher.backbone,
                              backbone_config=(None if c.teacher.backbone_config is None else
                                               {"vocab_size": featurizer.tokens.tokenizer.vocab_size,
                                                "hidden_size": c.teacher.backbone_config.get("hidden_size", 32)}),
                              learning_rate=s.learning_rate, temperature=s.temperature, label_weight=s.label_weight)
        data = StudentDataModule(run_dir=str(self.run_dir), batch_size=s.batch_size, cap=s.cap, seed=c.seed)
        data.set_data(scored, featurizer)
        trainer = _trainer(s.epochs, self.run_dir, name, self.progress)
        trainer.fit(model, datamodule=data)
        best = directory / "best.ckpt"
        best.rename(directory / R.STUDENT_CHECKPOINT)
        R.write_json({"model": "KOrderStudent", "order": order, "checkpoint": R.STUDENT_CHECKPOINT,
                      "graph": f"../{R.GRAPH}", "cap": s.cap, "best_val_auc": float(trainer.checkpoint_callback.best_model_score)},
                     directory / R.STUDENT_MANIFEST)
        return directory

    # -- evaluation --------------------------------------------------------------------
    def evaluate(self, scored: pd.DataFrame, students: dict[str, Path], teacher) -> dict:
        """Metrics of teacher and students on unseen test queries, and their speed.

        ``teacher`` is the fitted (or reloaded) teacher: it is timed on the test pairs.
        """
        from graphrel.metrics import relevance_metrics
        from graphrel.scoring import StudentScorer, timed

        from graphrel.scoring import teacher_logits

        test = scored[scored.split == "test"].reset_index(drop=True)
        label_range = self.label_range()
        # Speeds are compared as ratios measured back to back here, on the same test pairs:
        # this machine's speed swings too much between stages.
        _, seconds = timed(teacher_logits, teacher, test["query"], test.product_text,
                           batch_size=self.config.teacher.score_batch_size, progress=False)
        models = {"teacher": {**relevance_metrics(test.teacher_score, test.label, test.query_id,
                                                  label_range=label_range),
                              "pairs_per_second": len(test) / seconds}}
        predictions = {"teacher": test.teacher_score.to_numpy()}
        for name, directory in students.items():
            scorer = StudentScorer.load(directory)
            scorer.score(test.query_id[:256], test["query"][:256], test.product_id[:256],
                         test.product_text[:256])  # warm-up (lazy caches), not timed
            runs = [timed(scorer.score, test.query_id, test["query"], test.product_id, test.product_text)
                    for _ in range(5)]  # a student run is short: the median of 5 resists machine noise
            scores, seconds = runs[0][0], float(np.median([t for _, t in runs]))
            predictions[name] = scores
            models[name] = {**relevance_metrics(scores, test.label, test.query_id, label_range=label_range),
                            "pairs_per_second": len(test) / seconds}
        for name, values in models.items():
            if name != "teacher":
                values["ratio_to_teacher"] = {k: values[k] / models["teacher"][k]
                                              for k in ("auc", "spearman", "ndcg@10")}
                values["speedup_vs_teacher"] = values["pairs_per_second"] / models["teacher"]["pairs_per_second"]
        split_counts = {name: {"pairs": int((scored.split == name).sum()),
                               "queries": int(scored.loc[scored.split == name, "query_id"].nunique())}
                        for name in ("train", "val", "test", "transfer")}
        metrics = {"models": models, "split": split_counts, "config": asdict(self.config),
                   "timings_seconds": self.timings,
                   "machine": {"cpu_threads": torch.get_num_threads(), "python": platform.python_version(),
                               "torch": torch.__version__}}
        predictions_frame = test[["query_id", "product_id", "label"]].assign(**predictions)
        R.write_parquet(predictions_frame, self.run_dir / "test_predictions.parquet")
        return metrics

    # -- whole job ---------------------------------------------------------------------
    def _stage(self, name: str, function, *args):
        start = time.perf_counter()
        log.info("stage %s ...", name)
        result = function(*args)
        self.timings[name] = round(time.perf_counter() - start, 1)
        log.info("stage %s done in %.1fs", name, self.timings[name])
        return result

    def run(self) -> dict:
        """Run every stage (skipping finished ones) and write metrics.json and report.md."""
        from graphrel.backbone import load_tokenizer
        from graphrel.data.features import PairFeaturizer
        from graphrel.data.tokens import WordpieceCache
        from graphrel.report import write_report

        self.run_dir.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(self.config.seed)
        pairs = self._stage("split_and_transfer_set", self.split)
        teacher = self._stage("teacher_fit", self.fit_teacher, pairs)
        scores = self._stage("teacher_scoring", self.score_with_teacher, pairs, teacher)
        scored = pairs.merge(scores, on=["query_id", "product_id"], how="left", validate="one_to_one")
        graph = self._stage("graph", self.build_graph, scored)
        students = {"student_k0": 0, "student_korder": self.config.student.order}
        if self.config.student.order == 0:
            students.pop("student_korder")
        featurizer = None  # built only when a student still has to be trained (resume skips it)
        dirs = {}
        for name, order in students.items():
            if featurizer is None and not (self.run_dir / name / R.STUDENT_MANIFEST).is_file():
                tokens = WordpieceCache(load_tokenizer(str(self.run_dir / R.TEACHER_DIR)))
                featurizer = PairFeaturizer(graph, tokens, cap=self.config.student.cap)
            dirs[name] = self._stage(f"fit_{name}", self.fit_student, name, order, scored, featurizer)
        metrics = self._stage("evaluate", self.evaluate, scored, dirs, teacher)
        R.write_json(metrics, self.run_dir / "metrics.json")
        write_report(self.run_dir, metrics)
        return metrics


def check_config(config: PipelineConfig) -> None:
    """Reject impossible settings early with a clear message.

    Raises:
        GraphrelInputError: for an order outside {0, 1, 2}, non-positive epochs, etc.
    """
    if config.student.order not in (0, 1, 2):
        raise GraphrelInputError(f"student.order must be 0, 1 or 2, got {config.student.order}",
                                 fix="set student.order in the config")
    for key, value in (("teacher.epochs", config.teacher.epochs), ("student.epochs", config.student.epochs),
                       ("student.cap", config.student.cap)):
        if value < 1:
            raise GraphrelInputError(f"{key} must be >= 1, got {value}", fix=f"set {key} in the config")
