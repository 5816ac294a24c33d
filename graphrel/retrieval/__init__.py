"""Retrieval over the whole catalogue (to come; see README.md in this folder).

The pair scorers of graphrel score candidates someone else found; retrieval finds them: for
a query, the top-k of every product of the data. Planned here: the catalogue and its
indexes, dual-encoder students distilled from the cross-encoder with EmbedDistill (Kim et
al., arXiv 2301.12005), Blend and Match (Bonab et al., Amazon 2023: a dual encoder that also
learns an extreme-classification model's predictions), and k-NN search by cross-encoder
score through sparse matrix factorisation (AXN: Yadav et al., ICLR 2024, arXiv 2405.03651),
with retrieval metrics (recall@k, NDCG@10) on unseen test queries.

Retrieval uses :mod:`graphrel.data`, :mod:`graphrel.nn`, :mod:`graphrel.models` and
:mod:`graphrel.scoring`; it never imports the pipeline or the command line.
"""
