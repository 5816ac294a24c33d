"""Options of the retrieval stage (:func:`graphrel.retrieval.stage.run_retrieval`; the
``retrieval`` section of the main job's config)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from graphrel.errors import GraphrelInputError

#: Loss-ablation students of EmbedDistill: name -> (label, score, embedding) weights.
ABLATIONS = {"embeddistill_label": (1, 0, 0), "embeddistill_score": (0, 1, 0),
             "embeddistill_label_score": (1, 1, 0), "embeddistill_embedding": (0, 0, 1)}


@dataclass
class RetrievalConfig:
    """Every option of the retrieval stage (checked by :meth:`check`).

    Attributes:
        enabled: run the stage in the main job (``retrieval.enabled``; off by default;
            ``configs/home_depot_retrieval.yaml`` turns it on). The defaults build what a team
            serves (BM25, the zero-shot and fine-tuned dual encoders, both EmbedDistill students,
            the hybrid, two-stage re-ranking); the studies (``ablation``, ``index_comparison``,
            ``blend_and_match``, ``dual_pooling_steps``) are off, and
            ``configs/home_depot_retrieval_study.yaml`` turns them on (about an hour more).
            :func:`~graphrel.retrieval.stage.run_retrieval` itself ignores it.
        relevance_threshold: label on the data's scale at or above which a judged product is
            relevant (2.5 on Home Depot's 1-3); also picks training positives.
        seed: sampling, batching and initialisation seed.
        backbone: ``minilm-l6`` (shipped all-MiniLM-L6-v2) or a local sentence-transformers dir.
        encode_batch_size: texts per encoder forward pass (>= 1).
        encode_precision: ``float32`` or ``bfloat16``: the bulk encoding of the catalogue by
            MiniLM encoders (what the dense retrievers search). bfloat16 (autocast; about 3.7x faster here, but
            dual-encoder recall@100 -0.0011 on validation) is used only if, on the
            catalogue's first 256 texts, every embedding's cosine with its float32 one is >=
            :data:`~graphrel.retrieval.encoding.encoders.MIN_COSINE`; else float32, and the log says why.
        target_precision: ``float32`` or ``bfloat16``: the dual encoder's embeddings of the
            EmbedDistill students' training queries and extra matching queries (training targets
            only, never searched); bfloat16 (the default: neither student's validation recall@100
            nor NDCG@10 lower than with float32 targets beyond its interval) under the same
            agreement check, on the first 256 matching queries.
        bm25_k1, bm25_b: BM25 parameters (k1 > 0, 0 <= b <= 1).
        max_train_examples: training (query, positive) rows used (>= 1).
        hard_negatives: BM25 hard negatives per example (>= 1), drawn from the top ``negative_depth``.
        teacher_batch_size: pairs per CE teacher forward pass when scoring negatives (>= 1).
        dual_encoder_steps, dual_encoder_batch_size, dual_encoder_learning_rate: fine-tuning budget
            (the defaults fit a shared 2-core CPU: about 12 minutes there; more steps help).
        dual_encoder_product_side: ``frozen`` (query side fine-tuned against the zero-shot product
            embeddings: the catalogue is encoded once) or ``trained`` (symmetric; re-encodes it).
        student_dim: static embedding dimensions of the EmbedDistill students (model2vec PCA).
        student_prune_vocabulary: keep only the wordpieces of the catalogue and the run's training
            and validation queries (so ``student_dim`` 192 stays within 1/10 of the teacher's size).
        generated_queries_per_product: synthetic queries per product title for the embedding
            matching terms (>= 0; 0: none); ``matching_run_queries``: the run's training and
            validation queries there too; ``matching_batch_size`` (>= 1) of them per step;
            ``matching_score``: also in the score distillation term.
        symmetric_student: also train ``embeddistill_symmetric`` (the student encodes the products
            too), with document embedding matching weighted ``document_weight`` (>= 0).
        student_steps, student_batch_size, student_learning_rate: student training budget.
        label_weight, score_weight, embedding_weight: EmbedDistill loss weights (>= 0).
        ablation: also train the students of :data:`ABLATIONS`.
        scale: softmax inverse temperature on cosines of every in-batch loss (> 0).
        timing_repeats: timed runs per retriever (median reported, >= 1).
        warmup_queries: validation queries run once before timing (>= 0; as many as the timed test
            queries, so a first call at full batch size (allocations, thread pools) is not timed).
        timing_k: search depth when timing (>= 1).
        threads: torch and faiss threads (>= 1).
        max_test_queries: evaluate a seeded sample of this many test queries (None: all).
        dual_pooling_steps: training steps of the dual-pooling scorer on the cross-encoder (teacher
            geometry; 0: not built), on ``dual_pooling_train_pairs`` training pairs in batches of
            ``dual_pooling_batch_size``; judged on ``dual_pooling_test_pairs`` test pairs (>= 1 each).
        index_comparison: also measure faiss HNSW (M 32, ef_construction 100, ef_search 16 to 256)
            against exact search on the ``embeddistill`` student's test queries: overlap@10/100
            with exact search, queries/s, build time, memory.
        blend_and_match: build Blend and Match (Bonab et al., WWW '23 Companion): the XMC
            model ``xmc``, the dual encoder trained with the Blend and Match loss
            (``blend_and_match``, ``blend_and_match_k*`` / ``_w*`` for the ablation), the KD
            baseline ``dual_encoder_xmc_kd`` and the rank fusions ``fusion_rrf`` /
            ``fusion_combsum`` of the dual encoder and the XMC model. The ``xmc_*``, ``blend_*``
            and ``fusion_rrf_k`` options: :class:`BlendOptions` (below).
        hybrid: build ``hybrid`` (:mod:`graphrel.retrieval.serving.hybrid`): BM25 fused with one dense
            retriever by ``ranx.fuse``, the fusion (RRF with k ``fusion_rrf_k``, or a weighted
            sum 0.1..0.9 of min-max / z-score / sum normalised scores) chosen on the run's
            validation queries by recall@100 (then NDCG@10); costs one BM25 and one dense search
            of the validation queries, the grid's fusions, and the hybrid's own test evaluation.
        hybrid_dense: the hybrid's dense input: a dense retriever of the stage
            (``embeddistill_symmetric``, default: chosen on Home Depot's validation queries, README
            "Choices made on validation"; ``dual_encoder``, ``embeddistill``, ...) or ``auto``: the
            one of ``dual_encoder`` and the EmbedDistill students with the highest validation
            recall@100 (then NDCG@10; each searches the validation queries once; the students'
            embedding matching saw the validation query texts, never their labels). The stage
            keeps no validation figures of its retrievers otherwise, hence a named default.
        rerank_retriever: the first stage of the two-stage system (a retriever's name); its top
            ``rerank_depth`` (>= 1) products per test query are re-ranked by each pair model given
            to :func:`~graphrel.retrieval.stage.run_retrieval` (the k-order student, the teacher).
    """

    enabled: bool = False
    relevance_threshold: float = 2.5
    seed: int = 0
    backbone: str = "minilm-l6"
    encode_batch_size: int = 128
    encode_precision: str = "float32"  # bfloat16 lost dual-encoder recall@100 on validation (README)
    target_precision: str = "bfloat16"  # no difference from float32 on validation (README)
    bm25_k1: float = 1.5
    bm25_b: float = 0.75
    max_train_examples: int = 8000
    hard_negatives: int = 2
    negative_depth: int = 30
    teacher_batch_size: int = 128
    dual_encoder_steps: int = 120
    dual_encoder_batch_size: int = 32
    dual_encoder_learning_rate: float = 5e-5
    dual_encoder_product_side: str = "frozen"
    student_dim: int = 192
    student_prune_vocabulary: bool = True
    generated_queries_per_product: int = 2
    matching_run_queries: bool = True
    matching_batch_size: int = 128
    matching_score: bool = True
    symmetric_student: bool = True
    document_weight: float = 1.0
    student_steps: int = 1500
    student_batch_size: int = 128
    student_learning_rate: float = 5e-3
    label_weight: float = 1.0
    score_weight: float = 1.0
    embedding_weight: float = 1.0
    ablation: bool = False
    scale: float = 20.0
    timing_repeats: int = 3
    warmup_queries: int = 1000
    timing_k: int = 100
    threads: int = 2
    max_test_queries: int | None = None
    index_comparison: bool = False
    blend_and_match: bool = False
    xmc_transfer_threshold: float | None = 0.7  # chosen on validation queries: tools/choose_xmc_on_validation.py
    xmc_max_word_ngram: int = 2
    xmc_min_char_ngram: int = 2
    xmc_max_char_ngram: int = 4
    xmc_max_features: int = 200_000
    xmc_liblinear_c: float = 10.0
    xmc_max_leaves: int = 100
    xmc_ensemble: int = 1
    blend_top_k: int = 10
    blend_xmc_weight: float = 0.5
    blend_weighting: str = "constant"
    blend_ablation_top_k: tuple[int, ...] = (3, 30)
    blend_ablation_xmc_weights: tuple[float, ...] = (0.1, 2.0)
    xmc_distillation_weight: float = 1.0
    xmc_distillation_depth: int = 100
    fusion_rrf_k: int = 60
    dual_pooling_steps: int = 0
    dual_pooling_batch_size: int = 16
    dual_pooling_train_pairs: int = 5000
    dual_pooling_test_pairs: int = 2000
    hybrid: bool = True
    hybrid_dense: str = "embeddistill_symmetric"  # chosen on validation queries (README)
    rerank_retriever: str = "dual_encoder"
    rerank_depth: int = 100

    def check(self) -> "RetrievalConfig":
        """Raise :class:`GraphrelInputError` naming the first option out of range."""
        def bad(name: str, rule: str):
            raise GraphrelInputError(f"retrieval.{name} must be {rule}, got {getattr(self, name)!r}",
                                     fix=f"set retrieval.{name} to {rule}")

        for name in ("encode_batch_size", "max_train_examples", "hard_negatives", "teacher_batch_size",
                     "dual_encoder_steps", "student_dim", "student_steps", "matching_batch_size", "timing_repeats",
                     "timing_k", "threads",
                     "rerank_depth", "dual_pooling_batch_size", "dual_pooling_train_pairs",
                     "dual_pooling_test_pairs"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                bad(name, "a whole number >= 1")
        from graphrel.retrieval.encoding.encoders import PRECISIONS

        for name in ("encode_precision", "target_precision"):
            if getattr(self, name) not in PRECISIONS:
                bad(name, " or ".join(PRECISIONS))
        for name in ("dual_encoder_batch_size", "student_batch_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 2:
                bad(name, "a whole number >= 2 (in-batch negatives need two queries)")
        if not isinstance(self.negative_depth, int) or self.negative_depth < self.hard_negatives:
            bad("negative_depth", f"a whole number >= hard_negatives ({self.hard_negatives})")
        for name in ("warmup_queries", "dual_pooling_steps", "generated_queries_per_product"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                bad(name, "a whole number >= 0")
        if self.max_test_queries is not None and (not isinstance(self.max_test_queries, int) or self.max_test_queries < 1):
            bad("max_test_queries", "null or a whole number >= 1")
        for name in ("dual_encoder_learning_rate", "student_learning_rate", "scale", "bm25_k1"):
            if not np.isfinite(getattr(self, name)) or getattr(self, name) <= 0:
                bad(name, "a finite number > 0")
        for name in ("label_weight", "score_weight", "embedding_weight", "relevance_threshold", "document_weight"):
            if not np.isfinite(getattr(self, name)) or getattr(self, name) < 0:
                bad(name, "a finite number >= 0")
        if not self.label_weight + self.score_weight + self.embedding_weight > 0:
            bad("label_weight", "> 0 when score_weight and embedding_weight are 0")
        if not 0 <= self.bm25_b <= 1:
            bad("bm25_b", "between 0 and 1")
        if not isinstance(self.hybrid_dense, str) or not self.hybrid_dense or self.hybrid_dense in (
                "bm25", "xmc", "hybrid"):
            bad("hybrid_dense", "a dense retriever of the stage (e.g. 'dual_encoder') or 'auto'")
        if self.dual_encoder_product_side not in ("frozen", "trained"):
            bad("dual_encoder_product_side", "'frozen' or 'trained'")
        if self.blend_and_match:
            BlendOptions.from_config(self)
            if self.dual_encoder_product_side != "frozen":
                bad("dual_encoder_product_side", "'frozen' with blend_and_match (or turn blend_and_match off)")
        return self


_DEFAULTS = RetrievalConfig()  # one source of the defaults: the stage's config


@dataclass
class BlendOptions:
    """Options of Blend and Match (fields of ``RetrievalConfig`` with the same names and defaults).

    Attributes:
        xmc_transfer_threshold: also train the XMC model on transfer pairs of training queries
            whose teacher score is >= this (in [0, 1]); None: labelled pairs only. Default 0.7,
            chosen on validation queries (``python tools/choose_xmc_on_validation.py --run-dir RUN``):
            on 989 Home Depot validation queries the XMC recall@100 is 0.087 with labelled pairs
            only and 0.142 at 0.7; 0.5 (0.139) and 0.6 (0.146) do not differ from 0.7 (95%
            bootstrap intervals of the difference contain 0; 0.6 - 0.7: +0.004 [-0.006, +0.014]),
            0.8 is lower (0.112).
        xmc_max_word_ngram, xmc_min_char_ngram, xmc_max_char_ngram, xmc_max_features,
        xmc_liblinear_c, xmc_max_leaves, xmc_ensemble: :class:`~graphrel.retrieval.encoding.xmc.XMCOptions`.
        blend_top_k: XMC products per training query added as positives (K >= 0).
        blend_xmc_weight: weight of the XMC positives' term (>= 0).
        blend_weighting: ``constant`` or ``score`` (XMC positive weighted by its XMC score).
        blend_ablation_top_k: K values of the ablation (each >= 0), at ``blend_xmc_weight``.
        blend_ablation_xmc_weights: XMC weights of the ablation (each >= 0), at ``blend_top_k``.
        xmc_distillation_weight: weight of the KD baseline's XMC score distillation (> 0).
        xmc_distillation_depth: XMC top products scored per training query for KD (>= 1).
        fusion_rrf_k: RRF rank constant (>= 1).
    """

    xmc_transfer_threshold: float | None = _DEFAULTS.xmc_transfer_threshold
    xmc_max_word_ngram: int = _DEFAULTS.xmc_max_word_ngram
    xmc_min_char_ngram: int = _DEFAULTS.xmc_min_char_ngram
    xmc_max_char_ngram: int = _DEFAULTS.xmc_max_char_ngram
    xmc_max_features: int = _DEFAULTS.xmc_max_features
    xmc_liblinear_c: float = _DEFAULTS.xmc_liblinear_c
    xmc_max_leaves: int = _DEFAULTS.xmc_max_leaves
    xmc_ensemble: int = _DEFAULTS.xmc_ensemble
    blend_top_k: int = _DEFAULTS.blend_top_k
    blend_xmc_weight: float = _DEFAULTS.blend_xmc_weight
    blend_weighting: str = _DEFAULTS.blend_weighting
    blend_ablation_top_k: tuple = _DEFAULTS.blend_ablation_top_k
    blend_ablation_xmc_weights: tuple = _DEFAULTS.blend_ablation_xmc_weights
    xmc_distillation_weight: float = _DEFAULTS.xmc_distillation_weight
    xmc_distillation_depth: int = _DEFAULTS.xmc_distillation_depth
    fusion_rrf_k: int = _DEFAULTS.fusion_rrf_k

    @classmethod
    def from_config(cls, config) -> "BlendOptions":
        """The options carried by a ``RetrievalConfig`` (fields it lacks keep their defaults), checked."""
        names = [f.name for f in dataclasses.fields(cls)]
        return cls(**{n: getattr(config, n) for n in names if hasattr(config, n)}).check()

    def xmc_options(self, *, seed: int, threads: int):
        from graphrel.retrieval.encoding.xmc import XMCOptions

        return XMCOptions(max_word_ngram=self.xmc_max_word_ngram, min_char_ngram=self.xmc_min_char_ngram,
                          max_char_ngram=self.xmc_max_char_ngram, max_features=self.xmc_max_features,
                          liblinear_c=self.xmc_liblinear_c, max_leaves=self.xmc_max_leaves,
                          ensemble=self.xmc_ensemble, threads=threads, seed=seed)

    def variants(self) -> dict:
        """Blend and Match retrievers to build: name -> (K, XMC weight); the main one first."""
        out = {"blend_and_match": (self.blend_top_k, self.blend_xmc_weight)}
        out.update({f"blend_and_match_k{k}": (k, self.blend_xmc_weight) for k in self.blend_ablation_top_k})
        out.update({f"blend_and_match_w{w:g}": (self.blend_top_k, w) for w in self.blend_ablation_xmc_weights})
        return out

    def check(self) -> "BlendOptions":
        """Raise :class:`GraphrelInputError` naming the first option out of range."""
        def bad(name: str, rule: str):
            raise GraphrelInputError(f"retrieval.{name} must be {rule}, got {getattr(self, name)!r}",
                                     fix=f"set retrieval.{name} to {rule}")

        def whole(value, low: int) -> bool:
            return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= low

        t = self.xmc_transfer_threshold
        if t is not None and (isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 <= t <= 1):
            bad("xmc_transfer_threshold", "null or a teacher score in [0, 1]")
        for name, low in (("xmc_max_word_ngram", 1), ("xmc_min_char_ngram", 1), ("xmc_max_features", 1),
                          ("xmc_max_leaves", 2), ("xmc_ensemble", 1), ("blend_top_k", 0),
                          ("xmc_distillation_depth", 1), ("fusion_rrf_k", 1)):
            if not whole(getattr(self, name), low):
                bad(name, f"a whole number >= {low}")
        if not whole(self.xmc_max_char_ngram, self.xmc_min_char_ngram):
            bad("xmc_max_char_ngram", f"a whole number >= xmc_min_char_ngram ({self.xmc_min_char_ngram})")
        for name, positive in (("xmc_liblinear_c", True), ("xmc_distillation_weight", True),
                               ("blend_xmc_weight", False)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) \
                    or value < 0 or (positive and value == 0):
                bad(name, "a finite number > 0" if positive else "a finite number >= 0")
        if self.blend_weighting not in ("constant", "score"):
            bad("blend_weighting", "'constant' or 'score'")
        self.blend_ablation_top_k = tuple(self.blend_ablation_top_k or ())
        self.blend_ablation_xmc_weights = tuple(self.blend_ablation_xmc_weights or ())
        if not all(whole(k, 0) for k in self.blend_ablation_top_k):
            bad("blend_ablation_top_k", "a list of whole numbers >= 0")
        if not all(isinstance(w, (int, float)) and not isinstance(w, bool) and np.isfinite(w) and w >= 0
                   for w in self.blend_ablation_xmc_weights):
            bad("blend_ablation_xmc_weights", "a list of finite numbers >= 0")
        return self
