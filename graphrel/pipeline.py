"""The main job: split -> teacher fit -> transfer set -> teacher scoring -> graphs ->
students (k=0 and k) -> evaluation on unseen test queries (protocols ``new_query`` and
``new_pairs``, :mod:`graphrel.evaluation`) -> report.

Each stage writes its output atomically into the run directory and is skipped when that
output exists *and* was built from the same config values and inputs
(:mod:`graphrel.stages`); a changed value re-runs the stage and every stage after it
that reads its outputs. An interrupted pipeline resumes where it stopped.
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
from graphrel.data.datasets import load_dataset
from graphrel.data.split import split_by_query
from graphrel.errors import GraphrelInputError
from graphrel.evaluation import PROTOCOL_GRAPHS, PROTOCOLS, hold_out_test_pairs, protocol_edges
from graphrel.stages import StageRecords

log = logging.getLogger("graphrel")
LABEL_SCALE = "label_scale.json"


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
    neighbourhood statistics, no attention. ``new_query_share``: share of training pairs
    read as if their query were new to the log (query-side neighbourhood hidden), so graph
    students know that case (protocol ``new_query``). ``text_fallback``: graph students score a
    pair whose query has no other product in the graph with a frozen copy of ``student_k0``
    (:class:`graphrel.models.korder.KOrderStudent`), so they are never below the text student
    for a query new to the log.
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
    new_query_share: float = 0.3
    text_fallback: bool = True


@dataclass
class StackingConfig:
    """Teacher stacking (BERT2DNN; :mod:`graphrel.teachers.stacking`): the cross-encoder plus a
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
class EvaluationConfig:
    """How students are evaluated (:mod:`graphrel.evaluation`).

    ``context_fraction``: share of each test query's labelled pairs kept in the graph as
    teacher-scored context (protocol ``new_pairs``); the rest are evaluated.
    ``relevance_threshold``: label (on the data's scale) at or above which a pair counts as
    relevant for AUC; None: three quarters up the scale (2.5 on Home Depot's 1-3).
    ``timing_repeats``: timed runs per model (the median is reported), each after a warm-up
    on ``warmup_pairs`` validation pairs.
    """

    context_fraction: float = 0.5
    relevance_threshold: float | None = None
    timing_repeats: int = 3
    warmup_pairs: int = 256


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
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)


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
        labelled = hold_out_test_pairs(pd.concat(frames, ignore_index=True),
                                       context_fraction=c.evaluation.context_fraction, seed=c.seed)
        from graphrel.data.transfer import transfer_candidates

        transfer = transfer_candidates(labelled, tfidf_per_query=c.transfer.tfidf_per_query,
                                       random_per_query=c.transfer.random_per_query, seed=c.seed)
        transfer = transfer.drop(columns="source").assign(row_id=-1, relevance=np.nan, label=np.nan,
                                                           split="transfer")
        out = pd.concat([labelled, transfer[labelled.columns]], ignore_index=True)
        out.attrs = {}
        R.write_parquet(out, path)
        R.write_json({"label_min": pairs.label_min, "label_max": pairs.label_max, "source": pairs.source},
                     self.run_dir / LABEL_SCALE)
        return out

    def label_scale(self) -> tuple[float, float]:
        """(label_min, label_max) of the run's data."""
        scale = json.loads((self.run_dir / LABEL_SCALE).read_text())
        return scale["label_min"], scale["label_max"]

    def relevance_threshold(self) -> float:
        """The relevance threshold of AUC on the data's label scale (config or 3/4 up the scale).

        Raises:
            GraphrelInputError: a configured threshold outside the label scale.
        """
        low, high = self.label_scale()
        threshold = self.config.evaluation.relevance_threshold
        if threshold is None:
            return low + 0.75 * (high - low)
        if not low < threshold <= high:
            raise GraphrelInputError(f"evaluation.relevance_threshold {threshold} is outside the label scale "
                                     f"({low:g}, {high:g}]", fix="set evaluation.relevance_threshold in the config")
        return float(threshold)

    def fit_teacher(self, pairs: pd.DataFrame):
        """Fine-tune the cross-encoder on (a cap of) the training pairs. -> teacher/"""
        from graphrel.models.teacher_data import TeacherDataModule, sample_rows
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
        from graphrel.teachers.lexical import LexicalTeacher
        from graphrel.teachers.stacking import TeacherStack

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

    def build_graphs(self, scored: pd.DataFrame):
        """The protocols' query-product graphs with teacher scores (train labels only); no
        evaluated test pair is an edge of either. -> graph.pt (``new_pairs``; students train
        and ``graphrel score`` reads it) and graph_new_query.pt (``new_query``)."""
        from graphrel.data.graph import build_graph

        graphs = {}
        for protocol in PROTOCOLS:
            path = self.run_dir / PROTOCOL_GRAPHS[protocol]
            if path.exists():
                graphs[protocol] = R.load_run_graph(path)
                continue
            graphs[protocol] = build_graph(protocol_edges(scored, protocol), label_splits=("train",))
            R.save_graph(graphs[protocol], path)
        return graphs["new_pairs"]

    def fit_student(self, name: str, order: int, scored: pd.DataFrame, featurizer, *,
                    neighbourhood_statistics: bool | None = None, distilled_from: str = "teacher") -> Path:
        """Train one k-order student on ``scored.teacher_logit`` (+ train labels). -> <name>/

        ``neighbourhood_statistics`` defaults to the config's for k >= 1 (off for k = 0);
        ``distilled_from`` names the model whose logits ``teacher_logit`` holds (manifest).
        """
        from graphrel.models.korder_data import StudentDataModule
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
                                                        else neighbourhood_statistics),
                              text_fallback=s.text_fallback)
        data = StudentDataModule(run_dir=str(self.run_dir), batch_size=s.batch_size, cap=s.cap, seed=c.seed,
                                 new_query_share=s.new_query_share)
        data.set_data(scored, featurizer)
        if model.text_fallback is not None:
            model.load_text_student(KOrderStudent.load_from_checkpoint(
                self.run_dir / R.TEXT_STUDENT / R.STUDENT_CHECKPOINT, map_location="cpu"))
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
        from graphrel.losses import logits_for_targets

        scorer = StudentScorer.load(graph_student)
        learnt = scored.split.isin(["train", "transfer"]).to_numpy()  # what the student trains on
        rows = scored[learnt]
        scores = scorer.score(rows.query_id, rows["query"], rows.product_id, rows.product_text)
        logits = scored.teacher_logit.to_numpy(np.float32).copy()
        # Targets are sigmoid(logit / T): these logits give back the graph student's scores.
        logits[learnt] = logits_for_targets(torch.from_numpy(scores), self.config.student.temperature).numpy()
        distilled = scored.assign(teacher_logit=logits)
        return self.fit_student(R.ONLINE_STUDENT, 0, distilled, featurizer, neighbourhood_statistics=True,
                                distilled_from=graph_student.name)

    def fit_bert2dnn_student(self, scored: pd.DataFrame) -> Path:
        """BERT2DNN student on the run's (stacked) teacher scores. -> student_bert2dnn/"""
        from graphrel.models.bert2dnn_training import train_bert2dnn

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
        """Metrics and speed of teacher and students on the evaluated test pairs, under both
        protocols (:mod:`graphrel.evaluation`). -> test_predictions.parquet

        Every model is timed the same way in this one call (speeds are compared as ratios:
        this machine's speed swings between stages): the median of ``timing_repeats`` runs
        over the evaluated pairs, each after emptying its text caches and a warm-up on
        validation pairs. Graph students are timed under each protocol with that protocol's
        graph (under ``new_query`` every test query is looked up and not found).
        """
        from graphrel.evaluation import add_ratios, median_seconds
        from graphrel.metrics import relevance_metrics
        from graphrel.scoring import load_scorer, teacher_logits

        e = self.config.evaluation
        test = scored[scored.split == "test"].reset_index(drop=True)
        warmup = scored[scored.split.isin(["val", "train"])].head(e.warmup_pairs)
        low, high = self.label_scale()
        relevant_from = self.relevance_threshold()
        threshold = (relevant_from - low) / (high - low)

        def quality(scores) -> dict:
            return relevance_metrics(scores, test.label, test.query_id, label_range=high - low, threshold=threshold)

        def speed(score, reset=None) -> float:
            return len(test) / median_seconds(score, test, warmup=warmup, repeats=e.timing_repeats, reset=reset)

        teacher_speed = speed(lambda f: teacher_logits(teacher, f["query"], f.product_text, progress=False,
                                                       batch_size=self.config.teacher.score_batch_size))
        text_models = {"teacher": {**quality(test.teacher_score), "pairs_per_second": teacher_speed}}
        predictions = {"teacher": test.teacher_score.to_numpy()}
        if "cross_encoder_logit" in test:
            # Stacked run: "teacher" is the cross-encoder (timed above); the stack and the
            # lexical teacher get their own rows, timed with the stack (cross-encoder + lexical).
            import joblib

            lexical = joblib.load(self.run_dir / R.STACK_DIR / "lexical_teacher.joblib")
            lexical_speed = speed(lambda f: lexical.logits(f["query"], f.product_text))
            for name, column, pairs_per_second in (
                    ("teacher", "cross_encoder_logit", teacher_speed),
                    ("teacher_lexical", "lexical_logit", lexical_speed),
                    ("teacher_stack", "teacher_logit", 1 / (1 / teacher_speed + 1 / lexical_speed))):
                score = 1 / (1 + np.exp(-test[column].to_numpy() / self.config.teacher.temperature))
                text_models[name] = {**quality(score), "pairs_per_second": pairs_per_second}
                predictions[name] = score
        protocols = {}
        for protocol in PROTOCOLS:
            models = {name: dict(values) for name, values in text_models.items()}
            for name, directory in students.items():
                scorer = load_scorer(directory, graph=self.run_dir / PROTOCOL_GRAPHS[protocol])
                scores = scorer.score(test.query_id, test["query"], test.product_id, test.product_text)
                models[name] = {**quality(scores), "pairs_per_second": speed(
                    lambda f: scorer.score(f.query_id, f["query"], f.product_id, f.product_text),
                    scorer.reset_text_caches)}
                predictions[f"{name}:{protocol}"] = scores
            protocols[protocol] = {"models": add_ratios(models)}
        R.write_parquet(test[["query_id", "product_id", "label"]].assign(**predictions),
                        self.run_dir / "test_predictions.parquet")
        counts = {name: {"pairs": int((scored.split == name).sum()),
                         "queries": int(scored.loc[scored.split == name, "query_id"].nunique())}
                  for name in ("train", "val", "test_context", "test", "transfer")}
        return {"protocols": protocols, "label_scale": [low, high], "relevance_threshold": relevant_from,
                "split": counts, "config": asdict(self.config), "timings_seconds": self.timings,
                "timing": {"repeats": e.timing_repeats, "warmup_pairs": len(warmup)},
                "machine": {"cpu_threads": torch.get_num_threads(), "python": platform.python_version(),
                            "torch": torch.__version__}}

    # -- whole job ---------------------------------------------------------------------
    def _key(self, stage: str) -> dict:
        """What ``stage``'s outputs depend on: config values and the fingerprints of the stages
        whose outputs it reads (:mod:`graphrel.stages`)."""
        c, done = self.config, self.records.fingerprint
        scores = "teacher_stacking" if c.stacking.enabled else "teacher_scoring"
        backbone = {"backbone": c.teacher.backbone, "backbone_config": c.teacher.backbone_config}
        student = {k: v for k, v in asdict(c.student).items() if k != "online"}
        text_only = ("order", "cap", "new_query_share", "neighbourhood_statistics", "text_fallback")  # no graph
        # graph students start their text fallback from the text student's weights
        fallback = {R.TEXT_STUDENT: done(R.TEXT_STUDENT)} if c.student.text_fallback else {}
        keys = {
            "split": lambda: {"seed": c.seed, "data": asdict(c.data), "transfer": asdict(c.transfer),
                              "context_fraction": c.evaluation.context_fraction},
            "teacher_fit": lambda: {"inputs": {"split": done("split")}, "seed": c.seed,
                                    "teacher": {k: v for k, v in asdict(c.teacher).items()
                                                if k not in ("score_batch_size", "temperature")}},
            "teacher_scoring": lambda: {"inputs": {"split": done("split"), "teacher_fit": done("teacher_fit")},
                                        "temperature": c.teacher.temperature},
            "teacher_stacking": lambda: {"inputs": {"teacher_scoring": done("teacher_scoring")}, "seed": c.seed,
                                         "stacking": asdict(c.stacking)},
            "graph": lambda: {"inputs": {"scores": done(scores)}},
            R.TEXT_STUDENT: lambda: {"inputs": {"graph": done("graph")}, "seed": c.seed, **backbone,
                                     "student": {k: v for k, v in student.items() if k not in text_only}},
            R.GRAPH_STUDENT: lambda: {"inputs": {"graph": done("graph"), **fallback}, "seed": c.seed, **backbone,
                                      "student": student},
            R.ONLINE_STUDENT: lambda: {"inputs": {R.GRAPH_STUDENT: done(R.GRAPH_STUDENT), **fallback},
                                       "seed": c.seed, **backbone, "student": student},
            R.BERT2DNN_STUDENT: lambda: {"inputs": {"scores": done(scores)}, "seed": c.seed,
                                         "backbone": c.teacher.backbone, "bert2dnn": asdict(c.bert2dnn)},
        }
        return keys[stage]()

    def _stage(self, name: str, outputs: list[str] | None, function, *args, scratch: tuple[str, ...] = ()):
        """Run ``function(*args)`` as stage ``name``; with ``outputs`` (paths in the run
        directory) the stage is keyed: outputs (and ``scratch``) of another key are removed
        first, and ``function`` reloads outputs that are up to date."""
        start = time.perf_counter()
        fresh = True
        if outputs is not None:
            key = self._key(name)
            fresh = not self.records.up_to_date(name, key, [self.run_dir / o for o in outputs],
                                                [self.run_dir / o for o in scratch])
        log.info("stage %s %s", name, "..." if fresh else "is up to date: reusing its outputs")
        result = function(*args)
        if outputs is not None:
            self.records.finished(name, key)
        self.timings[name] = round(time.perf_counter() - start, 1)
        log.info("stage %s done in %.1fs", name, self.timings[name])
        return result

    def run(self) -> dict:
        """Run every stage (skipping up-to-date ones) and write metrics.json and report.md."""
        from graphrel.backbone import load_tokenizer
        from graphrel.data.features import PairFeaturizer
        from graphrel.data.tokens import WordpieceCache
        from graphrel.report import write_report

        c = self.config
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.records = StageRecords(self.run_dir)
        torch.manual_seed(c.seed)
        pairs = self._stage("split", [R.PAIRS, LABEL_SCALE], self.split)
        teacher = self._stage("teacher_fit", [R.TEACHER_DIR], self.fit_teacher, pairs)
        scores = self._stage("teacher_scoring", [R.TEACHER_SCORES], self.score_with_teacher, pairs, teacher,
                             scratch=(R.TEACHER_SCORE_PARTS,))
        stack_outputs = [R.STACKED_SCORES, R.STACK_DIR]
        if c.stacking.enabled:
            scores = self._stage("teacher_stacking", stack_outputs, self.stack_teachers, pairs, scores)
        else:  # a stack left by an earlier run must not become this run's teacher score
            self.records.remove("teacher_stacking", [self.run_dir / o for o in stack_outputs], "stacking is off")
        scored = pairs.merge(scores, on=["query_id", "product_id"], how="left", validate="one_to_one")
        graph = self._stage("graph", list(PROTOCOL_GRAPHS.values()), self.build_graphs, scored)
        students = {R.TEXT_STUDENT: 0, R.GRAPH_STUDENT: c.student.order}
        if c.student.order == 0:
            students.pop(R.GRAPH_STUDENT)
        featurizer = None  # built only when a student still has to be trained (resume skips it)

        def featurizer_for(name: str):
            nonlocal featurizer
            if featurizer is None and not (self.run_dir / name / R.STUDENT_MANIFEST).is_file():
                tokens = WordpieceCache(load_tokenizer(str(self.run_dir / R.TEACHER_DIR)))
                featurizer = PairFeaturizer(graph, tokens, cap=c.student.cap)
            return featurizer

        dirs = {}
        for name, order in students.items():
            dirs[name] = self._stage(name, [name], lambda n=name, k=order: self.fit_student(n, k, scored,
                                                                                            featurizer_for(n)))
        if c.student.online and R.GRAPH_STUDENT in dirs:
            dirs[R.ONLINE_STUDENT] = self._stage(R.ONLINE_STUDENT, [R.ONLINE_STUDENT], lambda: self.fit_online_student(
                scored, featurizer_for(R.ONLINE_STUDENT), dirs[R.GRAPH_STUDENT]))
        if c.bert2dnn.enabled:
            dirs[R.BERT2DNN_STUDENT] = self._stage(R.BERT2DNN_STUDENT, [R.BERT2DNN_STUDENT],
                                                   self.fit_bert2dnn_student, scored)
        metrics = self._stage("evaluate", None, self.evaluate, scored, dirs, teacher)
        R.write_json(metrics, self.run_dir / "metrics.json")
        write_report(self.run_dir, metrics)
        return metrics


def check_config(config: PipelineConfig) -> None:
    """Reject impossible settings early with a clear message (before any work is done).

    Raises:
        GraphrelInputError: for an order outside {0, 1, 2}, a count or size below 1, a
            learning rate or temperature <= 0, a share outside its range, an unknown choice.
    """
    def fail(key: str, must: str, value) -> None:
        raise GraphrelInputError(f"{key} must be {must}, got {value!r}", fix=f"set {key} in the config")

    c = config
    if c.student.order not in (0, 1, 2):
        fail("student.order", "0, 1 or 2", c.student.order)
    at_least_one = {"teacher.epochs": c.teacher.epochs, "teacher.batch_size": c.teacher.batch_size,
                    "teacher.max_length": c.teacher.max_length, "teacher.score_batch_size": c.teacher.score_batch_size,
                    "teacher.max_train_pairs": c.teacher.max_train_pairs, "teacher.max_val_pairs": c.teacher.max_val_pairs,
                    "student.epochs": c.student.epochs, "student.cap": c.student.cap,
                    "student.batch_size": c.student.batch_size, "student.hidden": c.student.hidden,
                    "student.text_hidden": c.student.text_hidden, "data.max_queries": c.data.max_queries,
                    "evaluation.timing_repeats": c.evaluation.timing_repeats,
                    "evaluation.warmup_pairs": c.evaluation.warmup_pairs,
                    "stacking.lexical_max_iter": c.stacking.lexical_max_iter}
    if c.bert2dnn.enabled:
        at_least_one.update({"bert2dnn.epochs": c.bert2dnn.epochs, "bert2dnn.batch_size": c.bert2dnn.batch_size,
                             "bert2dnn.embedding_dim": c.bert2dnn.embedding_dim,
                             "bert2dnn.min_count": c.bert2dnn.min_count})
    for key, value in at_least_one.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            fail(key, "a whole number >= 1", value)
    positive = {"teacher.learning_rate": c.teacher.learning_rate, "teacher.temperature": c.teacher.temperature,
                "student.learning_rate": c.student.learning_rate, "student.temperature": c.student.temperature,
                "stacking.regularisation": c.stacking.regularisation,
                "bert2dnn.learning_rate": c.bert2dnn.learning_rate, "bert2dnn.temperature": c.bert2dnn.temperature}
    for key, value in positive.items():
        if not value > 0:  # NaN fails too
            fail(key, "> 0", value)
    shares = {"data.val_fraction": (c.data.val_fraction, 0, 1), "data.test_fraction": (c.data.test_fraction, 0, 1),
              "evaluation.context_fraction": (c.evaluation.context_fraction, 0, 1),
              "student.new_query_share": (c.student.new_query_share, 0, 1)}
    for key, (value, low, high) in shares.items():
        if not low <= value < high:
            fail(key, f"in [{low}, {high})", value)
    if not c.data.val_fraction + c.data.test_fraction < 1:
        fail("data.val_fraction + data.test_fraction", "< 1", c.data.val_fraction + c.data.test_fraction)
    for key, value in (("student.label_weight", c.student.label_weight), ("bert2dnn.label_weight", c.bert2dnn.label_weight)):
        if not value >= 0:
            fail(key, ">= 0", value)
    if c.bert2dnn.enabled:
        from graphrel.models.bert2dnn import INITS

        if c.bert2dnn.init not in INITS:
            fail("bert2dnn.init", f"one of {INITS}", c.bert2dnn.init)
        if c.bert2dnn.scoring_dtype not in ("float32", "bfloat16"):
            fail("bert2dnn.scoring_dtype", "float32 or bfloat16", c.bert2dnn.scoring_dtype)
