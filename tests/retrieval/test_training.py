import numpy as np
import pandas as pd
import pytest
import torch

from graphrel.retrieval.search.bm25 import BM25Index
from graphrel.retrieval.search.catalogue import Catalogue
from graphrel.retrieval.students.embeddistill import (LossWeights, build_asymmetric_student, score_distillation,
                                             train_asymmetric_student)
from graphrel.retrieval.encoding.encoders import count_parameters, encode, load_encoder
from graphrel.retrieval.students.mining import mine_hard_negatives, positive_examples
from graphrel.retrieval.students.training import distinct_query_batches, fine_tune_dual_encoder

from .conftest import toy_pairs


@pytest.fixture(scope="module")
def examples():
    pairs = toy_pairs()
    catalogue = Catalogue.from_pairs(pairs)
    positives = positive_examples(pairs, threshold=0.75, max_examples=None, seed=0)
    return mine_hard_negatives(positives, pairs, BM25Index(catalogue.texts), catalogue, negatives=2, depth=6,
                               threshold=0.75, seed=0), catalogue


def test_hard_negatives_are_never_relevant_to_their_query(examples):
    frame, _ = examples
    pairs = toy_pairs()
    relevant = pairs[pairs.label >= 0.75].groupby("query_id").product_id.agg(set)
    assert len(frame) == 12 and set(frame.query_id) == set(relevant.index[relevant.index.str.endswith("set")])
    for _, row in frame.iterrows():
        assert row.product_id in relevant[row.query_id]
        assert {row.negative_1, row.negative_2}.isdisjoint(relevant[row.query_id]) and row.negative_1 != row.negative_2


def test_batches_never_repeat_a_query():
    ids = np.array(list("aabbbcdde"))
    batches = list(distinct_query_batches(ids, batch_size=3, steps=20, seed=0))
    assert len(batches) == 20 and all(len(set(ids[b])) == 3 for b in batches)
    assert list(distinct_query_batches(ids, batch_size=3, steps=20, seed=0))[5].tolist() == batches[5].tolist()


def test_dual_encoder_fine_tuning_fits_the_training_pairs(examples, tiny_encoder_dir):
    frame, catalogue = examples
    model = load_encoder(tiny_encoder_dir)
    losses = fine_tune_dual_encoder(model, frame, steps=40, batch_size=5, learning_rate=3e-3, seed=0)
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5])
    assert not model.training


def test_query_side_fine_tuning_keeps_the_product_embeddings(examples, tiny_encoder_dir):
    frame, catalogue = examples
    model = load_encoder(tiny_encoder_dir)
    frozen = encode(model, catalogue.texts)
    losses = fine_tune_dual_encoder(model, frame, steps=40, batch_size=5, learning_rate=3e-3, seed=0,
                                    product_embeddings=frozen,
                                    product_rows={p: i for i, p in enumerate(catalogue.product_ids)})
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5])
    rows = {p: i for i, p in enumerate(catalogue.product_ids)}
    hits = np.argmax(encode(model, frame["query"]) @ frozen.T, axis=1)
    relevant = frame.groupby("query_id").product_id.agg(set)
    assert np.mean([catalogue.product_ids[h] in relevant[q] for h, q in zip(hits, frame.query_id)]) > 0.8


def test_score_distillation_is_zero_when_student_equals_teacher():
    q = torch.nn.functional.normalize(torch.randn(4, 8), dim=1)
    p = torch.nn.functional.normalize(torch.randn(10, 8), dim=1)
    assert score_distillation(q, q, p, scale=20.0).abs() < 1e-6
    assert score_distillation(torch.nn.functional.normalize(torch.randn(4, 8), dim=1), q, p, scale=20.0) > 0.01


@pytest.fixture(scope="module")
def static(tiny_static):
    return tiny_static


@pytest.mark.parametrize("weights", [LossWeights(1, 0, 0), LossWeights(0, 1, 0), LossWeights(0, 0, 1), LossWeights()])
def test_asymmetric_student_learns_each_loss(examples, tiny_encoder_dir, static, weights):
    frame, catalogue = examples
    teacher = load_encoder(tiny_encoder_dir)
    products = encode(teacher, catalogue.texts)
    teacher_q = encode(teacher, frame["query"])
    student = build_asymmetric_student(static, output_dim=products.shape[1], seed=0)
    assert count_parameters(student) < count_parameters(teacher)
    before = np.mean(np.sum(encode(student, frame["query"]) * teacher_q, axis=1))
    losses = train_asymmetric_student(student, frame, product_embeddings=products,
                                      product_rows={p: i for i, p in enumerate(catalogue.product_ids)},
                                      teacher_query_embeddings=teacher_q, weights=weights, steps=60, batch_size=5,
                                      learning_rate=1e-2, seed=0)
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])
    after = np.mean(np.sum(encode(student, frame["query"]) * teacher_q, axis=1))
    if weights.embedding:  # matching pulls the student's query embeddings onto the teacher's
        assert after > before + 0.3 and after > (0.9 if weights == LossWeights(0, 0, 1) else 0.6)


def test_loss_weights_are_validated():
    with pytest.raises(ValueError):
        LossWeights(0, 0, 0)
    with pytest.raises(ValueError):
        LossWeights(-1, 1, 1)


def _matching_distance(student, queries, targets):
    return float(np.mean(np.linalg.norm(encode(student, queries) - targets, axis=1)))


def test_matching_queries_pull_the_student_onto_the_teacher_on_them(examples, tiny_encoder_dir, static):
    from graphrel.data.query_generation import generate_queries

    frame, catalogue = examples
    teacher = load_encoder(tiny_encoder_dir)
    products = encode(teacher, catalogue.texts)
    extra = generate_queries(catalogue.texts, per_product=3, min_words=1, max_words=3, seed=0)
    extra_t = encode(teacher, extra)
    common = dict(product_embeddings=products, product_rows={p: i for i, p in enumerate(catalogue.product_ids)},
                  teacher_query_embeddings=encode(teacher, frame["query"]), weights=LossWeights(1, 1, 1), steps=60,
                  batch_size=5, learning_rate=1e-2, seed=0)
    distances = {}
    for name, kwargs in (("without", {}), ("with", dict(matching_queries=extra, matching_teacher_embeddings=extra_t,
                                                         matching_batch_size=8))):
        student = build_asymmetric_student(static, output_dim=products.shape[1], seed=0)
        before = _matching_distance(student, extra, extra_t)
        losses = train_asymmetric_student(student, frame, **common, **kwargs)
        distances[name] = _matching_distance(student, extra, extra_t)
        assert np.isfinite(losses).all() and distances[name] < before
    assert distances["with"] < 0.8 * distances["without"]


@pytest.mark.parametrize("kwargs, message", [
    (dict(matching_queries=["a b"]), "together"),
    (dict(matching_queries=["a b", "c"], matching_teacher_embeddings=np.ones((1, 32))), r"\(2, 32\)"),
    (dict(matching_queries=["a b"], matching_teacher_embeddings=np.ones((1, 8))), r"\(1, 32\)"),
    (dict(matching_queries=[], matching_teacher_embeddings=np.ones((0, 32))), "empty"),
    (dict(matching_queries=["a"], matching_teacher_embeddings=np.ones((1, 32)), matching_batch_size=0), ">= 1"),
    (dict(matching_queries=["a"], matching_teacher_embeddings=np.ones((1, 32)), weights=LossWeights(1, 1, 0)),
     "unused"),
])
def test_matching_queries_are_validated(examples, tiny_encoder_dir, static, kwargs, message):
    frame, catalogue = examples
    teacher = load_encoder(tiny_encoder_dir)
    products = encode(teacher, catalogue.texts)
    student = build_asymmetric_student(static, output_dim=products.shape[1], seed=0)
    options = dict(product_embeddings=products, product_rows={p: i for i, p in enumerate(catalogue.product_ids)},
                   teacher_query_embeddings=encode(teacher, frame["query"]), weights=LossWeights(), steps=2,
                   batch_size=5, learning_rate=1e-2, seed=0)
    with pytest.raises(ValueError, match=message):
        train_asymmetric_student(student, frame, **{**options, **kwargs})


def test_matching_batches_cover_every_query_without_repeats():
    from graphrel.retrieval.students.embeddistill import matching_batches

    batches = list(matching_batches(10, batch_size=4, steps=6, seed=0))
    assert len(batches) == 6 and all(len(b) == 4 and len(set(b.tolist())) == 4 for b in batches)
    assert len(set(np.concatenate(batches[:2]).tolist())) == 8  # one pass: no row twice
    assert [b.tolist() for b in matching_batches(10, batch_size=4, steps=6, seed=0)] == [b.tolist() for b in batches]


def test_pruned_vocabulary_keeps_the_embeddings_of_seen_texts(static):
    from graphrel.retrieval.students.embeddistill import prune_vocabulary

    texts = ["cordless drill bit set", "garden hose reel"]
    pruned = prune_vocabulary(static, texts)
    assert 2 < pruned.num_embeddings < static.num_embeddings // 10 and pruned.embedding_dim == static.embedding_dim
    with torch.no_grad():
        before = static(static.preprocess(texts + ["drill hose"]))["sentence_embedding"]
        after = pruned(pruned.preprocess(texts + ["drill hose"]))["sentence_embedding"]
        unseen = pruned(pruned.preprocess(["zebra"]))["sentence_embedding"]
    torch.testing.assert_close(after, before)  # same tokens, same rows
    assert unseen.shape == (1, static.embedding_dim) and torch.isfinite(unseen).all()  # [UNK] (kept)
    student = build_asymmetric_student(pruned, output_dim=32, seed=0)
    assert count_parameters(student) == pruned.num_embeddings * 16 + 16 * 32 + 32
    with pytest.raises(ValueError, match="at least one text"):
        prune_vocabulary(static, [])
