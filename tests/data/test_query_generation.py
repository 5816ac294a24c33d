import pytest

from graphrel.data.query_generation import EDGE_WORDS, generate_queries, title_words

PRODUCT_TITLES = ["DeWalt 20V cordless drill bit set", "50 ft. green garden hose", "2 in. angled paint brush",
                  "steel door hinge 3-pack", "Philips 60-Watt LED light bulb", "garden hose reel cart",
                  "cordless drill driver kit", "exterior paint roller cover", "brass door knob",
                  "LED flood light outdoor", "hose nozzle spray", "interior wood door"]
TITLES = PRODUCT_TITLES + ["Steves &amp; Sons 48 in. x 80 in. Primed White Fiberglass Patio Door",
                                    "DeWalt 20V cordless drill bit set"]  # a repeated title


def test_generation_is_deterministic_given_the_seed():
    first = generate_queries(TITLES, per_product=3, min_words=1, max_words=3, seed=7)
    assert first == generate_queries(TITLES, per_product=3, min_words=1, max_words=3, seed=7)
    assert first != generate_queries(TITLES, per_product=3, min_words=1, max_words=3, seed=8)


@pytest.mark.parametrize("low, high", [(1, 1), (2, 3), (3, 5)])
def test_queries_respect_the_word_bounds_and_come_from_titles(low, high):
    queries = generate_queries(TITLES, per_product=4, min_words=low, max_words=high, seed=0)
    assert queries
    titles = [" ".join(title_words(t)) for t in TITLES]
    for query in queries:
        words = query.split()
        assert low <= len(words) <= high
        assert words[0] not in EDGE_WORDS and words[-1] not in EDGE_WORDS
        assert any(f" {query} " in f" {title} " for title in titles)  # a span of a title's words


def test_queries_are_distinct_and_at_most_per_product_each():
    queries = generate_queries(TITLES, per_product=2, min_words=1, max_words=2, seed=0)
    assert len(queries) == len(set(queries)) and len(queries) <= 2 * len(TITLES)
    assert "&amp;" not in " ".join(generate_queries(TITLES, per_product=20, min_words=1, max_words=4, seed=0))


def test_prefixes_only_when_prefix_share_is_one():
    queries = generate_queries(TITLES, per_product=1, min_words=2, max_words=2, prefix_share=1.0, seed=0)
    assert set(queries) <= {" ".join(title_words(t)[:2]) for t in TITLES}
    assert "dewalt 20v" in queries and queries.count("dewalt 20v") == 1


def test_title_words_unescape_lowercase_and_strip_punctuation():
    assert title_words("Steves &amp; Sons (Primed), 1/2 in.") == ["steves", "&", "sons", "primed", "1/2", "in."]


@pytest.mark.parametrize("options", [dict(per_product=0), dict(min_words=0), dict(min_words=3, max_words=2),
                                     dict(prefix_share=1.5), dict(attempts=0), dict(per_product=1.5)])
def test_options_are_validated(options):
    with pytest.raises(ValueError):
        generate_queries(TITLES, **options)


def test_one_string_is_not_a_list_of_titles():
    with pytest.raises(ValueError, match="sequence of titles"):
        generate_queries("one title")
