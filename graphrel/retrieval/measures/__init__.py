"""Retrieval metrics: recall@k, NDCG@10 and precision@10 through ir-measures, TREC run files,
and the judged-only figures. Imports only :mod:`graphrel.retrieval.search` inside
:mod:`graphrel.retrieval` (README.md beside this file)."""
