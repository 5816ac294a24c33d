"""Search over the catalogue: the catalogue itself, exact (faiss flat) and HNSW indexes over
product embeddings, BM25, the shared top-k primitive and the HNSW-against-exact comparison.
Imports no other room of :mod:`graphrel.retrieval` (README.md beside this file)."""
