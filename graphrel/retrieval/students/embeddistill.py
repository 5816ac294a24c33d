"""EmbedDistill (Kim et al., "EmbedDistill: A Geometric Knowledge Distillation for Information
Retrieval", arXiv 2301.12005): an asymmetric dual-encoder student.

The student encodes queries only; products keep the **teacher dual encoder's frozen product
embeddings** (the paper's "inherited document encoder"). Its query encoder is small: static
token embeddings distilled from the teacher with model2vec (Tulkens & van Dongen, 2024: each
vocabulary token encoded by the teacher, PCA to ``dim``, SIF weighting), mean-pooled, then a
learnable linear projection psi into the teacher's embedding space and L2 normalisation:
``e_s(q) = normalise(psi(mean_t E[t]))``. Losses (weights configurable, any may be 0):

- **label loss**: in-batch softmax over the batch's positives and hard negatives
  (sentence-transformers ``MultipleNegativesRankingLoss``, scale 20);
- **score distillation**: KL(softmax(s * <e_t(q), e_t(p)>) || softmax(s * <e_s(q), e_t(p)>))
  over every product p of the batch (positives and hard negatives), teacher = the dual encoder
  (the paper's in-batch softmax score distillation; s = the same scale 20);
- **query embedding matching**: mean ||e_t(q) - psi(e_s(q))||_2 (plain L2, the paper's Eq. 7),
  sentence-transformers ``EmbedDistillLoss(distance_metric="l2")``; psi is the student's own
  projection (a ``Dense`` module), so it is kept with the model and used at search time.

Extra unlabelled queries (synthetic queries of :mod:`graphrel.data.query_generation`,
the run's other train/val queries) can join the matching term and, optionally, the score
distillation term (:func:`train_asymmetric_student`). The parameter budget goes furthest
spent on width: :func:`prune_vocabulary` keeps only the tokens the catalogue and training
queries use (Home Depot: 29.5k -> 11.2k), which pays for ``dim`` 192 instead of 64 at about
the same size (2.22M vs 1.91M parameters; the teacher has 22.7M); on Home Depot that width
moved the student from 82% to 98% of the teacher's recall@100.

Reconstruction choices (not in the paper): model2vec static embeddings as the small query
encoder (the paper uses smaller BERTs); synthetic queries cut from product titles instead of
a seq2seq generator; the projection applied before normalisation; the pruned vocabulary.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from graphrel.retrieval.students.training import embed, negative_columns, train_on_distinct_queries


@dataclass(frozen=True)
class LossWeights:
    """Weights of the three EmbedDistill terms (>= 0, not all 0)."""

    label: float = 1.0
    score: float = 1.0
    embedding: float = 1.0

    def __post_init__(self) -> None:
        values = (self.label, self.score, self.embedding)
        if any(not np.isfinite(v) or v < 0 for v in values) or not any(values):
            raise ValueError(f"loss weights must be finite, >= 0 and not all 0, got {values}")


def distil_static_embeddings(teacher_dir: str | Path, *, dim: int):
    """model2vec static token embeddings of a sentence encoder, as a sentence-transformers module.

    Args:
        teacher_dir: local sentence-transformers / Hugging Face directory of the teacher.
        dim: PCA dimensions of the token embeddings (<= the teacher's hidden size).

    Returns:
        ``StaticEmbedding`` with (vocabulary, dim) trainable weights and the teacher's tokenizer.
    """
    from model2vec.distill import distill
    from sentence_transformers.sentence_transformer.modules import StaticEmbedding

    static = distill(model_name=str(teacher_dir), pca_dims=int(dim), device="cpu", quantize_to="float32")
    with tempfile.TemporaryDirectory() as tmp:
        static.save_pretrained(tmp)
        module = StaticEmbedding.from_model2vec(tmp)
    return module.float()  # trained with AdamW: float32 weights


def prune_vocabulary(static_embedding, texts):
    """The static embeddings restricted to the tokens ``texts`` use (plus the special tokens).

    Rows of tokens no text uses are dropped and the tokenizer's WordPiece vocabulary renumbered,
    so the parameters shrink with the vocabulary (Home Depot: 29.5k -> 11.2k tokens for the
    catalogue and the train/val queries), which buys a larger ``dim`` for the same budget. A
    word made of kept tokens is tokenised as before; an unseen word may split into other
    (kept) pieces, or ``[UNK]`` when none fits.

    Args:
        static_embedding: a ``StaticEmbedding`` with a WordPiece tokenizer (from
            :func:`distil_static_embeddings`); not modified.
        texts: the texts whose tokens are kept (e.g. catalogue titles + training queries; never
            test queries).

    Returns:
        A new ``StaticEmbedding`` (kept rows copied, trainable).

    Raises:
        ValueError: the tokenizer is not WordPiece, or ``texts`` is empty.
    """
    import json

    from sentence_transformers.sentence_transformer.modules import StaticEmbedding
    from tokenizers import Tokenizer

    texts = [str(t) for t in texts]
    if not texts:
        raise ValueError("prune_vocabulary needs at least one text")
    spec = json.loads(static_embedding.tokenizer.to_str())
    if spec["model"].get("type") != "WordPiece":
        raise ValueError(f"only a WordPiece tokenizer can be pruned, got {spec['model'].get('type')!r}")
    used = {i for encoding in static_embedding.tokenizer.encode_batch(texts, add_special_tokens=False)
            for i in encoding.ids}
    special = {token["content"] for token in spec["added_tokens"]} | {spec["model"]["unk_token"]}
    vocabulary = spec["model"]["vocab"]
    keep = sorted(used | {i for token, i in vocabulary.items() if token in special}
                  | {token["id"] for token in spec["added_tokens"]})
    new_id = {old: new for new, old in enumerate(keep)}
    spec["model"]["vocab"] = {token: new_id[i] for token, i in vocabulary.items() if i in new_id}
    for token in spec["added_tokens"]:
        token["id"] = new_id[token["id"]]
    weights = static_embedding.embedding.weight.detach()[torch.as_tensor(keep)].clone()
    return StaticEmbedding(Tokenizer.from_str(json.dumps(spec)), embedding_weights=weights)


def build_asymmetric_student(static_embedding, *, output_dim: int, seed: int):
    """Student query encoder: static embeddings -> linear projection psi -> L2 normalisation.

    Args:
        static_embedding: a ``StaticEmbedding`` module (weights copied, so students share none).
        output_dim: the teacher's embedding dimension (psi's output).
        seed: psi's initialisation seed.

    Returns:
        ``SentenceTransformer([StaticEmbedding, Dense(dim -> output_dim, identity), Normalize])``.
    """
    import copy

    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense, Normalize

    torch.manual_seed(seed)
    static = copy.deepcopy(static_embedding)
    psi = Dense(static.embedding_dim, output_dim, activation_function=torch.nn.Identity())
    return SentenceTransformer(modules=[static, psi, Normalize()], device="cpu")


def score_distillation(student_queries: torch.Tensor, teacher_queries: torch.Tensor, products: torch.Tensor,
                       *, scale: float, teacher_products: torch.Tensor | None = None) -> torch.Tensor:
    """In-batch softmax score distillation (EmbedDistill, arXiv 2301.12005, Sec. 3).

    Args:
        student_queries: (B, d) student query embeddings (unit rows).
        teacher_queries: (B, d) teacher query embeddings (unit rows, no gradient).
        products: (M, d) the batch's product embeddings on the student's side (the teacher's,
            frozen, for an asymmetric student; the student's own for a symmetric one).
        scale: inverse temperature on cosines (> 0).
        teacher_products: (M, d) the same products embedded by the teacher (no gradient);
            None: ``products``.

    Returns:
        Scalar KL(teacher || student) of the rows' softmax distributions over the M products,
        averaged over the B queries (``batchmean``).
    """
    teacher_products = products if teacher_products is None else teacher_products
    student = torch.log_softmax(scale * student_queries @ products.T, dim=1)
    teacher = torch.softmax(scale * teacher_queries.detach() @ teacher_products.detach().T, dim=1)
    return torch.nn.functional.kl_div(student, teacher, reduction="batchmean")


def matching_batches(count: int, *, batch_size: int, steps: int, seed: int):
    """Row indices of ``steps`` batches of matching queries: seeded passes without replacement.

    Yields:
        (min(batch_size, count),) int64 arrays; a batch never repeats a row.
    """
    if count < 1 or batch_size < 1:
        raise ValueError(f"matching queries and matching_batch_size must be >= 1, got {count}, {batch_size}")
    rng = np.random.default_rng(seed)
    size, pending = min(batch_size, count), np.zeros(0, dtype=np.int64)
    for _ in range(steps):
        if len(pending) < size:  # a new pass: the rest of the old one is dropped (no repeats in a batch)
            pending = rng.permutation(count)
        batch, pending = pending[:size], pending[size:]
        yield batch


def check_matching_queries(matching_queries, matching_teacher_embeddings, *, dim: int, batch_size: int | None,
                           weights: LossWeights, matching_score: bool) -> tuple[np.ndarray, torch.Tensor] | None:
    """Validated (texts, teacher embeddings) of extra matching queries, or None without them.

    Raises:
        ValueError: only one of the two given, lengths or dims disagree, an empty query set, a
            batch size < 1, or no loss term that would use them (embedding weight 0 and no
            ``matching_score``).
    """
    if matching_queries is None and matching_teacher_embeddings is None:
        return None
    if matching_queries is None or matching_teacher_embeddings is None:
        raise ValueError("pass matching_queries and matching_teacher_embeddings together")
    texts = np.asarray([str(q) for q in matching_queries], dtype=object)
    vectors = np.asarray(matching_teacher_embeddings, dtype=np.float32)
    if len(texts) == 0:
        raise ValueError("matching_queries is empty")
    if vectors.ndim != 2 or vectors.shape != (len(texts), dim):
        raise ValueError(f"matching_teacher_embeddings must be ({len(texts)}, {dim}), got {vectors.shape}")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"matching_batch_size must be a whole number >= 1, got {batch_size!r}")
    if not weights.embedding and not (matching_score and weights.score):
        raise ValueError("matching queries would be unused: embedding weight is 0 (and no score distillation on them)")
    return texts, torch.from_numpy(np.ascontiguousarray(vectors))


def training_setup(student, examples: pd.DataFrame, product_rows: dict, teacher_query_embeddings, extra, *,
                   scale: float, seed: int, steps: int, batch_size: int, matching_batch_size: int | None):
    """What both EmbedDistill students train with, seeded: ``(label_loss, matching_loss, rows,
    teacher_q, queries, extra_batches)``: the in-batch softmax and L2 embedding-matching losses
    (sentence-transformers), (E, 1 + negatives) catalogue rows of each example's positive and
    negatives, (E, d) teacher query embeddings, (E,) query texts, and the batches of extra
    matching queries (None without them)."""
    from sentence_transformers.sentence_transformer.losses import EmbedDistillLoss, MultipleNegativesRankingLoss

    torch.manual_seed(seed)
    label_loss = MultipleNegativesRankingLoss(student, scale=scale)
    matching_loss = EmbedDistillLoss(student, distance_metric="l2")
    columns = ["product_id"] + negative_columns(examples, "negative_")
    rows = np.stack([examples[c].map(product_rows).to_numpy(dtype=np.int64) for c in columns], axis=1)
    teacher_q = torch.from_numpy(np.ascontiguousarray(teacher_query_embeddings, dtype=np.float32))
    queries = examples["query"].to_numpy(dtype=object)
    extra_batches = None if extra is None else matching_batches(
        len(extra[0]), batch_size=matching_batch_size or batch_size, steps=steps, seed=seed + 1)
    return label_loss, matching_loss, rows, teacher_q, queries, extra_batches


def train_asymmetric_student(student, examples: pd.DataFrame, *, product_embeddings: np.ndarray,
                             product_rows: dict, teacher_query_embeddings: np.ndarray, weights: LossWeights,
                             steps: int, batch_size: int, learning_rate: float, seed: int,
                             scale: float = 20.0, matching_queries=None,
                             matching_teacher_embeddings: np.ndarray | None = None,
                             matching_batch_size: int | None = None, matching_score: bool = False) -> list[float]:
    """Train an asymmetric EmbedDistill student in place against frozen product embeddings.

    Extra matching queries (the paper's synthetic queries, e.g. from
    :func:`graphrel.data.query_generation.generate_queries`, or unlabelled queries of the
    run) have no products: each step draws ``matching_batch_size`` of them beside the labelled
    batch and adds them to the query embedding matching term (the mean L2 runs over labelled
    and extra queries together) and, with ``matching_score``, to the score distillation term
    (softmax over the labelled batch's products).

    Args:
        student: from :func:`build_asymmetric_student` (its output dim = the products').
        examples: ``query_id, query, product_id, negative_1..n`` (product ids).
        product_embeddings: (N, d) the teacher's unit product embeddings, catalogue order.
        product_rows: product id -> catalogue row.
        teacher_query_embeddings: (len(examples), d) the teacher's embedding of each example's query.
        weights: the three loss weights.
        steps, batch_size, learning_rate, seed: as
            :func:`~graphrel.retrieval.students.training.train_on_distinct_queries`; scale: softmax inverse temperature.
        matching_queries: M extra query texts, or None (no extra queries).
        matching_teacher_embeddings: (M, d) the teacher's unit embeddings of ``matching_queries``.
        matching_batch_size: extra queries per step (>= 1; default ``batch_size``).
        matching_score: also distil in-batch scores on the extra queries.

    Returns:
        The total loss of every step.

    Raises:
        ValueError: bad extra matching queries (see :func:`check_matching_queries`).
    """
    extra = check_matching_queries(matching_queries, matching_teacher_embeddings, dim=product_embeddings.shape[1],
                                   batch_size=matching_batch_size, weights=weights, matching_score=matching_score)
    label_loss, matching_loss, rows, teacher_q, queries, extra_batches = training_setup(
        student, examples, product_rows, teacher_query_embeddings, extra, scale=scale, seed=seed, steps=steps,
        batch_size=batch_size, matching_batch_size=matching_batch_size)
    products = torch.from_numpy(np.ascontiguousarray(product_embeddings, dtype=np.float32))

    def step_loss(batch: np.ndarray) -> torch.Tensor:
        texts, targets = queries[batch], teacher_q[batch]
        if extra_batches is not None:
            more = next(extra_batches)
            texts, targets = np.concatenate([texts, extra[0][more]]), torch.cat([targets, extra[1][more]])
        q_all = embed(student, texts)
        q_s = q_all[:len(batch)]
        docs = [products[rows[batch, j]] for j in range(rows.shape[1])]
        total = q_s.new_zeros(())
        if weights.label:
            total = total + weights.label * label_loss.compute_loss_from_embeddings([q_s, *docs], None)
        if weights.score:
            scored = slice(None) if matching_score else slice(0, len(batch))
            total = total + weights.score * score_distillation(q_all[scored], targets[scored], torch.cat(docs),
                                                               scale=scale)
        if weights.embedding:
            total = total + weights.embedding * matching_loss.compute_loss_from_embeddings([q_all], [targets])
        return total

    return train_on_distinct_queries(student, examples["query_id"].to_numpy(), step_loss, steps=steps,
                                     batch_size=batch_size, learning_rate=learning_rate, seed=seed,
                                     name="embeddistill student")
