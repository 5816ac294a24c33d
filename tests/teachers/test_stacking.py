import numpy as np
import pytest

from graphrel.metrics import auc
from graphrel.teachers.stacking import TeacherStack


def test_stack_beats_each_noisy_teacher_and_weights_the_better_one_more():
    rng = np.random.default_rng(0)
    truth = rng.random(4000)
    labels = (truth > 0.5).astype(float)
    good = 4 * (truth - 0.5) + rng.normal(0, 1.0, len(truth))
    worse = 4 * (truth - 0.5) + rng.normal(0, 2.0, len(truth))
    logits = np.stack([good, worse], 1)
    stack = TeacherStack(["good", "worse"]).fit(logits[:2000], labels[:2000])
    assert stack.weights[0] > stack.weights[1] > 0
    stacked = stack.logits(logits[2000:])
    assert np.array_equal(TeacherStack.from_dict(stack.to_dict()).logits(logits[2000:]), stacked)
    assert stacked.shape == (2000,) and stacked.dtype == np.float32
    held_out = labels[2000:]
    assert auc(stacked, held_out, threshold=0.5) > max(auc(good[2000:], held_out, threshold=0.5),
                                                       auc(worse[2000:], held_out, threshold=0.5))
    groups = np.repeat(np.arange(400), 10)
    cross_validated = stack.cross_validated_logits(logits, labels, groups)
    assert cross_validated.shape == (4000,) and np.isfinite(cross_validated).all()


def test_stack_soft_labels_equal_weighted_hard_labels_and_bad_input_raises():
    stack = TeacherStack(["a", "b"])
    with pytest.raises(ValueError):
        stack.fit(np.zeros((3, 3)), np.zeros(3))
    with pytest.raises(ValueError):
        stack.fit(np.zeros((3, 2)), np.array([0.0, 1.5, 0.2]))
    with pytest.raises(ValueError):
        TeacherStack(["only one"])
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(500, 2))
    soft = 1 / (1 + np.exp(-(logits @ np.array([1.5, -0.5]) + 0.3)))
    fitted = TeacherStack(["a", "b"], regularisation=1e6).fit(logits, soft)
    assert np.allclose(fitted.weights, [1.5, -0.5], atol=0.05) and abs(fitted.bias - 0.3) < 0.05
