"""Text keys: the identity of a text for de-duplication."""

import pandas as pd

from graphrel.data.text_keys import pair_keys, text_keys


def test_keys_ignore_unicode_forms_case_and_white_space():
    keys = text_keys(pd.Series(["Cordless  Drill", "cordless drill ", "ＣＯＲＤＬＥＳＳ\u00a0DRILL", "Straße", "STRASSE"]))
    assert keys.tolist()[:3] == ["cordless drill"] * 3
    assert keys[3] == keys[4] == "strasse"  # case folding, not lower()


def test_pair_keys_join_unambiguously():
    # "a b" + "c" and "a" + "b c" are different pairs
    left, right = pair_keys(["a b", "a"], ["c", "b c"])
    assert left != right
    assert pair_keys(["Drill"], ["Bit  Set"])[0] == pair_keys(["drill "], ["bit set"])[0]
