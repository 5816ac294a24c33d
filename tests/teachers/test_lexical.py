import numpy as np
import pytest

from graphrel.metrics import auc
from graphrel.teachers.lexical import FEATURE_NAMES, LexicalTeacher


def test_lexical_features_see_word_overlap():
    teacher = LexicalTeacher().fit_vocabulary(["cordless drill", "drill bits set", "garden hose 50 ft", "hose reel"])
    features = teacher.features(["cordless drill", "cordless drill", "drill"], ["Cordless Drill kit", "garden hose", "drills"])
    assert features.shape == (3, len(FEATURE_NAMES)) and features.dtype == np.float32
    found = FEATURE_NAMES.index("query_words_found")
    prefix = FEATURE_NAMES.index("query_words_prefix_found")
    assert features[0, found] == 1.0 and features[1, found] == 0.0
    assert features[2, found] == 0.0 and features[2, prefix] == 1.0  # "drill" is a prefix of "drills"
    assert features[0, 0] > features[1, 0]  # word TF-IDF cosine


def test_lexical_teacher_learns_overlap_and_gives_finite_logits():
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(40)]
    queries, products, labels = [], [], []
    for _ in range(600):
        query = list(rng.choice(words, 2, replace=False))
        relevant = rng.random() < 0.5
        title = query + list(rng.choice(words, 3)) if relevant else list(rng.choice(words, 5))
        queries.append(" ".join(query)), products.append(" ".join(title)), labels.append(float(relevant))
    teacher = LexicalTeacher(max_iter=50).fit(queries[:400], products[:400], np.array(labels[:400]))
    logits = teacher.logits(queries[400:], products[400:])
    assert logits.shape == (200,) and np.isfinite(logits).all()
    assert auc(logits, np.array(labels[400:]), threshold=0.5) > 0.9
    with pytest.raises(RuntimeError):
        LexicalTeacher().features(["q"], ["p"])
