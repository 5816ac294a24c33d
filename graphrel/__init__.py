"""graphrel: relevance modelling for e-commerce search.

A cross-encoder teacher is distilled into fast students, above all a k-order graph
student that reads a query-product pair's text and its neighbourhood in the
query-product bipartite graph of the search log.
"""

__version__ = "0.1.0"
