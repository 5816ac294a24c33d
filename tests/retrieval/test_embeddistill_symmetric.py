import numpy as np
import pytest

from graphrel.retrieval.search.bm25 import BM25Index
from graphrel.retrieval.search.catalogue import Catalogue
from graphrel.retrieval.students.embeddistill import LossWeights, build_asymmetric_student
from graphrel.retrieval.students.embeddistill_symmetric import save_symmetric_student, train_symmetric_student
from graphrel.retrieval.encoding.encoders import count_parameters, encode, load_encoder
from graphrel.retrieval.students.mining import mine_hard_negatives, positive_examples
from graphrel.retrieval.serving.retriever import Retriever

from .conftest import toy_pairs


@pytest.fixture(scope="module")
def setup(tiny_encoder_dir, tiny_static):
    pairs = toy_pairs()
    catalogue = Catalogue.from_pairs(pairs)
    positives = positive_examples(pairs, threshold=0.75, max_examples=None, seed=0)
    frame = mine_hard_negatives(positives, pairs, BM25Index(catalogue.texts), catalogue, negatives=2, depth=6,
                                threshold=0.75, seed=0)
    teacher = load_encoder(tiny_encoder_dir)
    static = tiny_static
    options = dict(product_texts=catalogue.texts, teacher_product_embeddings=encode(teacher, catalogue.texts),
                   product_rows={p: i for i, p in enumerate(catalogue.product_ids)},
                   teacher_query_embeddings=encode(teacher, frame["query"]), weights=LossWeights(), steps=60,
                   batch_size=5, learning_rate=1e-2, seed=0)
    return frame, catalogue, teacher, static, options


def test_symmetric_student_encodes_products_itself_near_the_teacher(setup, tmp_path):
    frame, catalogue, teacher, static, options = setup
    teacher_products = options["teacher_product_embeddings"]
    student = build_asymmetric_student(static, output_dim=teacher_products.shape[1], seed=0)
    before = np.mean(np.sum(encode(student, catalogue.texts) * teacher_products, axis=1))
    losses = train_symmetric_student(student, frame, **options, document_weight=1.0, matching_products_batch_size=4)
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5]) and not student.training
    after = np.mean(np.sum(encode(student, catalogue.texts) * teacher_products, axis=1))
    assert after > before + 0.3  # document matching pulls the student's products onto the teacher's

    products = save_symmetric_student(tmp_path / "sym", student, catalogue, name="symmetric", teacher="dual_encoder")
    retriever = Retriever.load(tmp_path / "sym")
    saved = np.load(tmp_path / "sym" / "product_embeddings.npy")
    assert saved.shape == teacher_products.shape  # the teacher's dim
    np.testing.assert_allclose(saved, products)
    np.testing.assert_allclose(saved, encode(student, catalogue.texts), atol=1e-5)  # the student's, not the teacher's
    assert not np.allclose(saved, teacher_products, atol=1e-2)
    assert retriever.manifest["product_encoder_parameters"] == count_parameters(student) < count_parameters(teacher)
    assert retriever.manifest["teacher"] == "dual_encoder"
    top = retriever.search(["cordless drill"], k=3)
    assert len(top) == 3


def test_symmetric_student_uses_matching_queries(setup):
    frame, catalogue, teacher, static, options = setup
    extra = ["garden hose reel", "paint roller", "door knob brass", "led bulb", "drill driver", "hose nozzle"]
    extra_t = encode(teacher, extra)
    distances = []
    for kwargs in ({}, dict(matching_queries=extra, matching_teacher_embeddings=extra_t, matching_batch_size=3,
                            matching_score=True)):
        student = build_asymmetric_student(static, output_dim=extra_t.shape[1], seed=0)
        train_symmetric_student(student, frame, **options, **kwargs)
        distances.append(np.mean(np.linalg.norm(encode(student, extra) - extra_t, axis=1)))
    assert distances[1] < 0.8 * distances[0]


@pytest.mark.parametrize("change, message", [
    (dict(document_weight=-1.0), "document_weight"),
    (dict(matching_products_batch_size=-1), "matching_products_batch_size"),
    (dict(document_weight=0.0, matching_products_batch_size=4), "needs document_weight"),
    (dict(teacher_product_embeddings=np.ones((3, 32), dtype=np.float32)), "teacher_product_embeddings"),
    (dict(matching_queries=["a"]), "together"),
])
def test_symmetric_options_are_validated(setup, change, message):
    frame, catalogue, teacher, static, options = setup
    student = build_asymmetric_student(static, output_dim=32, seed=0)
    with pytest.raises(ValueError, match=message):
        train_symmetric_student(student, frame, **{**options, "steps": 2, **change})


def test_student_and_teacher_dims_must_agree(setup):
    frame, catalogue, teacher, static, options = setup
    student = build_asymmetric_student(static, output_dim=8, seed=0)
    with pytest.raises(ValueError, match="dim"):
        train_symmetric_student(student, frame, **{**options, "steps": 2})
