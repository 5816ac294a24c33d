"""Training examples for dual encoders: (query, relevant product, BM25 hard negatives), with the
cross-encoder teacher's logits of every pair kept beside them for the distillation losses.

Positives are the training pairs whose label is at or above the relevance threshold. Hard
negatives of a query are drawn (seeded) from its BM25 top ``depth`` products, leaving out every
product judged relevant to that query; judged non-relevant products stay eligible (they are
the hardest true negatives). This follows the usual dense-retrieval recipe (BM25 negatives,
Karpukhin et al., DPR, EMNLP 2020); scoring them with the teacher is EmbedDistill's (Kim et al.,
arXiv 2301.12005) distillation input.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from graphrel.retrieval.search.bm25 import BM25Index
from graphrel.retrieval.search.catalogue import Catalogue


def positive_examples(pairs: pd.DataFrame, *, threshold: float, max_examples: int | None, seed: int,
                      split: str = "train") -> pd.DataFrame:
    """(query, relevant product) rows of one split, at most ``max_examples`` (seeded sample).

    Args:
        pairs: run pairs with ``query_id, query, product_id, product_text, label, split``.
        threshold: normalised label at or above which a pair is relevant.
        max_examples: cap on rows (None: all); >= 1.
        seed: sampling seed.

    Returns:
        DataFrame ``query_id, query, product_id, product_text`` (+ ``teacher_logit`` when the
        pairs carry it), in a seeded random order.
    """
    rows = pairs[(pairs["split"] == split) & (pairs["label"].to_numpy(dtype=float) >= threshold - 1e-9)]
    keep = [c for c in ("query_id", "query", "product_id", "product_text", "teacher_logit") if c in rows.columns]
    rows = rows[keep].astype({"product_id": str}).sample(frac=1.0, random_state=seed)
    if max_examples is not None and len(rows) > max_examples:
        rows = rows.iloc[:max_examples]
    return rows.reset_index(drop=True)


def mine_hard_negatives(examples: pd.DataFrame, pairs: pd.DataFrame, bm25: BM25Index, catalogue: Catalogue, *,
                        negatives: int, depth: int, threshold: float, seed: int) -> pd.DataFrame:
    """Add ``negatives`` BM25 hard negatives to every example.

    Args:
        examples: from :func:`positive_examples`.
        pairs: every judged pair (to know each query's relevant products).
        bm25: BM25 index of ``catalogue``.
        negatives: hard negatives per example, >= 1.
        depth: BM25 ranks they are drawn from, >= negatives.
        threshold: normalised relevance threshold.
        seed: sampling seed.

    Returns:
        ``examples`` plus columns ``negative_1..n`` (product ids) and ``negative_text_1..n``.
        A query whose BM25 top ``depth`` holds too few non-relevant products is topped up with
        random catalogue products.
    """
    if negatives < 1 or depth < negatives:
        raise ValueError(f"need 1 <= negatives <= depth, got negatives={negatives}, depth={depth}")
    rng = np.random.default_rng(seed)
    relevant = pairs[pairs["label"].to_numpy(dtype=float) >= threshold - 1e-9]
    relevant = relevant.astype({"product_id": str}).groupby("query_id")["product_id"].agg(set).to_dict()
    row_of = {p: i for i, p in enumerate(catalogue.product_ids)}
    queries = examples.drop_duplicates("query_id")
    ranked, _ = bm25.search(list(queries["query"]), depth)
    pool = {}
    for qid, rows in zip(queries["query_id"], ranked):
        bad = {row_of[p] for p in relevant.get(qid, ()) if p in row_of}
        pool[qid] = [r for r in rows if r not in bad]
    chosen = np.empty((len(examples), negatives), dtype=np.int64)
    for i, qid in enumerate(examples["query_id"]):
        candidates = pool[qid]
        if len(candidates) >= negatives:
            chosen[i] = rng.choice(candidates, size=negatives, replace=False)
        else:
            extra = rng.choice(len(catalogue), size=negatives - len(candidates), replace=False)
            chosen[i] = np.concatenate([np.asarray(candidates, dtype=np.int64), extra])
    out = examples.copy()
    for j in range(negatives):
        out[f"negative_{j + 1}"] = catalogue.product_ids[chosen[:, j]]
        out[f"negative_text_{j + 1}"] = catalogue.texts[chosen[:, j]]
    return out


def add_teacher_logits(examples: pd.DataFrame, teacher, *, batch_size: int = 128, progress: bool = False) -> pd.DataFrame:
    """The cross-encoder teacher's logits of each (query, positive) and (query, negative_j) pair.

    Positives that already carry ``teacher_logit`` (the run's teacher_scores) keep it; every
    negative is scored by ``teacher``, a :class:`~graphrel.scoring.teacher_scorer.TeacherScorer`
    (on the backend the run's teacher scores were made on; length-sorted batches).

    Returns:
        ``examples`` plus ``teacher_positive`` and ``teacher_negative_1..n`` (float32 logits).
    """
    out = examples.copy()
    negative_columns = sorted((c for c in out.columns if c.startswith("negative_text_")),
                              key=lambda c: int(c.rsplit("_", 1)[1]))
    queries = list(out["query"]) * len(negative_columns)
    products = [t for c in negative_columns for t in out[c]]
    if "teacher_logit" in out.columns and out["teacher_logit"].notna().all():
        out["teacher_positive"] = out["teacher_logit"].astype(np.float32)
    else:
        queries += list(out["query"])
        products += list(out["product_text"])
    logits = teacher.logits(queries, products, batch_size=batch_size, progress=progress)
    n = len(out)
    for j, column in enumerate(negative_columns):
        out[f"teacher_negative_{column.rsplit('_', 1)[1]}"] = logits[j * n:(j + 1) * n]
    if "teacher_positive" not in out.columns:
        out["teacher_positive"] = logits[len(negative_columns) * n:]
    return out
