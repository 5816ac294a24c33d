"""Dual-pooling scorer on a tiny random cross-encoder teacher (16-d, 2 layers, shipped tokenizer)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

from graphrel.retrieval.students.dual_pooling import (
    DualPoolingScorer,
    dual_pooling_scores,
    excluded_token_ids,
    load_dual_pooling_scorer,
    save_dual_pooling_scorer,
    train_dual_pooling_scorer,
)

TINY16 = {"hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 32}
QUERIES = ["garden hose", "cordless drill", "paint brush", "door hinge", "led bulb", "garden hose reel",
           "drill bits", "paint roller"]
PRODUCTS = ["50 ft. green garden hose", "DeWalt 20V cordless drill kit", "2 in. angled paint brush",
            "steel door hinge 3-pack", "Philips 60-Watt LED light bulb", "garden hose reel cart",
            "titanium drill bit set", "exterior paint roller cover"]


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    from graphrel.models.teacher import CrossEncoderTeacher

    directory = tmp_path_factory.mktemp("tiny_teacher")
    CrossEncoderTeacher(backbone_config=TINY16).save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def untrained(teacher_dir):
    """(model, tokenizer): the teacher's encoder, scale 1.5, bias 0.25, never trained."""
    from graphrel.scoring.teacher_labelling import load_teacher

    teacher = load_teacher(teacher_dir)
    model = DualPoolingScorer(teacher.model.base_model, excluded_token_ids(teacher.tokenizer), scale=1.5,
                              bias=0.25, max_length=32)
    return model.eval(), teacher.tokenizer


def test_pooling_means_each_segment_without_special_tokens_or_padding(untrained):
    model, tokenizer = untrained
    pairs = [("hose", "green garden hose with reel and nozzle"), ("cordless drill", "drill")]
    batch = tokenizer([q for q, _ in pairs], [p for _, p in pairs], padding=True, return_tensors="pt")
    assert (batch["attention_mask"] == 0).any()  # the second pair is padded
    with torch.no_grad():
        out = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
        hidden = model.encoder(**batch).last_hidden_state
    for row, (query, product) in enumerate(pairs):
        n_query = len(tokenizer.tokenize(query))
        n_product = len(tokenizer.tokenize(product))
        query_positions = list(range(1, 1 + n_query))  # after [CLS]
        product_positions = list(range(2 + n_query, 2 + n_query + n_product))  # after the first [SEP]
        torch.testing.assert_close(out.query[row], hidden[row, query_positions].mean(0))
        torch.testing.assert_close(out.product[row], hidden[row, product_positions].mean(0))
    assert not torch.allclose(out.query, out.product)


def test_pooled_vectors_do_not_depend_on_padding(untrained):
    model, tokenizer = untrained
    alone = dual_pooling_scores(model, tokenizer, ["hose"], ["garden hose"], return_embeddings=True)
    padded = dual_pooling_scores(model, tokenizer, ["hose", "a much longer query about hoses"],
                                 ["garden hose", "a much longer product title about garden hoses"],
                                 batch_size=2, return_embeddings=True)
    np.testing.assert_allclose(alone[0], padded[0][:1], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(alone[1], padded[1][:1], rtol=1e-5, atol=1e-5)


def test_score_is_scaled_dot_product_plus_bias(untrained):
    model, tokenizer = untrained
    scores, query, product = dual_pooling_scores(model, tokenizer, QUERIES, PRODUCTS, batch_size=3,
                                                 return_embeddings=True)
    assert scores.dtype == np.float64 and scores.shape == (len(QUERIES),) and query.shape == (len(QUERIES), 16)
    np.testing.assert_allclose(scores, 1.5 * (query * product).sum(1) + 0.25, rtol=1e-4, atol=1e-5)
    # input order kept despite length-sorted batches
    np.testing.assert_allclose(dual_pooling_scores(model, tokenizer, QUERIES[::-1], PRODUCTS[::-1]), scores[::-1],
                               rtol=1e-5, atol=1e-6)


def test_training_fits_teacher_logits_and_keeps_word_embeddings(teacher_dir, tmp_path):
    targets = np.linspace(-3.0, 3.0, len(QUERIES))[::-1].copy()  # spread logits the tiny teacher cannot give
    model, losses = train_dual_pooling_scorer(teacher_dir, QUERIES, PRODUCTS, targets, steps=80, batch_size=8,
                                              learning_rate=3e-3, seed=0)
    tokenizer = AutoTokenizer.from_pretrained(teacher_dir)
    after_scores = dual_pooling_scores(model, tokenizer, QUERIES, PRODUCTS)
    after = np.mean((after_scores - targets) ** 2)
    # losses[0]: MSE of all 8 pairs at the (moment-matched) start, before any update
    assert len(losses) == 80 and losses[0] > 0.5 and after < 0.1 * losses[0], (losses[0], after)
    assert float(model.log_scale.exp()) > 0 and not model.training
    from graphrel.scoring.teacher_labelling import load_teacher

    original = load_teacher(teacher_dir).model.get_input_embeddings().weight
    torch.testing.assert_close(model.encoder.get_input_embeddings().weight, original)  # frozen
    assert not torch.allclose(model.encoder.encoder.layer[0].attention.self.query.weight,
                              load_teacher(teacher_dir).model.base_model.encoder.layer[0].attention.self.query.weight)

    loaded, loaded_tokenizer = load_dual_pooling_scorer(save_dual_pooling_scorer(model, tokenizer, tmp_path / "dp"))
    np.testing.assert_allclose(dual_pooling_scores(loaded, loaded_tokenizer, QUERIES, PRODUCTS), after_scores,
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("option, value", [("steps", 0), ("batch_size", 0), ("learning_rate", 0.0),
                                           ("learning_rate", float("nan")), ("max_length", 3), ("warmup_share", 1.0)])
def test_training_options_are_validated(teacher_dir, option, value):
    options = {"steps": 2, "batch_size": 2, "learning_rate": 1e-3, "max_length": 32, "seed": 0, option: value}
    with pytest.raises(ValueError, match=option):
        train_dual_pooling_scorer(teacher_dir, QUERIES, PRODUCTS, np.zeros(len(QUERIES)), **options)


@pytest.mark.parametrize("logits, match", [(np.zeros(3), "same length"), ([0.0] * 7 + [float("inf")], "finite")])
def test_training_inputs_are_validated(teacher_dir, logits, match):
    with pytest.raises(ValueError, match=match):
        train_dual_pooling_scorer(teacher_dir, QUERIES, PRODUCTS, logits, steps=1)


def test_scoring_and_module_options_are_validated(untrained, tmp_path):
    model, tokenizer = untrained
    with pytest.raises(ValueError, match="batch_size"):
        dual_pooling_scores(model, tokenizer, QUERIES, PRODUCTS, batch_size=0)
    with pytest.raises(ValueError, match="same length"):
        dual_pooling_scores(model, tokenizer, QUERIES, PRODUCTS[:2])
    with pytest.raises(ValueError, match="scale"):
        DualPoolingScorer(model.encoder, [0], scale=0.0)
    with pytest.raises(ValueError, match="max_length"):
        DualPoolingScorer(model.encoder, [0], max_length=2)
    with pytest.raises(FileNotFoundError):
        load_dual_pooling_scorer(tmp_path)
