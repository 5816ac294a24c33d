import numpy as np
import pytest

from graphrel.backbone import load_tokenizer
from graphrel.data.tokens import WordpieceCache

TEXTS = ["Simpson 12-Gauge angle, bracket (2-pack)", "3/4 in. x 10 ft. PVC pipe", "Café table_top w/ LED's",
         "", "unbelievably-long-hyphenated_word and ÜMLAUTS", "x" * 300]


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer()


def test_same_ids_as_the_tokenizer(tokenizer):
    cache = WordpieceCache(tokenizer)
    ours = cache.encode(TEXTS, 24)
    ref = np.array(tokenizer(TEXTS, add_special_tokens=False, truncation=True, max_length=24,
                             padding="max_length")["input_ids"])
    assert ours.shape == (len(TEXTS), 24) and ours.dtype == np.int64
    assert (ours == ref).all()


def test_second_call_uses_cache_and_agrees(tokenizer):
    cache = WordpieceCache(tokenizer)
    first = cache.encode(TEXTS, 16)
    assert len(cache._cache) > 0
    assert (cache.encode(TEXTS, 16) == first).all()


@pytest.mark.real_data
def test_real_titles_match_tokenizer(tokenizer, home_depot_path):
    from graphrel.data import load_home_depot

    titles = load_home_depot(home_depot_path).frame["product_text"].sample(3000, random_state=0).tolist()
    ours = WordpieceCache(tokenizer).encode(titles, 48)
    ref = np.array(tokenizer(titles, add_special_tokens=False, truncation=True, max_length=48,
                             padding="max_length")["input_ids"])
    assert (ours == ref).all(1).mean() >= 0.999
