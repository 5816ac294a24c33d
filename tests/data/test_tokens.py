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


def test_unusual_words_get_the_tokenizers_ids(tokenizer):
    """Words whose normalised form differs in length, vanishes, or splits (accents, CJK, emoji,
    ligatures, zero-width and combining characters, entities, over-long words): the pieces of
    one call for all words still go to the right word."""
    texts = ["café naïve İstanbul ß ﬁ Ⅻ", "日本語テキスト 😀 \u0301 \u200b", "&amp; 1,000 3/4in. W/ ¿qué?", "y" * 150 + " ok",
             "\u0301 lonely-combining mark", "tab\tsplit and\u00a0nbsp"]
    ours = WordpieceCache(tokenizer).encode(texts, 48)
    ref = np.array(tokenizer(texts, add_special_tokens=False, truncation=True, max_length=48,
                             padding="max_length")["input_ids"])
    assert (ours == ref).all()


def test_words_longer_than_the_saved_truncation_keep_every_piece(tokenizer):
    """The saved tokenizer pads and truncates to 128 pieces; words are asked without either."""
    long_word = "a-" * 100  # 200 wordpieces (punctuation splits) in one white-space token
    ref = tokenizer([long_word], add_special_tokens=False)["input_ids"][0]
    assert len(ref) > 128
    ours = WordpieceCache(tokenizer).encode([long_word, "pipe"], 256)
    assert ours[0, :len(ref)].tolist() == ref and (ours[0, len(ref):] == tokenizer.pad_token_id).all()
    assert ours[1, 0] == tokenizer("pipe", add_special_tokens=False)["input_ids"][0] and (ours[1, 1:] == 0).all()


class _CountingTokenizer:
    """The tokenizer, recording the words each call asks for."""

    def __init__(self, tokenizer):
        self.tokenizer, self.asked = tokenizer, []
        self.pad_token_id = tokenizer.pad_token_id

    def __call__(self, words, **kwargs):
        self.asked.append(list(words))
        return self.tokenizer(words, **kwargs)


def test_tokenizer_is_asked_once_per_new_word_and_cached_ids_agree(tokenizer):
    counting = _CountingTokenizer(tokenizer)
    cache = WordpieceCache(counting)
    first = cache.encode(TEXTS, 16)
    assert len(counting.asked) == 1  # one call for every new word of the batch
    assert sorted(counting.asked[0]) == sorted(set(" ".join(TEXTS).split()))
    assert (cache.encode(TEXTS, 16) == first).all()
    assert len(counting.asked) == 1  # all cached: the tokenizer is not asked again
    cache.encode(["PVC pipe elbow", "pipe"], 16)
    assert counting.asked[1:] == [["elbow"]]  # only the word never seen


@pytest.mark.real_data
def test_real_titles_match_tokenizer(tokenizer, home_depot_path):
    from graphrel.data import load_home_depot

    titles = load_home_depot(home_depot_path).frame["product_text"].sample(3000, random_state=0).tolist()
    ours = WordpieceCache(tokenizer).encode(titles, 48)
    ref = np.array(tokenizer(titles, add_special_tokens=False, truncation=True, max_length=48,
                             padding="max_length")["input_ids"])
    assert (ours == ref).all(1).mean() >= 0.999


def test_whole_vocabulary_words_skip_the_tokenizer_and_keep_its_ids(tokenizer, monkeypatch):
    """ASCII words of letters and digits found whole in the vocabulary (any case) are looked up;
    every other word is still asked, and the ids are the tokenizer's."""
    asked = []
    rust_pieces = WordpieceCache._rust_pieces

    def spy(word_tokenizer, words):
        asked.extend(words)
        return rust_pieces(word_tokenizer, words)

    monkeypatch.setattr(WordpieceCache, "_rust_pieces", staticmethod(spy))
    texts = ["Pipe PIPE pipe 12 Gauge", "\u212a elbow 3/4in. unbelievably", "CLS cls [CLS] MASK a[MASK]b x" + "y" * 120,
             "only whole words here", "WiFi Café"]
    ours = WordpieceCache(tokenizer).encode(texts, 32)
    ref = np.array(tokenizer(texts, add_special_tokens=False, truncation=True, max_length=32,
                             padding="max_length")["input_ids"])
    assert (ours == ref).all()
    # "Pipe", "PIPE", "12", "elbow", "only" ... never reach a tokenizer; other ASCII words reach it
    # lower-cased, and as they are: the Kelvin sign (it lower-cases to ASCII "k"), other non-ASCII
    # words, and words holding an added token ("[CLS]" is one piece, "[cls]" five)
    asked_lowered = {word.lower() for word in asked}
    assert {"pipe", "12", "gauge", "elbow", "only", "whole", "words", "here"}.isdisjoint(asked_lowered)
    assert {"3/4in.", "unbelievably", "x" + "y" * 120, "wifi"} <= set(asked)
    assert {"\u212a", "[CLS]", "Café"} <= set(asked)
    whole_only = WordpieceCache(tokenizer)
    asked.clear()
    assert (whole_only.encode(["only whole words here"], 8) == ref[3, :8]).all() and asked == []
