"""The old home of the XMC model, kept because saved XMC retrievers name it: ``xmc/features.pkl``
pickles a :class:`~graphrel.retrieval.encoding.xmc.QueryFeatures`, and files written before the
model moved to :mod:`graphrel.retrieval.encoding.xmc` record it as
``graphrel.retrieval.xmc.QueryFeatures``. Code imports :mod:`graphrel.retrieval.encoding.xmc`.
"""

from graphrel.retrieval.encoding.xmc import QueryFeatures

__all__ = ["QueryFeatures"]
