"""Initial vectors of a BERT2DNN student's vocabulary n-grams, from the teacher backbone.

See :mod:`graphrel.models.bert2dnn` (``init``): random-start n-grams learn words from the
transfer set alone; these start them from the teacher's knowledge of words instead, either
its static wordpiece embeddings (:func:`wordpiece_ngram_vectors`) or its sentence encoder
(:func:`sentence_ngram_vectors`). Either way the vectors are projected to the table's width
by their top right singular vectors (as :class:`graphrel.nn.WordpieceEncoder`) and scaled to
the random init's RMS, 1/sqrt(D) per component.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from graphrel.backbone import load_encoder, load_tokenizer, load_word_embeddings
from graphrel.data.tokens import WordpieceCache
from graphrel.nn.functional import top_right_singular_vectors


def initial_ngram_vectors(featurizer, init: str, backbone: str, backbone_config: dict | None,
                          dim: int) -> torch.Tensor:
    """(V, D) initial vectors of ``featurizer``'s V vocabulary n-grams for ``init``
    ``"wordpiece"`` or ``"sentence"``, from ``backbone`` (or, with a test
    ``backbone_config``, its random stand-ins; see :mod:`graphrel.backbone`)."""
    if init == "sentence":
        return sentence_ngram_vectors(featurizer, load_encoder(backbone, backbone_config), load_tokenizer(backbone),
                                      dim)
    return wordpiece_ngram_vectors(featurizer, load_word_embeddings(backbone, backbone_config),
                                   load_tokenizer(backbone), dim)


def _to_table_scale(vectors: torch.Tensor) -> torch.Tensor:
    """(V, D) vectors rescaled so the RMS of a component is 1/sqrt(D), as the random init."""
    rms = vectors.pow(2).mean().sqrt().clamp_min(1e-12)
    return vectors * (1.0 / math.sqrt(vectors.shape[1])) / rms


def wordpiece_ngram_vectors(featurizer, embeddings: torch.Tensor, tokenizer, dim: int) -> torch.Tensor:
    """Initial vectors of a featuriser's vocabulary n-grams from wordpiece embeddings.

    Args:
        featurizer: a :class:`graphrel.data.ngrams.NgramFeaturizer` (V n-grams).
        embeddings: (W, E) float, the backbone's wordpiece embedding matrix.
        tokenizer: the backbone's tokenizer (wordpiece ids of each word).
        dim: D <= E, width of the n-gram table.

    Returns:
        (V, D) float32: per n-gram, the mean over its words of (mean of the word's
        wordpiece embeddings) @ P, P (E, D) the matrix's top-D right singular vectors;
        scaled so the RMS of a component is 1/sqrt(D). Words without wordpieces add zeros.
    """
    embeddings = embeddings.float()
    projected = embeddings @ top_right_singular_vectors(embeddings, dim).T  # (W, D)
    words_of = [featurizer.ngram_words(i) for i in range(featurizer.vocab_size)]
    words = sorted({w for ws in words_of for w in ws})
    if not words:
        return torch.zeros(0, dim)
    pieces = torch.from_numpy(WordpieceCache(tokenizer).encode(words, 16))  # (U, 16)
    mask = (pieces != tokenizer.pad_token_id).float().unsqueeze(-1)
    word_vectors = (projected[pieces] * mask).sum(1) / mask.sum(1).clamp_min(1.0)  # (U, D)
    position = {w: i for i, w in enumerate(words)}
    lengths = torch.tensor([len(ws) for ws in words_of])
    flat = torch.tensor([position[w] for ws in words_of for w in ws])
    owner = torch.repeat_interleave(torch.arange(len(words_of)), lengths)
    vectors = torch.zeros(len(words_of), dim).index_add_(0, owner, word_vectors[flat])
    return _to_table_scale(vectors / lengths.clamp_min(1).unsqueeze(1))


def sentence_ngram_vectors(featurizer, encoder, tokenizer, dim: int, *, batch_size: int = 1024,
                           progress: bool = False) -> torch.Tensor:
    """Initial vectors of a featuriser's vocabulary n-grams from the backbone's sentence
    encoder: each n-gram's words (markers left out) run through the encoder as a short
    text, its last layer mean-pooled over the wordpieces (sentence-transformers' pooling
    of all-MiniLM-L6-v2), centred and projected to ``dim`` by the top right singular vectors.

    Unlike :func:`wordpiece_ngram_vectors` (static input embeddings), the vector of "ac
    unit" here comes from the words in context, in the space where the backbone's
    sentence embeddings of related texts lie close.

    Args:
        featurizer: a :class:`graphrel.data.ngrams.NgramFeaturizer` (V n-grams).
        encoder: a ``transformers`` encoder (``last_hidden_state`` (B, L, E)).
        tokenizer: its tokenizer.
        dim: D <= E, width of the n-gram table.
        batch_size: n-grams per encoder pass (length-sorted; ~700 n-grams/s on 2 CPU cores).

    Returns:
        (V, D) float32, scaled so the RMS of a component is 1/sqrt(D).
    """
    from tqdm.auto import tqdm

    texts = [" ".join(featurizer.ngram_words(i)) for i in range(featurizer.vocab_size)]
    if not texts:
        return torch.zeros(0, dim)
    pooled = torch.zeros(len(texts), encoder.config.hidden_size)
    order = np.argsort([len(t) for t in texts], kind="stable")
    with torch.inference_mode():
        for start in tqdm(range(0, len(texts), batch_size), desc="n-gram vectors", disable=not progress):
            rows = order[start:start + batch_size]
            encoded = tokenizer([texts[r] for r in rows], padding=True, truncation=True, max_length=16,
                                return_tensors="pt")
            hidden = encoder(input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"]).last_hidden_state
            mask = encoded["attention_mask"].unsqueeze(-1).float()
            pooled[torch.from_numpy(rows)] = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)
    pooled = pooled - pooled.mean(0, keepdim=True)
    return _to_table_scale(pooled @ top_right_singular_vectors(pooled, dim).T)
