"""Retriever directories and how they are served: :class:`~graphrel.retrieval.serving.retriever.Retriever`,
the hybrid BM25 + dense retriever, rank fusion, re-ranking with a pair scorer and the
``graphrel retrieve`` command. Imports search, encoding and measures inside
:mod:`graphrel.retrieval` (README.md beside this file)."""
