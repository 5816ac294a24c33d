"""Dual-pooling scorer: an embedding geometry for the cross-encoder teacher.

EmbedDistill (Kim et al., arXiv 2301.12005, the section on cross-encoder teachers): a
cross-encoder reads ``[CLS] query [SEP] product [SEP]`` jointly and outputs one logit, so it
has no query or product embedding a dual-encoder student could match. A **dual-pooling
scorer** keeps the teacher's encoder, mean-pools the final hidden states of the query tokens
and of the product tokens of the jointly encoded pair separately, and scores the pair by the
dot product of the two pooled vectors, fine-tuned to reproduce the cross-encoder's scores.
The pooled vectors ``e_t(q|p)`` and ``e_t(p|q)`` are then the teacher embeddings that
EmbedDistill's embedding matching can use.

Score: ``s(q, p) = exp(log_scale) * <e_t(q|p), e_t(p|q)> + bias``, on the cross-encoder
logit scale (scale > 0 always, so a larger dot product always means more relevant).

Reconstruction choices (not fixed by the paper): segments are told apart by
``token_type_ids`` (0 = query, 1 = product); [CLS], [SEP], [PAD] and [MASK] are left out of
both means ([UNK] stands for a real word and is kept); scale and bias start moment-matched
to the teacher logits of up to 256 training pairs; the loss is plain MSE on the logits.
MSE rather than margin-MSE (Hofstaetter et al., arXiv 2010.02666): margin-MSE matches only
differences between products of the same query, leaving each query's offset free, while the
scorer here should reproduce the teacher's absolute logit of every pair (scores comparable
across queries, usable as soft labels ``sigmoid(logit / T)``), and MSE needs no pairing of
products, so any scored pairs (also unlabelled transfer pairs) can be used.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from graphrel.run import write_json

log = logging.getLogger("graphrel")

#: File holding the scorer's own settings (scale, bias, max_length) next to the encoder.
SETTINGS_FILE = "dual_pooling.json"


class DualPoolingOutput(NamedTuple):
    """``scores`` (B,) on the teacher-logit scale; ``query``, ``product`` (B, d) pooled vectors."""

    scores: torch.Tensor
    query: torch.Tensor
    product: torch.Tensor


def _masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``hidden`` (B, L, d) over positions where ``mask`` (B, L) is true -> (B, d);
    a row with no such position gives the zero vector."""
    weights = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)


class DualPoolingScorer(torch.nn.Module):
    """Cross-encoder encoder with separate mean pooling of the query and product segments.

    Args:
        encoder: a Hugging Face encoder (e.g. ``BertModel``) whose output has
            ``last_hidden_state`` (B, L, d); typically the teacher's ``base_model``.
        excluded_token_ids: token ids left out of both means (the tokenizer's [CLS], [SEP],
            [PAD], [MASK]; see :func:`excluded_token_ids`).
        scale: initial multiplier of the dot product, > 0.
        bias: initial offset added to the scaled dot product.
        max_length: wordpieces kept per pair when tokenising (>= 4), as the teacher.

    Shapes:
        ``input_ids``, ``attention_mask``, ``token_type_ids``: (B, L) int; token type 0 marks
        the query segment, 1 the product segment; attention mask 0 marks padding.
        Output: :class:`DualPoolingOutput` with ``scores`` (B,), ``query`` and ``product`` (B, d).
    """

    def __init__(self, encoder, excluded_token_ids, *, scale: float = 1.0, bias: float = 0.0,
                 max_length: int = 64) -> None:
        super().__init__()
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"scale must be finite and > 0, got {scale}")
        if not math.isfinite(bias):
            raise ValueError(f"bias must be finite, got {bias}")
        _check_int("max_length", max_length, 4)
        self.encoder = encoder
        self.max_length = int(max_length)
        self.register_buffer("excluded_ids", torch.as_tensor(sorted(set(excluded_token_ids)), dtype=torch.long),
                             persistent=False)
        self.log_scale = torch.nn.Parameter(torch.tensor(math.log(scale)))
        self.bias = torch.nn.Parameter(torch.tensor(float(bias)))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor) -> DualPoolingOutput:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state
        content = attention_mask.bool() & ~torch.isin(input_ids, self.excluded_ids)
        query = _masked_mean(hidden, content & (token_type_ids == 0))
        product = _masked_mean(hidden, content & (token_type_ids == 1))
        scores = self.log_scale.exp() * (query * product).sum(-1) + self.bias
        return DualPoolingOutput(scores, query, product)


def excluded_token_ids(tokenizer) -> list[int]:
    """Ids of the tokenizer's special tokens except [UNK] (kept: it stands for a real word)."""
    return [i for i in tokenizer.all_special_ids if i != tokenizer.unk_token_id]


def _check_int(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _encode(tokenizer, queries, products, max_length: int) -> tuple[list, list]:
    """Wordpiece ids and token types of the pairs (no padding), truncated to max_length."""
    encoded = tokenizer([str(q) for q in queries], [str(p) for p in products], truncation=True,
                        max_length=max_length)
    return encoded["input_ids"], encoded["token_type_ids"]


def _collate(ids, types, rows, pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B, L) input ids, attention mask and token types of the encoded pairs ``rows``, padded
    to the longest of them."""
    width = max(len(ids[i]) for i in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    token_types = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for j, i in enumerate(rows):
        input_ids[j, : len(ids[i])] = torch.as_tensor(ids[i])
        token_types[j, : len(types[i])] = torch.as_tensor(types[i])
        mask[j, : len(ids[i])] = 1
    return input_ids, mask, token_types


def train_dual_pooling_scorer(teacher_dir: str | Path, queries, products, teacher_logits, *, steps: int,
                              batch_size: int = 16, learning_rate: float = 5e-5, max_length: int = 64,
                              seed: int = 0, warmup_share: float = 0.1, log_every: int = 50):
    """A dual-pooling scorer initialised from the cross-encoder teacher, fine-tuned to its logits.

    The encoder starts as the teacher's (its classification head is dropped); scale and bias
    start moment-matched (mean and standard deviation) to the teacher logits of up to 256
    training pairs. Then ``steps`` AdamW steps (fused; weight decay 0.01; linear warm-up over
    ``warmup_share`` of the steps, then linear decay to 0; gradient norm clipped at 1) on the
    MSE between the scorer's scores and the teacher logits, over random batches of pairs
    (each pass over the pairs in a new seeded order). The wordpiece embedding matrix (and the
    unused [CLS] pooler) stays frozen. Dropout stays off while training: a regression target
    learnt with dropout on is off at inference (on Home Depot, scores trained with the
    teacher's dropout 0.1 sat +0.30 logit above the teacher's in eval mode, its logit
    standard deviation being 0.54). The model is returned in eval mode.

    Args:
        teacher_dir: the teacher's Hugging Face directory
            (``AutoModelForSequenceClassification``, as written by ``CrossEncoderTeacher``).
        queries, products: N strings each (the training pairs).
        teacher_logits: (N,) finite cross-encoder logits of those pairs.
        steps: optimiser steps, >= 1.
        batch_size: pairs per step, >= 1.
        learning_rate: peak AdamW learning rate, finite and > 0.
        max_length: wordpieces kept per pair, >= 4 (the teacher's own setting: 64).
        seed: the batch order and the calibration sample.
        warmup_share: share of steps warming up, in [0, 1).
        log_every: log the mean loss every this many steps (0: never).

    Returns:
        ``(model, losses)``: the :class:`DualPoolingScorer` (eval mode) and the MSE (squared
        logits) of every step.

    Raises:
        ValueError: a numeric option out of range, lengths that differ, no pairs, or a
            non-finite teacher logit.
        GraphrelInputError: if ``teacher_dir`` is not a model directory.
    """
    from graphrel.scoring.teacher_labelling import load_teacher

    _check_int("steps", steps, 1)
    _check_int("batch_size", batch_size, 1)
    _check_int("max_length", max_length, 4)
    _check_int("log_every", log_every, 0)
    if not (math.isfinite(learning_rate) and learning_rate > 0):
        raise ValueError(f"learning_rate must be finite and > 0, got {learning_rate}")
    if not (0 <= warmup_share < 1):
        raise ValueError(f"warmup_share must be in [0, 1), got {warmup_share}")
    queries, products = list(queries), list(products)
    targets = torch.from_numpy(np.array(teacher_logits, dtype=np.float32))  # a copy: writable
    if not (len(queries) == len(products) == len(targets)) or not len(queries):
        raise ValueError(f"queries, products and teacher_logits must have the same length >= 1, got "
                         f"{len(queries)}, {len(products)}, {len(targets)}")
    if not torch.isfinite(targets).all():
        raise ValueError("teacher_logits must all be finite")

    teacher = load_teacher(teacher_dir, max_length=max_length)
    tokenizer = teacher.tokenizer
    model = DualPoolingScorer(teacher.model.base_model, excluded_token_ids(tokenizer), max_length=max_length)
    frozen = [model.encoder.get_input_embeddings().weight]
    if getattr(model.encoder, "pooler", None) is not None:
        frozen += list(model.encoder.pooler.parameters())
    for parameter in frozen:
        parameter.requires_grad_(False)

    ids, types = _encode(tokenizer, queries, products, max_length)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    _calibrate(model, ids, types, targets, rng.permutation(len(ids))[:256], tokenizer.pad_token_id)

    from graphrel.retrieval.students.training import run_steps

    def batches():
        size = min(batch_size, len(ids))
        while True:  # each pass over the pairs in a new seeded order
            order = rng.permutation(len(ids))
            for position in range(0, len(order) - size + 1, size):
                yield order[position:position + size]

    def step_loss(rows) -> torch.Tensor:
        return torch.nn.functional.mse_loss(model(*_collate(ids, types, rows, tokenizer.pad_token_id)).scores,
                                            targets[rows])

    model.eval()  # dropout off: trained with dropout, eval-mode scores drifted +0.30 logit from the teacher's
    losses = run_steps(model.parameters(), batches(), step_loss, steps=steps, learning_rate=learning_rate,
                       warmup_share=warmup_share, log_every=log_every, name="dual-pooling scorer", fused=True)
    return model.eval(), losses


@torch.no_grad()
def _calibrate(model: DualPoolingScorer, ids, types, targets: torch.Tensor, rows, pad_id: int) -> None:
    """Set scale and bias so the scores of ``rows`` have the mean and standard deviation of
    their teacher logits (scale 1 if the dot products or logits do not vary)."""
    model.eval()
    dots = torch.cat([_dot_products(model, ids, types, rows[i:i + 64], pad_id) for i in range(0, len(rows), 64)])
    wanted = targets[torch.as_tensor(rows)]
    spread = float(dots.std()) if len(rows) > 1 else 0.0
    target_spread = float(wanted.std()) if len(rows) > 1 else 0.0
    scale = target_spread / spread if spread > 0 and target_spread > 0 else 1.0
    model.log_scale.fill_(math.log(scale))
    model.bias.fill_(float(wanted.mean()) - scale * float(dots.mean()))


def _dot_products(model: DualPoolingScorer, ids, types, rows, pad_id: int) -> torch.Tensor:
    out = model(*_collate(ids, types, rows, pad_id))
    return (out.query * out.product).sum(-1)


@torch.inference_mode()
def dual_pooling_scores(model: DualPoolingScorer, tokenizer, queries, products, *, batch_size: int = 128,
                        return_embeddings: bool = False):
    """Scores of pairs by a dual-pooling scorer, in input order (length-sorted batches).

    Args:
        model: a :class:`DualPoolingScorer` (put in eval mode here).
        tokenizer: the teacher's tokenizer (pairs truncated to ``model.max_length``).
        queries, products: N strings each.
        batch_size: pairs per forward pass, >= 1.
        return_embeddings: also return the pooled vectors.

    Returns:
        (N,) float64 scores on the teacher-logit scale; with ``return_embeddings``,
        ``(scores, query_vectors, product_vectors)``, the vectors (N, d) float32
        (``e_t(q|p)`` and ``e_t(p|q)`` of each pair).

    Raises:
        ValueError: a bad ``batch_size`` or lengths that differ.
    """
    _check_int("batch_size", batch_size, 1)
    queries, products = list(queries), list(products)
    if len(queries) != len(products):
        raise ValueError(f"queries and products must have the same length, got {len(queries)}, {len(products)}")
    model.eval()
    dim = model.encoder.config.hidden_size
    scores = np.empty(len(queries), dtype=np.float64)
    query_vectors = np.empty((len(queries), dim), dtype=np.float32) if return_embeddings else None
    product_vectors = np.empty((len(queries), dim), dtype=np.float32) if return_embeddings else None
    if queries:
        ids, types = _encode(tokenizer, queries, products, model.max_length)
        order = np.argsort([len(x) for x in ids], kind="stable")
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            out = model(*_collate(ids, types, rows, tokenizer.pad_token_id))
            scores[rows] = out.scores.double().numpy()
            if return_embeddings:
                query_vectors[rows] = out.query.numpy()
                product_vectors[rows] = out.product.numpy()
    return (scores, query_vectors, product_vectors) if return_embeddings else scores


def save_dual_pooling_scorer(model: DualPoolingScorer, tokenizer, directory: str | Path) -> Path:
    """Write the scorer: the encoder and tokenizer (Hugging Face ``save_pretrained``) and
    ``dual_pooling.json`` (scale, bias, max_length, excluded token ids). Returns the directory."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.encoder.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    write_json({"scale": model.log_scale.exp().item(), "bias": model.bias.item(), "max_length": model.max_length,
                "excluded_token_ids": model.excluded_ids.tolist(),
                "method": "dual-pooling scorer (EmbedDistill, arXiv 2301.12005), reconstruction"},
               directory / SETTINGS_FILE)
    return directory


def load_dual_pooling_scorer(directory: str | Path):
    """A scorer written by :func:`save_dual_pooling_scorer` -> ``(model, tokenizer)``, eval mode.

    Raises:
        FileNotFoundError: if ``directory`` holds no ``dual_pooling.json``.
    """
    from transformers import AutoModel, AutoTokenizer

    directory = Path(directory)
    if not (directory / SETTINGS_FILE).is_file():
        raise FileNotFoundError(f"{directory}: no {SETTINGS_FILE}; not a dual-pooling scorer directory")
    settings = json.loads((directory / SETTINGS_FILE).read_text())
    model = DualPoolingScorer(AutoModel.from_pretrained(directory), settings["excluded_token_ids"],
                              scale=settings["scale"], bias=settings["bias"], max_length=settings["max_length"])
    return model.eval(), AutoTokenizer.from_pretrained(directory)
