"""Teacher geometry for the retrieval stage: the dual-pooling scorer on the cross-encoder teacher.

EmbedDistill (Kim et al., arXiv 2301.12005) matches a student's embeddings to its teacher's; a
cross-encoder has none, so a dual-pooling scorer (:mod:`graphrel.retrieval.students.dual_pooling`) is
fine-tuned to the teacher's logits on a seeded sample of training pairs and judged by its
Spearman correlation with the teacher on a seeded sample of test pairs (pairs of unseen test
queries: neither model trained on them), and by both models' AUC against the human labels.
The scorer and its figures are kept under ``directory`` with the key of their inputs, so a
resumed stage does not train again.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from graphrel.run import write_json

log = logging.getLogger("graphrel")

METRICS = "dual_pooling.json"


def dual_pooling_geometry(pairs: pd.DataFrame, teacher_dir: str | Path, directory: str | Path, *, key: str,
                          steps: int, batch_size: int, train_pairs: int, test_pairs: int, relevance: float,
                          seed: int) -> dict:
    """Train (or reuse) the dual-pooling scorer and measure it against the teacher on test pairs.

    Args:
        pairs: the run's pairs with ``split``, ``query``, ``product_text``, ``label`` (normalised
            [0, 1]) and ``teacher_logit`` = the cross-encoder's logit.
        teacher_dir: the cross-encoder teacher's Hugging Face directory.
        directory: where the scorer (``model/``) and ``dual_pooling.json`` go.
        key: fingerprint of the inputs (run and options); a directory of another key is redone.
        steps, batch_size: training budget (>= 1 each).
        train_pairs, test_pairs: seeded samples of the train and test splits (>= 1 each).
        relevance: normalised label at or above which a pair is relevant (for AUC).
        seed: sampling and training seed.

    Returns:
        ``{"spearman_with_teacher", "pearson_with_teacher", "rmse_logit", "auc", "teacher_auc",
        "train_pairs", "test_pairs", "steps", "train_seconds"}``; correlations in [-1, 1], AUCs in
        [0, 1], ``rmse_logit`` in the teacher's logit units.
    """
    from scipy.stats import pearsonr, spearmanr

    from graphrel.metrics import auc
    from graphrel.retrieval.students.dual_pooling import dual_pooling_scores, save_dual_pooling_scorer
    from graphrel.retrieval.students.dual_pooling import train_dual_pooling_scorer

    directory = Path(directory)
    path = directory / METRICS
    if path.is_file():
        saved = json.loads(path.read_text())
        if saved.get("key") == key:
            return saved["metrics"]
    rng = np.random.default_rng(seed)
    train = pairs[pairs["split"] == "train"]
    train = train.iloc[np.sort(rng.choice(len(train), size=min(train_pairs, len(train)), replace=False))]
    test = pairs[pairs["split"] == "test"]
    test = test.iloc[np.sort(rng.choice(len(test), size=min(test_pairs, len(test)), replace=False))]
    start = time.perf_counter()
    model, losses = train_dual_pooling_scorer(teacher_dir, list(train["query"]), list(train["product_text"]),
                                              train["teacher_logit"].to_numpy(dtype=np.float64), steps=steps,
                                              batch_size=batch_size, seed=seed)
    seconds = time.perf_counter() - start
    from graphrel.backbone import load_tokenizer

    tokenizer = load_tokenizer(str(teacher_dir))
    scores = dual_pooling_scores(model, tokenizer, list(test["query"]), list(test["product_text"]))
    teacher = test["teacher_logit"].to_numpy(dtype=np.float64)
    labels = test["label"].to_numpy(dtype=float)
    metrics = {"spearman_with_teacher": float(spearmanr(scores, teacher).statistic),
               "pearson_with_teacher": float(pearsonr(scores, teacher).statistic),
               "rmse_logit": float(np.sqrt(np.mean((scores - teacher) ** 2))),
               "auc": float(auc(scores, labels, threshold=relevance)),
               "teacher_auc": float(auc(teacher, labels, threshold=relevance)),
               "train_pairs": len(train), "test_pairs": len(test), "steps": steps, "train_seconds": seconds,
               "first_loss": float(np.mean(losses[:20])), "last_loss": float(np.mean(losses[-20:]))}
    save_dual_pooling_scorer(model, tokenizer, directory / "model")
    write_json({"key": key, "metrics": metrics}, path)
    log.info("retrieval: dual-pooling scorer Spearman with the teacher %.3f on %d test pairs (trained in %.0f s)",
             metrics["spearman_with_teacher"], len(test), seconds)
    return metrics


def geometry_markdown(metrics: dict) -> str:
    """The report's paragraph on the dual-pooling scorer."""
    m = metrics
    return (f"### Teacher geometry: dual-pooling scorer on the cross-encoder\n\n"
            f"The teacher's encoder, scoring a pair as the dot product of its mean-pooled query-token and "
            f"product-token states (times a scale, plus a bias), fine-tuned for {m['steps']} steps to the teacher's "
            f"logits on {m['train_pairs']:,} training pairs ({m['train_seconds']:.0f} s): on {m['test_pairs']:,} "
            f"pairs of unseen test queries, Spearman with the teacher {m['spearman_with_teacher']:.3f} (Pearson "
            f"{m['pearson_with_teacher']:.3f}, RMSE {m['rmse_logit']:.3f} logit); AUC against the human labels "
            f"{m['auc']:.3f} (teacher {m['teacher_auc']:.3f}). It gives the cross-encoder pair-conditioned query "
            "and product embeddings; the students above match the dual encoder's embeddings, not these.\n")
