"""The main job's config: one dataclass per section (the keys of ``configs/home_depot.yaml``
and of ``graphrel pipeline --help``) and :func:`check_config`, which rejects impossible
values before any work is done."""

from __future__ import annotations

from dataclasses import dataclass, field

from graphrel.backbone import MINILM
from graphrel.errors import GraphrelInputError
from graphrel.retrieval.config import RetrievalConfig
from graphrel.retrieval.knn.config import KnnConfig


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
    ``scoring_backend`` (``auto``, ``fp32``, ``bf16``, ``int8``, ``int8_all``;
    :mod:`graphrel.scoring.teacher_backends`): how every pair is scored. Each backend is first
    checked against fp32 on ``agreement_pairs`` validation pairs; ``auto`` takes the fastest
    whose Spearman correlation with fp32 is >= 0.999, a named one is used only if it reaches
    that, else fp32 (``teacher_backend.json`` says which ran and why). ``precision``: the
    fine-tuning precision, ``32-true`` (float32) or ``bf16-mixed`` (Lightning's bfloat16 mixed
    precision); ``tools/compare_teacher_precision.py`` compares the two on validation.
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
    scoring_backend: str = "auto"
    agreement_pairs: int = 512
    precision: str = "32-true"
    random_negatives: int = 1  # chosen on validation (README): pairs and two-stage re-ranking both gain
    mined_negatives: int = 0
    mined_depth: int = 50


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
    for a query new to the log. ``similar_queries``: graph students (and BERM-O) also read each
    pair's m nearest logged queries (text similarity >= ``min_similarity``;
    :class:`graphrel.data.query_neighbours.NearestLoggedQueries`), a neighbourhood a query new
    to the log has too; the text fallback then takes only pairs of which nothing is known. 0: none.
    ``ranking_loss`` (``none``, ``listwise``, ``margin_mse``; :class:`graphrel.models.korder.
    KOrderStudent`): a ranking distillation loss over each query's candidates added to every
    k-order student's pointwise loss with weight ``ranking_weight``.
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
    text_fallback: bool = False
    similar_queries: int = 4
    min_similarity: float = 0.5
    ranking_loss: str = "none"
    ranking_weight: float = 1.0


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

    Defaults chosen on Home Depot's validation queries (README, "Choices made on validation"):
    n-grams initialised from the backbone's sentence encoder (wordpiece: no different), exact
    n-gram match features and human labels in the loss (each better than without, 95%
    intervals excluding 0), bfloat16 MLP when scoring. ``init: wordpiece`` /
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
    """How students are evaluated (:mod:`graphrel.pipeline.evaluation`).

    ``context_fraction``: share of each test query's labelled pairs kept in the graph as
    teacher-scored context (protocol ``new_pairs``); the rest are evaluated.
    ``relevance_threshold``: label (on the data's scale) at or above which a pair counts as
    relevant for AUC; None: three quarters up the scale (2.5 on Home Depot's 1-3).
    ``timing_repeats``: interleaved timed runs per model (the median, the slowest and the
    fastest are reported), each after a warm-up on ``warmup_pairs`` training and validation pairs.
    ``bootstrap_resamples``: query resamples of the paired bootstrap behind every 95% interval.
    ``ndcg_min_pairs``: fewest evaluated pairs a query needs to count in the pair tables' NDCG
    (each query's whole ranking; a random order's figure is reported beside it).
    """

    context_fraction: float = 0.5
    relevance_threshold: float | None = None
    timing_repeats: int = 5
    warmup_pairs: int = 256
    bootstrap_resamples: int = 1000
    ndcg_min_pairs: int = 5


@dataclass
class PipelineConfig:
    """Everything the main job needs; one ``seed`` drives split, init and sampling (the
    retrieval stage has its own ``retrieval.seed``, 0 by default like ``seed``)."""

    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    transfer: TransferConfig = field(default_factory=TransferConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    stacking: StackingConfig = field(default_factory=StackingConfig)
    bert2dnn: Bert2DnnConfig = field(default_factory=Bert2DnnConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    knn: KnnConfig = field(default_factory=KnnConfig)


#: Fine-tuning precisions of the teacher (Lightning ``Trainer(precision=...)``).
TEACHER_PRECISIONS = ("32-true", "bf16-mixed")


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
                    "evaluation.bootstrap_resamples": c.evaluation.bootstrap_resamples,
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
              "student.new_query_share": (c.student.new_query_share, 0, 1),
              "student.min_similarity": (c.student.min_similarity, 0, 1)}
    for key, (value, low, high) in shares.items():
        if not low <= value < high:
            fail(key, f"in [{low}, {high})", value)
    if isinstance(c.evaluation.ndcg_min_pairs, bool) or not isinstance(c.evaluation.ndcg_min_pairs, int) \
            or c.evaluation.ndcg_min_pairs < 2:
        fail("evaluation.ndcg_min_pairs", "a whole number >= 2", c.evaluation.ndcg_min_pairs)
    for key, value in (("teacher.random_negatives", c.teacher.random_negatives),
                       ("teacher.mined_negatives", c.teacher.mined_negatives)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            fail(key, "a whole number >= 0", value)
    if isinstance(c.teacher.mined_depth, bool) or not isinstance(c.teacher.mined_depth, int) \
            or c.teacher.mined_depth < 1:
        fail("teacher.mined_depth", "a whole number >= 1", c.teacher.mined_depth)
    if isinstance(c.student.similar_queries, bool) or not isinstance(c.student.similar_queries, int) \
            or c.student.similar_queries < 0:
        fail("student.similar_queries", "a whole number >= 0", c.student.similar_queries)
    from graphrel.scoring.teacher_backends import CHOICES

    if c.teacher.scoring_backend not in CHOICES:
        fail("teacher.scoring_backend", ", ".join(CHOICES), c.teacher.scoring_backend)
    if c.teacher.precision not in TEACHER_PRECISIONS:
        fail("teacher.precision", " or ".join(TEACHER_PRECISIONS), c.teacher.precision)
    if isinstance(c.teacher.agreement_pairs, bool) or not isinstance(c.teacher.agreement_pairs, int) \
            or c.teacher.agreement_pairs < 32:
        fail("teacher.agreement_pairs", "a whole number >= 32", c.teacher.agreement_pairs)
    if c.student.ranking_loss not in ("none", "listwise", "margin_mse"):
        fail("student.ranking_loss", "none, listwise or margin_mse", c.student.ranking_loss)
    if not c.data.val_fraction + c.data.test_fraction < 1:
        fail("data.val_fraction + data.test_fraction", "< 1", c.data.val_fraction + c.data.test_fraction)
    for key, value in (("student.label_weight", c.student.label_weight), ("bert2dnn.label_weight", c.bert2dnn.label_weight),
                       ("student.ranking_weight", c.student.ranking_weight)):
        if not value >= 0:
            fail(key, ">= 0", value)
    if c.bert2dnn.enabled:
        from graphrel.models.bert2dnn import INITS

        if c.bert2dnn.init not in INITS:
            fail("bert2dnn.init", f"one of {INITS}", c.bert2dnn.init)
        if c.bert2dnn.scoring_dtype not in ("float32", "bfloat16"):
            fail("bert2dnn.scoring_dtype", "float32 or bfloat16", c.bert2dnn.scoring_dtype)
    if c.retrieval.enabled:
        c.retrieval.check()
    if c.knn.enabled:
        if not c.retrieval.enabled and c.knn.retrievers_dir is None:
            fail("knn.enabled", "false unless retrieval.enabled (it searches with the retrieval stage's dual "
                 "encoder and BM25)", c.knn.enabled)
        c.knn.check()
