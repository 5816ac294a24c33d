"""Why the k-order student scored a pair: the metapath neighbours it read, their attention
and their contribution (model ablation: the score without each one).

"Why did the student rate this pair low?" -> :func:`metapaths`, the Q-P, P-Q, Q-P-Q and
P-Q-P neighbours the k-order student read for the pair, with their attention weights and
their contribution (the change in score when that one neighbour is removed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from graphrel.data.graph import NEIGHBOUR_TYPE, SIMILAR_QUERY_METAPATHS
from graphrel.errors import GraphrelInputError
from graphrel.explore.egograph import DEFAULT_LABEL_SPLITS
from graphrel.explore.index import GraphIndex, unknown_product
from graphrel.explore.inspected_run import InspectedRun

__all__ = ["PairExplanation", "metapaths"]

NEIGHBOUR_COLUMNS = ["metapath", "rank", "neighbour_type", "neighbour_id", "neighbour_text", "via", "built",
                     "teacher_score", "attention", "metapath_weight", "score_without", "contribution"]


@dataclass
class PairExplanation:
    """What the k-order student read for one pair (:func:`metapaths`).

    Attributes:
        query_id, query, product_id, product_text: the pair.
        score: the student's score of the pair, in [0, 1].
        query_in_graph, product_in_graph: whether each end is a graph node (an unseen end
            has no neighbours on the metapaths that start from it).
        teacher_score, label, split: of the pair itself when it is a pair of the run
            (``label`` only where ``label_splits`` allows), else None.
        metapath_weights: metapath -> metapath-level attention weight (sums to 1).
        text_fallback: the student scored the pair with its text-only fallback: the
            neighbours below were looked up but did not make the score.
        neighbours: one row per neighbour the student read, columns ``metapath``, ``rank``
            (1 = highest attention within the metapath), ``neighbour_type``,
            ``neighbour_id``, ``neighbour_text``, ``via`` (two-hop metapaths: the id of the
            middle node, a Q-P or P-Q neighbour of the pair, or for ``Q~Q-P`` the nearest logged
            query; else None), ``built`` (True on the metapaths ``Q~Q`` and ``Q~Q-P``: a
            neighbourhood built from the query's nearest logged queries, not edges of the
            query), ``teacher_score`` (of the metapath instance; for two-hop paths the product
            of its two edges' scores; for ``Q~Q`` the text similarity, and for ``Q~Q-P``
            similarity x teacher score),
            ``attention`` (sums to 1 per metapath), ``metapath_weight``,
            ``score_without`` (the student's score with only this neighbour removed) and
            ``contribution`` = ``score - score_without`` (positive: this neighbour raised
            the score).
    """

    query_id: str
    query: str
    product_id: str
    product_text: str
    score: float
    query_in_graph: bool
    product_in_graph: bool
    teacher_score: float | None = None
    label: float | None = None
    split: str | None = None
    metapath_weights: dict[str, float] = field(default_factory=dict)
    neighbours: pd.DataFrame = field(default_factory=pd.DataFrame)
    text_fallback: bool = False

    def to_dict(self) -> dict:
        """JSON-ready dict (NaN as None)."""
        out = {k: getattr(self, k) for k in ("query_id", "query", "product_id", "product_text", "score",
                                             "query_in_graph", "product_in_graph", "teacher_score", "label",
                                             "split", "metapath_weights", "text_fallback")}
        rows = self.neighbours.astype(object).where(self.neighbours.notna(), None)
        out["neighbours"] = rows.to_dict(orient="records")
        return out


def metapaths(run, query: str, product_id: str, *, product_text: str | None = None,
              label_splits: tuple[str, ...] = DEFAULT_LABEL_SPLITS) -> PairExplanation:
    """The metapath neighbours the run's k-order student used for a pair, with attention and contribution.

    The pair is featurised exactly as ``graphrel score`` does (its own edge never reaches its
    features). Each neighbour's contribution comes from re-scoring the pair with only that
    neighbour removed (its id set to -1 and its score to NaN), all in one batch.

    Args:
        run: a run directory (path or :class:`InspectedRun`) with ``student_korder/``.
        query: query id or text. A query outside the graph is scored as unseen (id = text,
            the Home Depot convention), with no Q-P / Q-P-Q neighbours.
        product_id: product id. A product outside the graph needs ``product_text``.
        product_text: text of a product that is not in the graph (ignored for graph products).
        label_splits: splits whose label of the pair is reported.

    Returns:
        :class:`PairExplanation`.

    Raises:
        GraphrelInputError: missing run directory or student; unknown product without
            ``product_text`` (with the closest known ids).
    """
    if not isinstance(run, InspectedRun):
        run = InspectedRun(run)
    index = run.index
    scorer = run.student
    model, featurizer = scorer.model, scorer.featurizer
    if not str(query).strip():
        raise GraphrelInputError("empty query", fix="pass the query text")
    q = index.find_query(query)
    query_id, query_text = (index.query_ids[q], index.query_texts[q]) if q is not None else (str(query), str(query))
    p = index.find_product(product_id)
    if p is not None:
        product_id, product_text = index.product_ids[p], index.product_texts[p]
    elif product_text is None:
        raise unknown_product(index, product_id, run.run_dir,
                              extra_fix=", or give the text of a product outside the graph (--pair-product-text)")
    else:
        product_id = str(product_id)

    batch = featurizer.from_texts([query_id], [query_text], [product_id], [product_text])
    names = list(model.metapaths)
    used, scores, attention = _ablate(model, batch, names)
    weights = ({name: float(attention["metapaths"][0, m]) for m, name in enumerate(names)} if names else {})
    table = _neighbour_table(index, batch, names, used, scores, attention, weights)
    explanation = PairExplanation(query_id=query_id, query=query_text, product_id=product_id,
                                  product_text=product_text, score=float(scores[0]), query_in_graph=q is not None,
                                  product_in_graph=p is not None, metapath_weights=weights, neighbours=table,
                                  text_fallback=bool(attention.get("text_fallback", torch.zeros(1, dtype=torch.bool))[0]))
    if run.pairs is not None:
        _add_own_pair(explanation, run.pairs, label_splits)
    return explanation


def _ablate(model, batch: dict, names: list[str]) -> tuple[list[tuple[str, int]], np.ndarray, dict]:
    """Score the pair as it is (row 0) and without each real neighbour (row r: without
    ``used[r - 1]``), in one batch: (used (metapath, slot) pairs, scores, attention)."""
    used = []  # (metapath, slot) of every real neighbour
    for name in names:
        ids = batch[f"{name}/ids"][0]
        used += [(name, int(j)) for j in torch.nonzero(ids >= 0).flatten()]
    ablated = {key: value.repeat(len(used) + 1, *([1] * (value.dim() - 1))) for key, value in batch.items()}
    for row, (name, slot) in enumerate(used, start=1):
        ablated[f"{name}/ids"][row, slot] = -1
        ablated[f"{name}/scores"][row, slot] = float("nan")
    model.eval()
    with torch.inference_mode():
        logits, attention = model(ablated, return_attention=True)
    return used, torch.sigmoid(logits).double().numpy(), attention


def _neighbour_table(index: GraphIndex, batch: dict, names: list[str], used: list[tuple[str, int]],
                     scores: np.ndarray, attention: dict, weights: dict[str, float]) -> pd.DataFrame:
    """One row per neighbour read, columns :data:`NEIGHBOUR_COLUMNS`, by metapath then attention."""
    rows = []
    for row, (name, slot) in enumerate(used, start=1):
        kind = NEIGHBOUR_TYPE[name]
        node = int(batch[f"{name}/ids"][0, slot])
        instance = float(batch[f"{name}/scores"][0, slot])
        via = _via(index, batch, name, node, instance)
        rows.append({
            "metapath": name,
            "neighbour_type": kind,
            "neighbour_id": index.query_ids[node] if kind == "query" else index.product_ids[node],
            "neighbour_text": index.query_texts[node] if kind == "query" else index.product_texts[node],
            "via": None if via is None else (index.product_ids[via] if name == "Q-P-Q" else index.query_ids[via]),
            "built": name in SIMILAR_QUERY_METAPATHS,
            "teacher_score": instance,
            "attention": float(attention[name][0, slot]),
            "metapath_weight": weights[name],
            "score_without": float(scores[row]),
            "contribution": float(scores[0] - scores[row]),
        })
    table = pd.DataFrame(rows, columns=[c for c in NEIGHBOUR_COLUMNS if c != "rank"])
    if len(table):
        table["order"] = table["metapath"].map({n: i for i, n in enumerate(names)})
        table = table.sort_values(["order", "attention"], ascending=[True, False], kind="stable")
        table["rank"] = table.groupby("metapath").cumcount() + 1
        table = table.drop(columns="order").reset_index(drop=True)
    return table.reindex(columns=NEIGHBOUR_COLUMNS)


def _via(index: GraphIndex, batch: dict, name: str, node: int, instance: float) -> int | None:
    """Middle node of a two-hop metapath instance (None for one-hop metapaths).

    Q-P-Q: the product p' among the pair's Q-P neighbours with edges q-p' and p'-q'' whose
    score product is the instance score; P-Q-P likewise through the P-Q neighbours; Q~Q-P
    through the nearest logged queries (Q~Q, their similarity x the edge's teacher score).
    """
    if name not in ("Q-P-Q", "P-Q-P", "Q~Q-P"):
        return None
    first = {"Q-P-Q": "Q-P", "P-Q-P": "P-Q", "Q~Q-P": "Q~Q"}[name]
    best, best_error = None, math.inf
    for middle, score in zip(batch[f"{first}/ids"][0].tolist(), batch[f"{first}/scores"][0].tolist()):
        if middle < 0:
            continue
        key = (node, middle) if name == "Q-P-Q" else (middle, node)  # (query, product)
        if key in index.edge_score:
            error = abs(score * index.edge_score[key] - instance)
            if error < best_error:
                best, best_error = middle, error
    return best


def _float_or_none(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _add_own_pair(explanation: PairExplanation, pairs: pd.DataFrame, label_splits: tuple[str, ...]) -> None:
    """Teacher score, split and (where shown) label of the pair itself, if it is a pair of the run."""
    own = pairs[(pairs["query_id"] == explanation.query_id) & (pairs["product_id"] == explanation.product_id)]
    if len(own):
        own = own.iloc[0]
        explanation.teacher_score = _float_or_none(own.get("teacher_score"))
        explanation.split = str(own["split"])
        if explanation.split in label_splits:
            explanation.label = _float_or_none(own.get("label"))
