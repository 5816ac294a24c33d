"""Two-stage retrieval: re-rank a retriever's top k with a pair scorer.

Any pair model graphrel trains can re-rank: a student directory (``student.json``: the k-order
graph student, BERM-O, BERT2DNN; :func:`graphrel.scoring.load.load_scorer`) or the cross-encoder
teacher (a Hugging Face directory with ``config.json``, e.g. ``RUN/teacher``; scored with
:func:`graphrel.scoring.teacher_labelling.teacher_logits`). The re-ranked list keeps the same products; ties of
the pair score break by product id.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from graphrel.errors import GraphrelInputError

PairScorer = Callable[[list, list, list, list], np.ndarray]


def load_pair_scorer(directory: str | Path, *, graph: str | Path | None = None) -> PairScorer:
    """A function ``(query_ids, queries, product_ids, product_texts) -> (N,) float scores``;
    a student's also has ``paths(query_ids, product_ids)`` (pairs per scoring path).

    Args:
        directory: a student directory or the teacher's.
        graph: for a graph student, the ``graph.pt`` to read neighbours from instead of its
            manifest's (e.g. ``RUN/graph_new_query.pt`` for queries new to the log).

    Raises:
        GraphrelInputError: the directory is neither a student nor a teacher directory.
    """
    directory = Path(directory)
    if (directory / "student.json").is_file():
        from graphrel.scoring.load import load_scorer

        scorer = load_scorer(directory, graph=graph)

        def score(qids, queries, pids, texts):
            return np.asarray(scorer.score(qids, queries, pids, texts), dtype=np.float64)

        score.paths = scorer.paths  # pairs per scoring path (graph / text fallback)
        return score
    if (directory / "config.json").is_file():
        from graphrel.scoring.teacher_scorer import TeacherScorer

        teacher = TeacherScorer.load(directory)  # the run's max_length and scoring backend
        return lambda qids, queries, pids, texts: teacher.logits(queries, texts).astype(np.float64)
    raise GraphrelInputError("not a pair model directory (no student.json or config.json)", path=directory,
                             fix="pass a student directory (e.g. RUN/student_korder) or the teacher (RUN/teacher)")


def rerank(run: pd.DataFrame, queries: dict, product_texts: dict, scorer: PairScorer) -> pd.DataFrame:
    """Re-order each query's retrieved products by a pair scorer.

    Args:
        run: ``query_id, rank, product_id, score`` (a retriever's output).
        queries: query id -> query text.
        product_texts: product id -> product text.
        scorer: from :func:`load_pair_scorer`.

    Returns:
        ``query_id, rank, product_id, score, retrieval_score``: score = the pair scorer's
        (teacher: logit; students: [0, 1]), ranks 1..k per query by score, ties by product id;
        queries in their input order.
    """
    qids = run["query_id"].tolist()
    pids = run["product_id"].astype(str).tolist()
    scores = scorer([str(q) for q in qids], [queries[q] for q in qids], pids, [product_texts[p] for p in pids])
    out = run.rename(columns={"score": "retrieval_score"}).assign(score=scores)
    order = {q: i for i, q in enumerate(dict.fromkeys(qids))}
    out = out.assign(_q=out["query_id"].map(order)).sort_values(["_q", "score", "product_id"],
                                                                ascending=[True, False, True], kind="stable")
    out["rank"] = out.groupby("_q").cumcount() + 1
    return out[["query_id", "rank", "product_id", "score", "retrieval_score"]].reset_index(drop=True)
