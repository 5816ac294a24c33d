"""The k-order graph student's scorer (BERM-O too): pairs from ids and texts to scores.

:class:`StudentScorer` loads a ``KOrderStudent`` directory with its query-product graph and
scores pairs end to end from texts (tokenising and neighbour look-up included), in input
order. :func:`graphrel.scoring.load.load_scorer` loads any student type.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from graphrel.errors import GraphrelInputError
from graphrel.run import GRAPH, load_run_graph
from graphrel.scoring.load import read_student_manifest
from graphrel.scoring.paused_gc import paused_garbage_collector


@dataclass
class StudentScorer:
    """A trained student with its graph, ready to score pairs from text.

    Load with :meth:`load` from a student directory (``model.ckpt`` + ``student.json``).
    """

    model: object
    featurizer: object
    name: str = "student"

    @classmethod
    def load(cls, directory: str | Path, *, graph: str | Path | None = None) -> "StudentScorer":
        """Load ``<directory>/student.json``, its checkpoint and its graph.

        Args:
            directory: a student directory.
            graph: the query-product graph (``graph.pt``) to read neighbours from instead of
                the one the manifest names (e.g. a run's ``graph_new_query.pt``, in which no
                test query has an edge).

        Raises:
            GraphrelInputError: unknown directory, missing manifest or checkpoint, or a
                checkpoint of another model type.
        """
        from graphrel.backbone import load_tokenizer
        from graphrel.data.features import PairFeaturizer
        from graphrel.data.tokens import WordpieceCache
        from graphrel.models.korder import KOrderStudent

        directory = Path(directory)
        manifest, checkpoint = read_student_manifest(directory, "KOrderStudent",
                                                     fix="re-run the pipeline's student stage")
        try:
            model = KOrderStudent.load_from_checkpoint(checkpoint, map_location="cpu")
        except (KeyError, TypeError, RuntimeError) as error:
            raise GraphrelInputError(f"not a k-order student checkpoint ({error.__class__.__name__})",
                                     path=checkpoint, fix="pass the checkpoint of a KOrderStudent") from None
        model.eval()
        graph = load_run_graph(Path(graph) if graph is not None
                               else (directory / manifest.get("graph", f"../{GRAPH}")).resolve())
        featurizer = PairFeaturizer(graph, WordpieceCache(load_tokenizer(model.hparams.backbone)),
                                    cap=manifest.get("cap", 8), metapaths=model.metapaths,
                                    neighbourhood_statistics=model.hparams.get("neighbourhood_statistics", False),
                                    similar_queries=model.hparams.get("similar_queries", 0),
                                    min_similarity=model.hparams.get("min_similarity", 0.5))
        model.attach_graph(featurizer.query_node_tokens, featurizer.product_node_tokens)
        scorer = cls(model=model, featurizer=featurizer, name=directory.name)
        scorer.reset_text_caches()  # the graph's node texts are not the texts it will score
        return scorer

    def reset_text_caches(self) -> None:
        """Forget the wordpieces of every text tokenised so far (timing from a cold cache)."""
        from graphrel.data.tokens import WordpieceCache

        self.featurizer.tokens = WordpieceCache(self.featurizer.tokens.tokenizer, self.featurizer.tokens.pad_id)

    def paths(self, query_ids, product_ids, queries=None) -> dict[str, int]:
        """How many of these pairs each scoring path takes, and the ids the graph lacks.

        A graph student with a text fallback (:class:`graphrel.models.korder.KOrderStudent`)
        scores with its frozen text-only copy a pair whose query has no other product in the
        graph, or, for a student reading nearest logged queries, a pair of which nothing is
        known (no other product of the query, no similar logged query, no other query of the
        product); every other pair (and every pair of a student without a fallback) goes
        through the graph student itself. The count is the one :meth:`score` follows, from
        ids and query texts alone (nothing is tokenised).

        Args:
            query_ids, product_ids: N str ids.
            queries: N str query texts; needed by a student reading nearest logged queries.

        Returns:
            ``{"graph": int, "text_fallback": int, "queries_not_in_graph": int,
            "products_not_in_graph": int}``: the first two add up to N; the last two count
            pairs whose query (product) id is not a node of the graph. A student reading
            nearest logged queries adds ``"built_neighbourhood"``: pairs whose query is not in
            the graph (or has no other product there) but has a similar logged query, and
            ``"nothing_known"``: pairs with no neighbour at all (no other product of the query,
            no similar logged query, no other query of the product), what a text fallback
            takes (with none, the graph student scores them from its empty neighbourhood). A
            text-only student (k=0, no neighbourhood statistics) reads no graph: ``{"text": N}``.

        Raises:
            ValueError: ``queries`` missing for a student reading nearest logged queries.
        """
        if not (self.model.metapaths or self.model.hparams.get("neighbourhood_statistics", False)):
            return {"text": len(query_ids)}  # the text-only student reads no graph
        neighbours = self.featurizer.neighbours
        query_index, product_index = neighbours.node_indices(query_ids, product_ids)
        # log(1 + degree, own edge left out) == 0: the query (product) has no other neighbour
        statistics = neighbours.neighbourhood_statistics(query_index, product_index)
        query_unknown = statistics[:, 1] == 0
        out = {}
        fallback = query_unknown
        if self.featurizer.similar_queries is not None:
            if queries is None:
                raise ValueError("a student reading nearest logged queries needs the query texts to count its paths")
            similar = self.featurizer.similar_query_statistics(queries, product_ids)[:, 0] > 0
            fallback = query_unknown & ~similar & (statistics[:, 3] == 0)
            out = {"built_neighbourhood": int((query_unknown & similar).sum()), "nothing_known": int(fallback.sum())}
        if getattr(self.model, "text_fallback", None) is None:
            fallback = np.zeros(len(query_index), dtype=bool)
        return {"graph": int((~fallback).sum()), "text_fallback": int(fallback.sum()),
                "queries_not_in_graph": int((query_index < 0).sum()),
                "products_not_in_graph": int((product_index < 0).sum()), **out}

    @torch.inference_mode()
    @paused_garbage_collector()
    def score(self, query_ids, queries, product_ids, product_texts, *, batch_size: int = 512,
              progress: bool = False) -> np.ndarray:
        """Relevance scores of pairs from their ids and texts, in input order.

        Texts are tokenised and neighbours looked up for all pairs at once (vectorised),
        then scored in batches of similar product-text length (little padding).

        Args:
            query_ids, product_ids: N str ids (graph neighbours are looked up by id; unseen
                ids have none).
            queries, product_texts: N str texts.
            batch_size: pairs per forward pass (small batches stay in CPU cache).

        Returns:
            (N,) float32 scores in [0, 1].

        Raises:
            ValueError: ``batch_size`` < 1 (no batch would run: the scores would be
                whatever memory held).
        """
        from graphrel.data.features import select_rows

        if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"batch_size must be a whole number >= 1, got {batch_size!r}")

        features = self.featurizer.from_texts(query_ids, queries, product_ids, product_texts)
        lengths = (features["product_tokens"] != self.featurizer.tokens.pad_id).sum(1).numpy()
        order = torch.from_numpy(np.argsort(lengths, kind="stable"))
        out = np.empty(len(lengths), dtype=np.float32)
        for start in tqdm(range(0, len(order), batch_size), desc=f"{self.name} scoring", disable=not progress,
                          unit="batch", mininterval=2.0):
            rows = order[start:start + batch_size]
            batch = select_rows(features, rows, self.featurizer.tokens.pad_id)
            out[rows.numpy()] = torch.sigmoid(self.model(batch)).numpy()
        return out
