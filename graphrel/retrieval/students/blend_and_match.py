"""Blend and Match: a dual encoder that absorbs an XMC model's predictions through its loss.

Bonab et al., "Blend and Match: Distilling Semantic Search Models with Different
Inductive Biases and Model Architectures", WWW '23 Companion, doi 10.1145/3543873.3587629. Only
the abstract is public, so **the loss here is a reconstruction**: an in-batch softmax whose
positives for a query are its labelled product **plus** the XMC model's top-K products, the XMC
ones weighted, and whose negatives lie outside both. For query i with embedding q_i, batch
candidates c (every product of the batch, each once) and s_ic = scale * cos(q_i, c)::

    l_ic = -log( exp(s_ic) / (exp(s_ic) + sum_{n in N_i} exp(s_in)) )      (one positive c vs N_i)
    loss = (1/B) sum_i [ l_i,labelled + xmc_weight * (1/|X_i|) sum_{c in X_i} v_ic * l_ic ]

N_i = the batch's products that are neither a positive of i nor judged relevant to i; X_i = the
XMC top-K of query i minus every product judged for it (the judged relevant ones are labelled
positives of its other examples, the judged non-relevant ones must not become positives);
v_ic = 1 (``weighting="constant"``) or the XMC score in [0, 1] (``weighting="score"``). Each
positive competes only with the negatives (positives never push each other down), and with
``xmc_weight = 0`` the loss is the plain label loss. The query's BM25 hard negatives are drawn
outside its labelled products and its XMC top-K (:func:`graphrel.retrieval.students.mining.mine_hard_negatives`
with the XMC products counted as relevant).

Also here: the **plain knowledge-distillation baseline** the paper found sub-optimal: the dual
encoder's label loss plus KL(softmax(scale * xmc(q_i, .)) || softmax(s_i.)) over the batch's
products (:func:`xmc_score_distillation`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from graphrel.retrieval.students.training import embed, negative_columns, train_on_distinct_queries

WEIGHTINGS = ("constant", "score")


def blend_and_match_loss(query_embeddings: torch.Tensor, candidate_embeddings: torch.Tensor,
                         positive_weights: torch.Tensor, negatives: torch.Tensor, *, scale: float) -> torch.Tensor:
    """The Blend and Match loss of one batch (see the module docstring; a reconstruction).

    Args:
        query_embeddings: (B, d) unit query embeddings.
        candidate_embeddings: (M, d) unit embeddings of the batch's distinct products.
        positive_weights: (B, M) >= 0; w_ic > 0 makes c a positive of i with that weight.
        negatives: (B, M) bool; True where c is a negative of i (never where w_ic > 0).
        scale: inverse temperature on cosines (> 0).

    Returns:
        Scalar ``(1/B) sum_ic w_ic * l_ic``; 0 for a query without positives.

    Raises:
        ValueError: shapes disagree, a negative weight, or a pair both positive and negative.
    """
    b, m = positive_weights.shape
    if query_embeddings.shape[0] != b or candidate_embeddings.shape[0] != m or negatives.shape != (b, m):
        raise ValueError(f"shapes disagree: queries {tuple(query_embeddings.shape)}, candidates "
                         f"{tuple(candidate_embeddings.shape)}, weights {(b, m)}, negatives {tuple(negatives.shape)}")
    if bool((positive_weights < 0).any()) or bool((negatives & (positive_weights > 0)).any()):
        raise ValueError("positive weights must be >= 0 and no pair may be both positive and negative")
    logits = scale * query_embeddings @ candidate_embeddings.T
    negative_lse = torch.logsumexp(logits.masked_fill(~negatives, float("-inf")), dim=1, keepdim=True)
    per_pair = torch.logaddexp(logits, negative_lse) - logits  # -log(e^s / (e^s + sum_neg e^n)), >= 0
    return (positive_weights * per_pair).sum() / b


def xmc_score_distillation(query_embeddings: torch.Tensor, candidate_embeddings: torch.Tensor,
                           xmc_scores: torch.Tensor, *, scale: float) -> torch.Tensor:
    """Plain score distillation from the XMC model (the KD baseline of Blend and Match).

    Args:
        query_embeddings: (B, d) unit query embeddings.
        candidate_embeddings: (M, d) the batch's products.
        xmc_scores: (B, M) XMC scores in [0, 1] (0 where the product is outside the query's top).
        scale: inverse temperature of both distributions (> 0).

    Returns:
        Scalar KL(softmax(scale * xmc) || softmax(scale * cos)), averaged over the B queries.
    """
    student = torch.log_softmax(scale * query_embeddings @ candidate_embeddings.T, dim=1)
    teacher = torch.softmax(scale * xmc_scores, dim=1)
    return torch.nn.functional.kl_div(student, teacher, reduction="batchmean")


def xmc_positives(examples: pd.DataFrame, xmc, *, k: int, judged: dict) -> dict:
    """Each example query's XMC positives: its top ``k`` minus products judged for it.

    Args:
        examples: ``query_id, query`` (one row per example; queries repeat).
        xmc: an :class:`~graphrel.retrieval.encoding.xmc.XMCModel`.
        k: XMC products per query (>= 0; 0 gives none).
        judged: query id -> set of product ids judged for it (relevant or not): judged relevant
            ones are already labelled positives, judged non-relevant ones must not become positives.

    Returns:
        query id -> (product ids (<= k,) object array, XMC scores (<= k,) float32).
    """
    queries = examples.drop_duplicates("query_id")
    if k < 1:
        return {q: (np.empty(0, dtype=object), np.empty(0, dtype=np.float32)) for q in queries["query_id"]}
    ids, scores = xmc.top_k(list(queries["query"]), k)
    out = {}
    for row, qid in enumerate(queries["query_id"]):
        keep = np.array([p not in judged.get(qid, ()) for p in ids[row]], dtype=bool)
        out[qid] = (ids[row][keep], scores[row][keep])
    return out


def _batch_tables(rows, examples_ids, negatives_ids, extra: dict, qids, product_rows) -> tuple:
    """Distinct catalogue rows of a batch and each query's product ids in it."""
    products = [examples_ids[rows], negatives_ids[rows].ravel()] + [extra[qids[r]][0] for r in rows]
    distinct = list(dict.fromkeys(p for part in products for p in part))
    return distinct, np.array([product_rows[p] for p in distinct], dtype=np.int64)


def train_blend_and_match(model, examples: pd.DataFrame, *, product_embeddings: np.ndarray, product_rows: dict,
                          positives_by_query: dict, relevant: dict, xmc_weight: float, weighting: str = "constant",
                          steps: int, batch_size: int, learning_rate: float, seed: int,
                          scale: float = 20.0) -> list[float]:
    """Fine-tune a dual encoder's query side in place with the Blend and Match loss.

    Same loop as :func:`graphrel.retrieval.students.training.fine_tune_dual_encoder` with a frozen product
    side (distinct-query batches, AdamW, warm-up then linear decay), so the same ``steps`` and
    ``batch_size`` are the same budget.

    Args:
        model: a ``SentenceTransformer`` (trained in place, left in eval mode).
        examples: ``query_id, query, product_id, negative_1..n`` (negatives drawn outside the XMC
            positives, see the module docstring).
        product_embeddings: (N, d) frozen unit product embeddings, catalogue order.
        product_rows: product id -> catalogue row.
        positives_by_query: from :func:`xmc_positives`.
        relevant: query id -> product ids judged relevant (never negatives of that query).
        xmc_weight: weight of the XMC positives' term (>= 0).
        weighting: ``constant`` (v = 1) or ``score`` (v = XMC score).
        steps, batch_size, learning_rate, seed, scale: as ``fine_tune_dual_encoder``.

    Returns:
        The loss of every step.

    Raises:
        ValueError: a bad weighting or a negative / non-finite weight.
    """
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    if not np.isfinite(xmc_weight) or xmc_weight < 0:
        raise ValueError(f"xmc_weight must be a finite number >= 0, got {xmc_weight!r}")
    torch.manual_seed(seed)
    frozen = torch.from_numpy(np.ascontiguousarray(product_embeddings, dtype=np.float32))
    queries = examples["query"].to_numpy(dtype=object)
    qids = examples["query_id"].to_numpy(dtype=object)
    positive_ids = examples["product_id"].astype(str).to_numpy(dtype=object)
    negative_ids = np.stack([examples[c].astype(str).to_numpy(dtype=object)
                             for c in negative_columns(examples, "negative_")], axis=1)

    def step_loss(rows: np.ndarray) -> torch.Tensor:
        distinct, catalogue_rows = _batch_tables(rows, positive_ids, negative_ids, positives_by_query, qids,
                                                 product_rows)
        column = {p: j for j, p in enumerate(distinct)}
        weights = torch.zeros(len(rows), len(distinct))
        negatives = torch.ones(len(rows), len(distinct), dtype=torch.bool)
        for i, r in enumerate(rows):
            extra_ids, extra_scores = positives_by_query[qids[r]]
            extra_ids, extra_scores = extra_ids[extra_ids != positive_ids[r]], extra_scores[extra_ids != positive_ids[r]]
            for p, v in zip(extra_ids, extra_scores):
                weights[i, column[p]] = xmc_weight * (1.0 if weighting == "constant" else float(v)) / len(extra_ids)
                negatives[i, column[p]] = False
            for p in relevant.get(qids[r], ()):
                if p in column:
                    negatives[i, column[p]] = False
            weights[i, column[positive_ids[r]]] = 1.0
            negatives[i, column[positive_ids[r]]] = False
        return blend_and_match_loss(embed(model, queries[rows]), frozen[catalogue_rows], weights, negatives,
                                    scale=scale)

    return train_on_distinct_queries(model, qids, step_loss, steps=steps, batch_size=batch_size,
                                     learning_rate=learning_rate, seed=seed, name="blend and match")


def train_xmc_distillation(model, examples: pd.DataFrame, *, product_embeddings: np.ndarray, product_rows: dict,
                           xmc_scores_by_query: dict, distillation_weight: float, steps: int, batch_size: int,
                           learning_rate: float, seed: int, scale: float = 20.0) -> list[float]:
    """Fine-tune a dual encoder's query side with its label loss + plain XMC score distillation.

    Loss per batch: sentence-transformers ``MultipleNegativesRankingLoss`` (the dual encoder's
    own loss, same examples and hard negatives) + ``distillation_weight`` *
    :func:`xmc_score_distillation` over the batch's products (positives and hard negatives).

    Args:
        xmc_scores_by_query: query id -> {product id: XMC score} (the query's XMC top products;
            other products score 0).
        distillation_weight: >= 0.
        Other arguments as :func:`train_blend_and_match`.

    Returns:
        The loss of every step.
    """
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    if not np.isfinite(distillation_weight) or distillation_weight < 0:
        raise ValueError(f"distillation_weight must be a finite number >= 0, got {distillation_weight!r}")
    torch.manual_seed(seed)
    label_loss = MultipleNegativesRankingLoss(model, scale=scale)
    frozen = torch.from_numpy(np.ascontiguousarray(product_embeddings, dtype=np.float32))
    columns = ["product_id"] + negative_columns(examples, "negative_")
    ids = np.stack([examples[c].astype(str).to_numpy(dtype=object) for c in columns], axis=1)
    queries = examples["query"].to_numpy(dtype=object)
    qids = examples["query_id"].to_numpy(dtype=object)

    def step_loss(rows: np.ndarray) -> torch.Tensor:
        q = embed(model, queries[rows])
        docs = [frozen[[product_rows[p] for p in ids[rows, j]]] for j in range(ids.shape[1])]
        batch_ids = [p for j in range(ids.shape[1]) for p in ids[rows, j]]  # torch.cat(docs) order
        teacher = torch.tensor([[xmc_scores_by_query.get(qids[r], {}).get(p, 0.0) for p in batch_ids] for r in rows])
        loss = label_loss.compute_loss_from_embeddings([q, *docs], None)
        return loss + distillation_weight * xmc_score_distillation(q, torch.cat(docs), teacher, scale=scale)

    return train_on_distinct_queries(model, qids, step_loss, steps=steps, batch_size=batch_size,
                                     learning_rate=learning_rate, seed=seed, name="dual encoder + XMC distillation")
