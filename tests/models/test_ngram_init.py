"""Initial n-gram vectors of BERT2DNN students from the teacher backbone (models/ngram_init.py),
through ``Bert2DnnStudent.attach_ngrams`` as training uses them."""

import numpy as np
import pytest
import torch

from graphrel.data.ngrams import NgramFeaturizer
from graphrel.models.bert2dnn import Bert2DnnStudent

TINY = {"vocab_size": 30522, "hidden_size": 32}  # random wordpiece embeddings, the real tokenizer


def tiny_student(**options):
    return Bert2DnnStudent(**{"match_features": False, "label_weight": 0.0, "embedding_dim": 16, "hidden": (32, 16),
                              "backbone_config": TINY, **options})


def test_wordpiece_init_gives_ngrams_sharing_words_correlated_vectors():
    featurizer = NgramFeaturizer.fit(["cordless drill", "drill bit", "paint brush", "hammer"], min_count=1,
                                     num_buckets=16)
    model = tiny_student(init="wordpiece")
    model.attach_ngrams(featurizer)
    table = model.embedding.weight.detach()

    def vector(ngram):
        return table[featurizer.ngrams.index(ngram)]

    def cos(a, b):
        return torch.nn.functional.cosine_similarity(vector(a), vector(b), dim=0).item()

    assert cos("drill", "<s> drill") == pytest.approx(1.0, abs=1e-5)  # markers add no words
    assert cos("drill", "drill bit") > 0.5 and cos("drill bit", "bit") > 0.5
    assert abs(cos("drill", "paint")) < cos("drill", "drill bit")
    assert abs(cos("drill", "hammer")) < cos("drill", "drill bit")
    # scaled to the random init's RMS; buckets small
    rms = table[:featurizer.vocab_size].pow(2).mean().sqrt().item()
    assert rms == pytest.approx(1 / np.sqrt(16), rel=1e-3)
    assert table[featurizer.vocab_size:].pow(2).mean().sqrt().item() < 0.3 * rms
    # a checkpointed model is never re-initialised by attaching its vocabulary again
    before = table.clone()
    model.attach_ngrams(featurizer)
    assert torch.equal(model.embedding.weight.detach(), before)


def test_sentence_init_places_related_ngrams_close_with_the_real_backbone():
    """init="sentence": n-gram vectors from the shipped sentence encoder (integration: real
    MiniLM-L6, a dozen n-grams), so synonyms that share no wordpiece start close."""
    featurizer = NgramFeaturizer.fit(["fridge", "refrigerator", "drill bit", "paint brush", "garden hose",
                                      "ceiling fan", "lawn mower", "toilet seat"], min_count=1, num_buckets=16)
    model = Bert2DnnStudent(embedding_dim=8, hidden=(16,), init="sentence")
    model.attach_ngrams(featurizer)
    table = model.embedding.weight.detach()

    def cos(a, b):
        vectors = table[featurizer.ngrams.index(a)], table[featurizer.ngrams.index(b)]
        return torch.nn.functional.cosine_similarity(*vectors, dim=0).item()

    assert cos("fridge", "<s> fridge") == pytest.approx(1.0, abs=1e-5)  # markers add no words
    for other in ("drill bit", "paint brush", "garden hose", "toilet seat"):
        assert cos("fridge", "refrigerator") > cos("fridge", other)
    rms = table[:featurizer.vocab_size].pow(2).mean().sqrt().item()
    assert rms == pytest.approx(1 / np.sqrt(8), rel=1e-3)


def test_sentence_init_with_a_tiny_encoder_fills_every_vocabulary_row():
    featurizer = NgramFeaturizer.fit(["cordless drill", "drill bit", "paint brush", "hammer"], min_count=1,
                                     num_buckets=16)
    model = tiny_student(init="sentence")
    model.attach_ngrams(featurizer)
    table = model.embedding.weight.detach()[:featurizer.vocab_size]
    assert torch.isfinite(table).all() and (table.abs().sum(1) > 0).all()
    assert table.pow(2).mean().sqrt().item() == pytest.approx(1 / np.sqrt(16), rel=1e-3)
