"""The students that learn to retrieve: the fine-tuned dual encoder, EmbedDistill (asymmetric
and symmetric), Blend and Match, the dual-pooling scorer and its teacher geometry, and their
training helpers. Imports search, encoding and serving inside :mod:`graphrel.retrieval`
(README.md beside this file)."""
