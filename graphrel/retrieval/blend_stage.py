"""Blend and Match in the retrieval stage: the XMC model, the BM dual encoder, the KD baseline and
rank fusion, built (or reused by build key) under ``OUTPUT/retrievers``.

:func:`build_blend_and_match` is called by the retrieval stage after the dual encoder is built;
it writes the retriever directories ``xmc``, ``blend_and_match``, ``dual_encoder_xmc_kd`` (and,
with an ablation, ``blend_and_match_k{K}`` / ``blend_and_match_w{W}``) and returns the fusion
entries ``fusion_rrf`` and ``fusion_combsum`` (the dual encoder's and the XMC model's top 1000
fused with ``ranx.fuse``) in the ``retrieval`` entry shape of ``metrics.json``. Every option is a
field of :class:`BlendOptions`, named as the ``RetrievalConfig`` field that carries it.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from graphrel.errors import GraphrelInputError
from graphrel.retrieval.config import RetrievalConfig

_DEFAULTS = RetrievalConfig()  # one source of the defaults: the stage's config

log = logging.getLogger("graphrel")


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
        xmc_liblinear_c, xmc_max_leaves, xmc_ensemble: :class:`~graphrel.retrieval.xmc.XMCOptions`.
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
        from graphrel.retrieval.xmc import XMCOptions

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


def build_xmc_retriever(pairs, catalogue, options: BlendOptions, *, threshold: float, seed: int, threads: int,
                        directory: Path, key: str):
    """Fit the XMC model on the training pairs (+ transfer pairs) and write its retriever directory."""
    from graphrel.retrieval.retriever import save_xmc_retriever
    from graphrel.retrieval.build_keys import reusable as _reusable
    from graphrel.retrieval.build_keys import set_key as _set_key
    from graphrel.retrieval.xmc import XMCModel, xmc_training_examples

    if not _reusable(directory, key):
        import tempfile

        queries, labels, counts = xmc_training_examples(pairs, threshold=threshold,
                                                        transfer_threshold=options.xmc_transfer_threshold)
        with tempfile.TemporaryDirectory(dir=directory.parent) as tmp:
            model = XMCModel.fit(queries, labels, Path(tmp) / "xmc", options=options.xmc_options(seed=seed,
                                                                                               threads=threads))
            save_xmc_retriever(directory, model=model, catalogue=catalogue, extra={"pairs": counts})
        _set_key(directory, key)
        log.info("retrieval: XMC model on %d queries, %d labels in %.0f s", model.training["examples"],
                 len(model), model.training["train_seconds"])
    return XMCModel.load(directory / "xmc")


def _relevant(pairs, threshold: float) -> tuple[dict, dict]:
    """query id -> products judged relevant, and query id -> every judged product (train split)."""
    train = pairs[pairs["split"] == "train"].astype({"product_id": str})
    judged = train.groupby("query_id")["product_id"].agg(set).to_dict()
    good = train[train["label"].to_numpy(dtype=float) >= threshold - 1e-9]
    return good.groupby("query_id")["product_id"].agg(set).to_dict(), judged


def blend_examples(examples, pairs, catalogue, positives_by_query: dict, *, config, threshold: float, bm25=None):
    """The training examples with their BM25 hard negatives re-drawn outside the judged-relevant
    products **and** the XMC positives of each query (same count, depth and seed as the dual encoder's)."""
    import pandas as pd

    from graphrel.retrieval.bm25 import BM25Index
    from graphrel.retrieval.mining import mine_hard_negatives

    xmc_rows = pd.DataFrame([(q, p, 1.0) for q, (ids, _) in positives_by_query.items() for p in ids],
                            columns=["query_id", "product_id", "label"])
    excluded = pd.concat([pairs[["query_id", "product_id", "label"]].astype({"product_id": str}), xmc_rows])
    base = examples[[c for c in examples.columns if not c.startswith(("negative_", "teacher_negative_"))]]
    bm25 = bm25 or BM25Index(catalogue.texts, k1=config.bm25_k1, b=config.bm25_b)
    return mine_hard_negatives(base, excluded, bm25, catalogue, negatives=config.hard_negatives,
                               depth=config.negative_depth, threshold=threshold, seed=config.seed)


def train_variant(kind: str, examples, catalogue, product_embeddings, config, *, positives_by_query=None,
                  relevant=None, top_k: int = 0, xmc_weight: float = 0.0, weighting: str = "constant",
                  xmc_scores_by_query=None, distillation_weight: float = 1.0, steps: int | None = None):
    """A fresh backbone trained with the BM loss (``kind="blend"``) or label loss + XMC KD
    (``kind="kd"``), the dual encoder's budget (``config.dual_encoder_*``) unless ``steps`` is given.

    Returns:
        ``(model, losses, seconds)``.
    """
    from graphrel.retrieval.blend_and_match import train_blend_and_match, train_xmc_distillation
    from graphrel.retrieval.encoders import load_encoder

    model = load_encoder(config.backbone)
    rows = {p: i for i, p in enumerate(catalogue.product_ids)}
    budget = dict(steps=steps or config.dual_encoder_steps, batch_size=config.dual_encoder_batch_size,
                  learning_rate=config.dual_encoder_learning_rate, seed=config.seed, scale=config.scale,
                  product_embeddings=product_embeddings, product_rows=rows)
    start = time.perf_counter()
    if kind == "blend":
        top = {q: (ids[:top_k], scores[:top_k]) for q, (ids, scores) in positives_by_query.items()}
        losses = train_blend_and_match(model, examples, positives_by_query=top, relevant=relevant,
                                       xmc_weight=xmc_weight, weighting=weighting, **budget)
    else:
        losses = train_xmc_distillation(model, examples, xmc_scores_by_query=xmc_scores_by_query,
                                        distillation_weight=distillation_weight, **budget)
    return model, losses, time.perf_counter() - start


def build_blend_and_match(pairs, catalogue, examples, judged, *, config, threshold: float,
                          product_embeddings: np.ndarray, upstream_key: str, output_dir, warmup=()) -> dict:
    """Build (or reuse) the Blend and Match retrievers and return the rank-fusion entries.

    Args:
        pairs: the run's pairs (``load_run_pairs``: labels normalised, ``teacher_score``).
        catalogue: the stage's :class:`~graphrel.retrieval.catalogue.Catalogue`.
        examples: the stage's training examples (the dual encoder's).
        judged: the judged test queries (:class:`~graphrel.retrieval.catalogue.JudgedQueries`).
        config: the ``RetrievalConfig`` (budget fields ``dual_encoder_*``, ``scale``, ``seed``,
            ``backbone``, ``threads``, ``hard_negatives``, ``negative_depth``, ``bm25_*``, timing
            fields; Blend and Match fields as :class:`BlendOptions`).
        threshold: normalised relevance threshold.
        product_embeddings: (N, d) the dual encoder's frozen product embeddings (zero-shot MiniLM).
        upstream_key: the dual encoder's build key (covers the run, examples and embeddings).
        output_dir: the stage's output directory (``retrievers/dual_encoder`` must exist).
        warmup: queries run once before timing the fused system.

    Raises:
        GraphrelInputError: a bad option, or ``dual_encoder_product_side`` not ``frozen``.

    Returns:
        ``{"retrievers": [names built, report order], "fusion": {"fusion_rrf": entry,
        "fusion_combsum": entry}}``; entries have the keys of
        :func:`~graphrel.retrieval.report.evaluate_retrievers` (``teacher`` None).
    """
    from graphrel.retrieval.blend_and_match import xmc_positives
    from graphrel.retrieval.encoders import count_parameters
    from graphrel.retrieval.retriever import save_dense_retriever
    from graphrel.retrieval.build_keys import key as _key
    from graphrel.retrieval.build_keys import reusable as _reusable

    options = BlendOptions.from_config(config)
    if getattr(config, "dual_encoder_product_side", "frozen") != "frozen":
        raise GraphrelInputError("Blend and Match trains the query side against frozen product embeddings, so it "
                                 "compares only with a dual encoder whose product side is frozen",
                                 fix="set retrieval.dual_encoder_product_side to frozen, or turn Blend and Match off")
    root = Path(output_dir) / "retrievers"
    xmc_fields = {f.name: getattr(options, f.name) for f in dataclasses.fields(options) if f.name.startswith("xmc_")}
    xmc_key = _key(up=upstream_key, threshold=threshold, seed=config.seed, **xmc_fields)
    xmc = build_xmc_retriever(pairs, catalogue, options, threshold=threshold, seed=config.seed,
                              threads=config.threads, directory=root / "xmc", key=xmc_key)
    budget = dict(xmc=xmc_key, steps=config.dual_encoder_steps, bs=config.dual_encoder_batch_size,
                  lr=config.dual_encoder_learning_rate, scale=config.scale, seed=config.seed,
                  neg=config.hard_negatives, depth=config.negative_depth)
    relevant, judged_train = _relevant(pairs, threshold)
    variants = options.variants()
    cache = {}

    def positives():
        if "positives" not in cache:
            deepest = max(k for k, _ in variants.values())
            cache["positives"] = xmc_positives(examples, xmc, k=deepest, judged=judged_train)
            cache["examples"] = blend_examples(examples, pairs, catalogue, cache["positives"], config=config,
                                               threshold=threshold)
        return cache["positives"], cache["examples"]

    def save(name, model, losses, seconds, key, extra):
        save_dense_retriever(root / name, query_encoder=model, catalogue=catalogue, product_embeddings=product_embeddings,
                             name=name, product_encoder_parameters=count_parameters(model),
                             extra={"build_key": key, "train_seconds": seconds, "first_loss": losses[0],
                                    "last_loss": float(np.mean(losses[-20:])), "secondary": "xmc", **extra})

    for name, (k, weight) in variants.items():
        key = _key(kind="blend", k=k, w=weight, weighting=options.blend_weighting, **budget)
        if not _reusable(root / name, key):
            top, blend_rows = positives()
            model, losses, seconds = train_variant("blend", blend_rows, catalogue, product_embeddings, config,
                                                   positives_by_query=top, relevant=relevant, top_k=k,
                                                   xmc_weight=weight, weighting=options.blend_weighting)
            save(name, model, losses, seconds, key, {"top_k": k, "xmc_weight": weight,
                                                     "weighting": options.blend_weighting})
    key = _key(kind="kd", w=options.xmc_distillation_weight, d=options.xmc_distillation_depth, **budget)
    if not _reusable(root / "dual_encoder_xmc_kd", key):
        scores = xmc_positives(examples, xmc, k=options.xmc_distillation_depth, judged={})
        by_query = {q: dict(zip(ids, map(float, s))) for q, (ids, s) in scores.items()}
        model, losses, seconds = train_variant("kd", examples, catalogue, product_embeddings, config,
                                               xmc_scores_by_query=by_query,
                                               distillation_weight=options.xmc_distillation_weight)
        save("dual_encoder_xmc_kd", model, losses, seconds, key,
             {"distillation_weight": options.xmc_distillation_weight, "depth": options.xmc_distillation_depth})
    from graphrel.retrieval.fusion import fusion_entries

    fusion = fusion_entries([root / "dual_encoder", root / "xmc"], judged, Path(output_dir) / "runs",
                            rrf_k=options.fusion_rrf_k, warmup=warmup, repeats=config.timing_repeats,
                            timing_k=config.timing_k, threads=config.threads)
    return {"retrievers": ["xmc", *variants, "dual_encoder_xmc_kd"], "fusion": fusion}
