import os
import subprocess
import sys

import numpy as np
import pytest

from graphrel.data.ngrams import (BOS, EOS, MATCH_FEATURES, NgramFeaturizer, gather_bags, match_features, ngram_key,
                                  text_ngrams, word_hash)

TEXTS = ["Simpson Strong-Tie 12-Gauge Angle", "angle bracket", "Angle Bracket (2-pack)", "deck over",
         "3/4 in. x 10 ft. PVC pipe", "drill bit", "drill bit set", "drill"]


def bags(featurizer, texts):
    """Feature ids of each text, as lists."""
    ids, offsets = featurizer.encode(texts)
    ends = np.append(offsets[1:], len(ids))
    return [ids[a:b].tolist() for a, b in zip(offsets, ends)]


def names(featurizer, ids):
    return [featurizer.ngrams[i] if i < featurizer.vocab_size else f"#{i - featurizer.vocab_size}" for i in ids]


def test_unigrams_and_bigrams_with_boundary_markers_in_the_authors_order():
    assert text_ngrams("Angle Bracket (2-pack)") == [
        f"{BOS} angle", "angle", "angle bracket", "bracket", "bracket 2-pack", "2-pack", f"2-pack {EOS}"]
    assert text_ngrams("drill") == [f"{BOS} drill", "drill", f"drill {EOS}"]
    # punctuation-only tokens are dropped, outer punctuation stripped, inner kept
    assert text_ngrams("3/4 in. - PVC") == [f"{BOS} 3/4", "3/4", "3/4 in", "in", "in pvc", "pvc", f"pvc {EOS}"]


def test_encode_matches_the_readable_ngrams():
    featurizer = NgramFeaturizer.fit(TEXTS, min_count=1, num_buckets=16)
    assert set(featurizer.ngrams) == {g for t in TEXTS for g in text_ngrams(t)}
    for text, bag in zip(TEXTS, bags(featurizer, TEXTS)):
        assert names(featurizer, bag) == text_ngrams(text)


def test_min_count_counts_distinct_texts_and_orders_by_frequency():
    texts = ["drill bit", "drill bit", "drill bit", "drill", "bit set", "cordless drill"]
    featurizer = NgramFeaturizer.fit(texts, min_count=2)
    # "drill bit" counts once (one distinct text); "drill" is in 3 texts; "bit", "<s> drill"
    # and "drill </s>" in 2
    assert featurizer.ngrams[0] == "drill"
    assert set(featurizer.ngrams) == {"drill", "bit", f"{BOS} drill", f"drill {EOS}"}
    assert NgramFeaturizer.fit(texts, min_count=2, max_size=1).ngrams == ["drill"]


def test_unseen_ngrams_go_to_stable_buckets():
    featurizer = NgramFeaturizer.fit(TEXTS, min_count=1, num_buckets=32)
    (bag,) = bags(featurizer, ["cordless impact wrench"])
    assert len(bag) == 7
    assert all(featurizer.vocab_size <= i < featurizer.num_embeddings for i in bag)
    # the bucket depends only on the n-gram: same in a featuriser with another vocabulary
    other = NgramFeaturizer(["drill"], num_buckets=32)
    (other_bag,) = bags(other, ["cordless impact wrench"])
    assert [i - featurizer.vocab_size for i in bag] == [i - other.vocab_size for i in other_bag]
    assert bag[1] - featurizer.vocab_size == word_hash("cordless") % 32
    assert bag[2] - featurizer.vocab_size == ngram_key("cordless impact") % 32
    # known words keep their ids next to unseen ones
    (mixed,) = bags(featurizer, ["drill wrench"])
    assert mixed[:2] == [featurizer.ngrams.index(f"{BOS} drill"), featurizer.ngrams.index("drill")]


def test_empty_texts_give_empty_bags_and_keep_alignment():
    featurizer = NgramFeaturizer.fit(TEXTS, min_count=1)
    texts = ["", "drill", "   ", "- & /", "drill bit", "\ue000 drill"]
    got = bags(featurizer, texts)
    assert got[0] == [] and got[2] == [] and got[3] == []
    assert got[1] == got[5] == bags(featurizer, ["drill"])[0]
    assert names(featurizer, got[4]) == text_ngrams("drill bit")
    ids, offsets = featurizer.encode([])
    assert ids.shape == (0,) and offsets.shape == (0,)
    ids, offsets = featurizer.encode([""])
    assert ids.shape == (0,) and offsets.tolist() == [0]


def test_cache_gives_the_same_ids_on_repeat_and_after_new_words():
    featurizer = NgramFeaturizer.fit(TEXTS, min_count=1)
    first = bags(featurizer, TEXTS)
    bags(featurizer, ["entirely new words here"])
    assert bags(featurizer, TEXTS) == first
    assert bags(NgramFeaturizer.fit(TEXTS, min_count=1), TEXTS[::-1]) == first[::-1]


def test_save_load_round_trip(tmp_path):
    featurizer = NgramFeaturizer.fit(TEXTS, min_count=1, num_buckets=64)
    featurizer.save(tmp_path / "ngrams.json")
    loaded = NgramFeaturizer.load(tmp_path / "ngrams.json")
    assert loaded.ngrams == featurizer.ngrams and loaded.num_embeddings == featurizer.num_embeddings
    probe = TEXTS + ["unseen cordless wrench"]
    assert bags(loaded, probe) == bags(featurizer, probe)


def test_gather_bags_selects_rows():
    featurizer = NgramFeaturizer.fit(TEXTS, min_count=1)
    ids, offsets = featurizer.encode(TEXTS)
    rows = np.array([3, 0, 3, 7])
    got_ids, got_offsets = gather_bags(ids, offsets, rows)
    want_ids, want_offsets = featurizer.encode([TEXTS[i] for i in rows])
    assert got_ids.tolist() == want_ids.tolist() and got_offsets.tolist() == want_offsets.tolist()


_CHILD = """
import json
from graphrel.data.ngrams import NgramFeaturizer
texts = json.loads({texts!r})
f = NgramFeaturizer.fit(texts[:6], min_count=1, num_buckets=1000)
ids, offsets = f.encode(texts)
print(json.dumps([f.ngrams, ids.tolist(), offsets.tolist()]))
"""


@pytest.mark.parametrize("seed", ["1", "12345"])
def test_ids_are_identical_across_processes_and_hash_seeds(seed):
    import json

    texts = TEXTS + ["cordless impact wrench", "unseen words only"]
    featurizer = NgramFeaturizer.fit(texts[:6], min_count=1, num_buckets=1000)
    ids, offsets = featurizer.encode(texts)
    env = {**os.environ, "PYTHONHASHSEED": seed}
    out = subprocess.run([sys.executable, "-c", _CHILD.format(texts=json.dumps(texts))], env=env,
                         capture_output=True, text=True, check=True).stdout
    child_ngrams, child_ids, child_offsets = json.loads(out.strip().splitlines()[-1])
    assert child_ngrams == featurizer.ngrams
    assert child_ids == ids.tolist() and child_offsets == offsets.tolist()


def test_match_features_equal_a_set_overlap_of_the_readable_ngrams():
    featurizer = NgramFeaturizer.fit(TEXTS, min_count=1, num_buckets=64)
    queries = ["drill bit", "angle bracket", "", "hammer drill", "deck over", "pvc"]
    titles = ["drill bit set", "Simpson Strong-Tie 12-Gauge Angle", "drill", "", "deck over", "3/4 in. x 10 ft. PVC pipe"]
    got = match_features(*featurizer.encode(queries), *featurizer.encode(titles))
    assert got.shape == (len(queries), len(MATCH_FEATURES)) and got.dtype == np.float32

    def split(text):
        grams = text_ngrams(text)
        return grams[1::2], grams[0::2]  # unigrams at odd positions, bigrams at even ones

    def covered(mine, theirs):
        return sum(g in set(theirs) for g in mine) / len(mine) if mine else 0.0

    for row, (query, title) in enumerate(zip(queries, titles)):
        (query_words, query_bigrams), (title_words, title_bigrams) = split(query), split(title)
        want = [covered(query_words, title_words), covered(query_bigrams, title_bigrams),
                covered(title_words, query_words)]
        np.testing.assert_allclose(got[row], want, atol=1e-6, err_msg=f"{query!r} / {title!r}")
    # "drill bit" in "drill bit set": both words; "<s> drill" and "drill bit" of 3 bigrams; 2 of 3 title words
    assert got[0].tolist() == [1.0, pytest.approx(2 / 3), pytest.approx(2 / 3)]
    with pytest.raises(ValueError, match="query bags"):
        match_features(*featurizer.encode(queries[:2]), *featurizer.encode(titles[:3]))


def test_batched_word_hashes_equal_one_hash_per_word():
    from graphrel.data.ngrams import word_hash, word_hashes

    words = ["drill", "café", "日本", "", "x" * 500, "\ud800"]  # a lone surrogate too (surrogatepass)
    hashes = word_hashes(words)
    assert hashes.dtype == np.uint64 and hashes.shape == (len(words),)
    assert hashes.tolist() == [word_hash(w) for w in words]
    assert word_hashes([]).shape == (0,)
