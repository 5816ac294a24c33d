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

Reconstruction choices (not in the paper): model2vec static embeddings as the small query
encoder (the paper uses smaller BERTs); no generated queries yet; the projection applied before
normalisation.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from graphrel.retrieval.training import distinct_query_batches, embed, negative_columns, run_steps


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
                       *, scale: float) -> torch.Tensor:
    """In-batch softmax score distillation (EmbedDistill, arXiv 2301.12005, Sec. 3).

    Args:
        student_queries: (B, d) student query embeddings (unit rows).
        teacher_queries: (B, d) teacher query embeddings (unit rows, no gradient).
        products: (M, d) the batch's product embeddings (the teacher's, frozen).
        scale: inverse temperature on cosines (> 0).

    Returns:
        Scalar KL(teacher || student) of the rows' softmax distributions over the M products,
        averaged over the B queries (``batchmean``).
    """
    student = torch.log_softmax(scale * student_queries @ products.T, dim=1)
    teacher = torch.softmax(scale * teacher_queries.detach() @ products.T, dim=1)
    return torch.nn.functional.kl_div(student, teacher, reduction="batchmean")


def train_asymmetric_student(student, examples: pd.DataFrame, *, product_embeddings: np.ndarray,
                             product_rows: dict, teacher_query_embeddings: np.ndarray, weights: LossWeights,
                             steps: int, batch_size: int, learning_rate: float, seed: int,
                             scale: float = 20.0) -> list[float]:
    """Train an asymmetric EmbedDistill student in place against frozen product embeddings.

    Args:
        student: from :func:`build_asymmetric_student` (its output dim = the products').
        examples: ``query_id, query, product_id, negative_1..n`` (product ids).
        product_embeddings: (N, d) the teacher's unit product embeddings, catalogue order.
        product_rows: product id -> catalogue row.
        teacher_query_embeddings: (len(examples), d) the teacher's embedding of each example's query.
        weights: the three loss weights.
        steps, batch_size, learning_rate, seed: as :func:`run_steps`; scale: softmax inverse temperature.

    Returns:
        The total loss of every step.
    """
    from sentence_transformers.sentence_transformer.losses import EmbedDistillLoss, MultipleNegativesRankingLoss

    torch.manual_seed(seed)
    label_loss = MultipleNegativesRankingLoss(student, scale=scale)
    matching_loss = EmbedDistillLoss(student, distance_metric="l2")
    columns = ["product_id"] + negative_columns(examples, "negative_")
    rows = np.stack([examples[c].map(product_rows).to_numpy(dtype=np.int64) for c in columns], axis=1)
    products = torch.from_numpy(np.ascontiguousarray(product_embeddings, dtype=np.float32))
    teacher_q = torch.from_numpy(np.ascontiguousarray(teacher_query_embeddings, dtype=np.float32))
    queries = examples["query"].to_numpy(dtype=object)
    student.train()

    def step_loss(batch: np.ndarray) -> torch.Tensor:
        q_s = embed(student, queries[batch])
        docs = [products[rows[batch, j]] for j in range(rows.shape[1])]
        total = q_s.new_zeros(())
        if weights.label:
            total = total + weights.label * label_loss.compute_loss_from_embeddings([q_s, *docs], None)
        if weights.score:
            total = total + weights.score * score_distillation(q_s, teacher_q[batch], torch.cat(docs), scale=scale)
        if weights.embedding:
            total = total + weights.embedding * matching_loss.compute_loss_from_embeddings([q_s], [teacher_q[batch]])
        return total

    batches = distinct_query_batches(examples["query_id"].to_numpy(), batch_size=batch_size, steps=steps, seed=seed)
    try:
        return run_steps(student.parameters(), batches, step_loss, steps=steps, learning_rate=learning_rate,
                         name="embeddistill student")
    finally:
        student.eval()
