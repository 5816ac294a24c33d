"""Neighbourhood inspection: the graph around a query or product, and why the student scored a pair.

Two questions scientists ask of a run:

- "What does the graph know around ``angle bracket``?" -> :func:`neighborhood`
  (:mod:`~graphrel.explore.egograph`), the ego graph (a :class:`networkx.Graph`) up to
  ``hops`` hops in the query-product bipartite graph, with teacher scores, student scores,
  human labels and split membership on edges;
- "Why did the student rate this pair low?" -> :func:`metapaths`
  (:mod:`~graphrel.explore.explain`), the Q-P, P-Q, Q-P-Q and P-Q-P neighbours the k-order
  student read for the pair, with their attention weights and their contribution (the
  change in score when that one neighbour is removed).

``graphrel inspect`` (:mod:`~graphrel.explore.command`) prints either as a table
(:mod:`~graphrel.explore.tables`), or exports the ego graph as node-link JSON, GraphML
(:mod:`~graphrel.explore.export`) or a PNG drawing (:mod:`~graphrel.explore.drawing`). A
run directory is opened once with :class:`InspectedRun`.

Node names in the ego graph are ``"query:<query_id>"`` and ``"product:<product_id>"``.

Node attributes:
    ``type`` ("query" / "product"), ``node_id`` (the query or product id; named so because
    ``id`` is the node key of networkx's node-link JSON), ``text``, ``degree`` (edges in the
    full graph, every split) and ``hop`` (distance from the centre).

Edge attributes:
    ``teacher_score`` (float in [0, 1]), ``student_score`` (float in [0, 1]; only when the run
    has a k-order student), ``label`` (human label normalised to [0, 1]; only on edges whose
    split is in ``label_splits``, omitted elsewhere) and ``split``
    (train / val / test_context / transfer, always present; the evaluated ``test`` pairs
    are never edges of a run's graph).

Labels policy: by default labels of ``train`` and ``val`` pairs are shown (the student was
trained on the former and selected on the latter) and test queries' labels are hidden, so that
looking at the graph while debugging a model does not tune it against the held-out
evaluation; the ``split`` attribute still shows test membership. Pass
``label_splits=("train", "val", "test", "test_context")`` (``--show-test-labels``) for deliberate error
analysis. Transfer pairs have no human label.
"""

from graphrel.explore.egograph import neighborhood
from graphrel.explore.explain import PairExplanation, metapaths
from graphrel.explore.inspected_run import InspectedRun

__all__ = ["InspectedRun", "PairExplanation", "metapaths", "neighborhood"]
