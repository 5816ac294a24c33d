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
    """k-order graph students (k=0 is always trained too, as the ablation).

    ``neighbourhood_statistics``: graph students (k >= 1) also read uncapped one-hop
    statistics. ``online``: also train BERM-O (``student_online``), the online model
    distilled from the k-order student: 0-order text part plus precomputed per-node
    neighbourhood statistics, no attention.
    """

    order: int = 2
    cap: int = 4
    hidden: int = 32
    text_hidden: int = 128
    epochs: int = 4
    batch_size: int = 256
    learning_rate: float = 2e-3
    label_weight: float = 1.0
    temperature: float = 1.0
    neighbourhood_statistics: bool = True
    online: bool = True


@dataclass
class StackingConfig:
    """Teacher stacking (BERT2DNN; :mod:`graphrel.models.stacking`): the cross-encoder plus a
    lexical gradient-boosted teacher (fitted on the training labels), combined by a logistic
    regression fitted on the validation labels. When enabled, students and the graph use the
    stacked score."""

    enabled: bool = False
    regularisation: float = 1.0
    lexical_max_iter: int = 300


@dataclass
class Bert2DnnConfig:
    """BERT2DNN student (``student_bert2dnn``; :mod:`graphrel.models.bert2dnn`, Jiang et al.
    ICDM 2020): n-gram bags + MLP, text only, distilled from the run's (stacked) teacher
    scores on the training and transfer pairs of training queries.

    Defaults are the best measured on Home Depot (see the module docstring): n-grams
    initialised from the backbone's sentence encoder, exact n-gram match features, human
    labels added to the loss, bfloat16 MLP when scoring. ``init: wordpiece`` /
    ``match_features: false`` / ``label_weight: 0`` give the paper's plainer variants.
    """

    enabled: bool = False
    init: str = "sentence"
    match_features: bool = True
    label_weight: float = 1.0
    temperature: float = 1.0
    epochs: int = 4
    batch_size: int = 128
    learning_rate: float = 1e-3
    embedding_dim: int = 64
    hidden: tuple[int, ...] = (1024, 512, 128, 64)
    min_count: int = 2
    scoring_dtype: str = "bfloat16"
    backbone_config: dict | None = None  # tests: {vocab_size, hidden_size} of a tiny random encoder


@dataclass
class PipelineConfig:
    """Everything the main job needs; one ``seed`` drives split, init and sampling."""

    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    transfer: TransferConfig = field(default_factory=TransferConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    stacking: StackingConfig = field(default_factory=StackingConfig)
    bert2dnn: Bert2DnnConfig = field(default_factory=Bert2DnnConfig)


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
        import shutil

        from graphrel.scoring import teacher_logits_resumable

        path = self.run_dir / R.TEACHER_SCORES
        if path.exists():
            return pd.read_parquet(path)
        t = self.config.teacher
        parts = self.run_dir / R.TEACHER_SCORE_PARTS  # resumable: saved chunks survive an interruption
        logits = teacher_logits_resumable(teacher, pairs["query"], pairs["product_text"], parts,
                                          batch_size=t.score_batch_size, progress=self.progress)
        scores = pd.DataFrame({"query_id": pairs["query_id"], "product_id": pairs["product_id"],
                               "teacher_logit": logits,
                               "teacher_score": torch.sigmoid(torch.from_numpy(logits) / t.temperature).numpy()})
        R.write_parquet(scores, path)
        shutil.rmtree(parts)
        return scores

    def stack_teachers(self, pairs: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
        """Lexical teacher + logistic-regression stack. -> stack/ and stacked_scores.parquet

        Returns the scores table with ``teacher_logit`` / ``teacher_score`` replaced by the
        stack's, and the single teachers' logits in ``cross_encoder_logit`` and ``lexical_logit``.
        """
        import joblib

        from graphrel.metrics import auc, spearman
        from graphrel.models.lexical import LexicalTeacher
        from graphrel.models.stacking import TeacherStack

        path = self.run_dir / R.STACKED_SCORES
        if path.exists():
            return pd.read_parquet(path)
        c = self.config
        scored = pairs.merge(scores, on=["query_id", "product_id"], how="left", validate="one_to_one")
        train, val = scored[scored.split == "train"], scored[scored.split == "val"]
        lexical = LexicalTeacher(max_iter=c.stacking.lexical_max_iter, seed=c.seed)
        lexical.fit(train["query"], train.product_text, train.label.to_numpy(),
                    vocabulary_texts=list(scored["query"].unique()) + list(scored.product_text.unique()))
        lexical_logits = lexical.logits(scored["query"], scored.product_text)
        names = ["cross_encoder", "lexical"]
        all_logits = np.stack([scored.teacher_logit.to_numpy(), lexical_logits], 1)
        is_val = (scored.split == "val").to_numpy()
        stack = TeacherStack(names, regularisation=c.stacking.regularisation)
        val_labels = val.label.to_numpy()
        out_of_fold = stack.cross_validated_logits(all_logits[is_val], val_labels, val.query_id.to_numpy())
        stack.fit(all_logits[is_val], val_labels)
        stacked = stack.logits(all_logits)
        validation = {name: {"auc": auc(all_logits[is_val, i], val_labels),
                             "spearman": spearman(all_logits[is_val, i], val_labels)} for i, name in enumerate(names)}
        validation["stack (out-of-fold)"] = {"auc": auc(out_of_fold, val_labels),
                                             "spearman": spearman(out_of_fold, val_labels)}
        directory = self.run_dir / R.STACK_DIR
        directory.mkdir(exist_ok=True)
        with R.atomic_path(directory / "lexical_teacher.joblib") as tmp:
            joblib.dump(lexical, tmp)
        R.write_json({**stack.to_dict(), "validation": validation}, directory / "stack.json")
        out = scores.assign(cross_encoder_logit=scores.teacher_logit)
        out = out.merge(pd.DataFrame({"query_id": scored.query_id, "product_id": scored.product_id,
                                      "lexical_logit": lexical_logits, "stacked_logit": stacked}),
                        on=["query_id", "product_id"], how="left", validate="one_to_one")
        out["teacher_logit"] = out.pop("stacked_logit")
        out["teacher_score"] = torch.sigmoid(torch.from_numpy(out.teacher_logit.to_numpy())
                                             / self.config.teacher.temperature).numpy()
        R.write_parquet(out, path)
        log.info("teacher stacking, validation AUC: %s",
                 ", ".join(f"{k} {v['auc']:.3f}" for k, v in validation.items()))
        return out

    def build_graph(self, scored: pd.DataFrame):
        """Query-product graph with teacher scores; train labels only. -> graph.pt"""
        from graphrel.data.graph import build_graph

        path = self.run_dir / R.GRAPH
        if path.exists():
            return R.load_run_graph(path)
        graph = build_graph(scored, label_splits=("train",))
        R.save_graph(graph, path)
        return graph

    def fit_student(self, name: str, order: int, scored: pd.DataFrame, featurizer, *,
                    neighbourhood_statistics: bool | None = None, distilled_from: str = "teacher") -> Path:
        """Train one k-order student on ``scored.teacher_logit`` (+ train labels). -> <name>/

        ``neighbourhood_statistics`` defaults to the config's for k >= 1 (off for k = 0);
        ``distilled_from`` names the model whose logits ``teacher_logit`` holds (manifest).
        """
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
                              learning_rate=s.learning_rate, temperature=s.temperature, label_weight=s.label_weight,
                              neighbourhood_statistics=(s.neighbourhood_statistics and order > 0
                                                        if neighbourhood_statistics is None
                                                        else neighbourhood_statistics))
        data = StudentDataModule(run_dir=str(self.run_dir), batch_size=s.batch_size, cap=s.cap, seed=c.seed)
        data.set_data(scored, featurizer)
        trainer = _trainer(s.epochs, self.run_dir, name, self.progress)
        trainer.fit(model, datamodule=data)
        best = directory / "best.ckpt"
        best.rename(directory / R.STUDENT_CHECKPOINT)
        R.write_json({"model": "KOrderStudent", "order": order, "checkpoint": R.STUDENT_CHECKPOINT,
                      "graph": f"../{R.GRAPH}", "cap": s.cap, "distilled_from": distilled_from,
                      "best_val_auc": float(trainer.checkpoint_callback.best_model_score)},
                     directory / R.STUDENT_MANIFEST)
        return directory

    def fit_online_student(self, scored: pd.DataFrame, featurizer, graph_student: Path) -> Path:
        """BERM-O: a k=0 student with precomputed per-node neighbourhood statistics, distilled
        from the k-order graph student's logits on every training and transfer pair. -> student_online/"""
        from graphrel.scoring import StudentScorer

        directory = self.run_dir / R.ONLINE_STUDENT
        if (directory / R.STUDENT_MANIFEST).is_file():
            return directory
        scorer = StudentScorer.load(graph_student)
        scores = scorer.score(scored.query_id, scored["query"], scored.product_id, scored.product_text)
        clipped = np.clip(scores.astype(np.float64), 1e-6, 1 - 1e-6)
        distilled = scored.assign(teacher_logit=np.log(clipped / (1 - clipped)).astype(np.float32))
        return self.fit_student(R.ONLINE_STUDENT, 0, distilled, featurizer, neighbourhood_statistics=True,
                                distilled_from=graph_student.name)

    def fit_bert2dnn_student(self, scored: pd.DataFrame) -> Path:
        """BERT2DNN student on the run's (stacked) teacher scores. -> student_bert2dnn/"""
        from graphrel.models.bert2dnn import train_bert2dnn

        directory = self.run_dir / R.BERT2DNN_STUDENT
        if (directory / R.STUDENT_MANIFEST).is_file():
            return directory
        c = self.config.bert2dnn
        train_bert2dnn(self.run_dir, directory, pairs=scored, init=c.init, temperature=c.temperature,
                       epochs=c.epochs, batch_size=c.batch_size, learning_rate=c.learning_rate,
                       label_weight=c.label_weight, min_count=c.min_count, backbone=self.config.teacher.backbone,
                       backbone_config=c.backbone_config, seed=self.config.seed, progress=self.progress,
                       scoring_dtype=c.scoring_dtype,
                       model_options={"match_features": c.match_features, "embedding_dim": c.embedding_dim,
                                      "hidden": tuple(c.hidden)})
        return directory

    # -- evaluation --------------------------------------------------------------------
    def evaluate(self, scored: pd.DataFrame, students: dict[str, Path], teacher) -> dict:
        """Metrics of teacher and students on unseen test queries, and their speed.

        ``teacher`` is the fitted (or reloaded) teacher: it is timed on the test pairs.
        """
        from graphrel.metrics import relevance_metrics
        from graphrel.scoring import load_scorer, teacher_logits, timed

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
        if "cross_encoder_logit" in test:
            # Stacked run: "teacher" is the cross-encoder (timed above); the stack and the
            # lexical teacher get their own rows, timed with the stack (cross-encoder + lexical).
            import joblib

            lexical = joblib.load(self.run_dir / R.STACK_DIR / "lexical_teacher.joblib")
            _, lexical_seconds = timed(lexical.logits, test["query"], test.product_text)
            temperature = self.config.teacher.temperature
            for name, column, speed in (
                    ("teacher", "cross_encoder_logit", len(test) / seconds),
                    ("teacher_lexical", "lexical_logit", len(test) / lexical_seconds),
                    ("teacher_stack", "teacher_logit", len(test) / (seconds + lexical_seconds))):
                score = 1 / (1 + np.exp(-test[column].to_numpy() / temperature))
                models[name] = {**relevance_metrics(score, test.label, test.query_id, label_range=label_range),
                                "pairs_per_second": speed}
                predictions[name] = score
        for name, directory in students.items():
            scorer = load_scorer(directory)
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
        if self.config.stacking.enabled:
            scores = self._stage("teacher_stacking", self.stack_teachers, pairs, scores)
        scored = pairs.merge(scores, on=["query_id", "product_id"], how="left", validate="one_to_one")
        graph = self._stage("graph", self.build_graph, scored)
        students = {"student_k0": 0, "student_korder": self.config.student.order}
        if self.config.student.order == 0:
            students.pop("student_korder")
        featurizer = None  # built only when a student still has to be trained (resume skips it)

        def featurizer_for(name: str):
            nonlocal featurizer
            if featurizer is None and not (self.run_dir / name / R.STUDENT_MANIFEST).is_file():
                tokens = WordpieceCache(load_tokenizer(str(self.run_dir / R.TEACHER_DIR)))
                featurizer = PairFeaturizer(graph, tokens, cap=self.config.student.cap)
            return featurizer

        dirs = {}
        for name, order in students.items():
            dirs[name] = self._stage(f"fit_{name}", self.fit_student, name, order, scored, featurizer_for(name))
        if self.config.student.online and "student_korder" in dirs:
            dirs[R.ONLINE_STUDENT] = self._stage(f"fit_{R.ONLINE_STUDENT}", self.fit_online_student, scored,
                                                 featurizer_for(R.ONLINE_STUDENT), dirs["student_korder"])
        if self.config.bert2dnn.enabled:
            dirs[R.BERT2DNN_STUDENT] = self._stage(f"fit_{R.BERT2DNN_STUDENT}", self.fit_bert2dnn_student, scored)
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
    if config.bert2dnn.enabled:
        from graphrel.models.bert2dnn import INITS

        if config.bert2dnn.init not in INITS:
            raise GraphrelInputError(f"bert2dnn.init must be one of {INITS}, got {config.bert2dnn.init!r}",
                                     fix="set bert2dnn.init in the config")
        if config.bert2dnn.scoring_dtype not in ("float32", "bfloat16"):
            raise GraphrelInputError(f"bert2dnn.scoring_dtype must be float32 or bfloat16, got "
                                     f"{config.bert2dnn.scoring_dtype!r}", fix="set bert2dnn.scoring_dtype")
        if config.bert2dnn.epochs < 1:
            raise GraphrelInputError(f"bert2dnn.epochs must be >= 1, got {config.bert2dnn.epochs}",
                                     fix="set bert2dnn.epochs in the config")
