"""The query-side models a retriever directory loads: sentence-transformers encoders and the
XMC model of Blend and Match. Imports only :mod:`graphrel.retrieval.search` inside
:mod:`graphrel.retrieval` (README.md beside this file)."""
