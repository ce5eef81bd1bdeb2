"""CosyVoice billed character count and the longest prefix within a limit."""

from __future__ import annotations

import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from voicebridge.text.billing import count_characters, is_cjk_ideograph, prefix_within


def test_count_characters_cjk_counts_two() -> None:
    assert count_characters("中A文123") == 8
    assert count_characters("中 文。") == 6
    assert count_characters("かなカナ한국") == 6  # kana and hangul count 1
    assert count_characters("𠀀") == 2  # extension B ideograph
    assert count_characters("") == 0


def test_count_characters_agrees_with_is_cjk_ideograph() -> None:
    ideographs = [chr(c) for c in range(0x3000, 0xFB00)] + [chr(c) for c in range(0x20000, 0x20100)]
    for char in ideographs:
        assert count_characters(char) == (2 if is_cjk_ideograph(char) else 1)
    assert is_cjk_ideograph("中") and not is_cjk_ideograph("か")
    assert unicodedata.name("中").startswith("CJK UNIFIED IDEOGRAPH")


@given(st.text(alphabet=st.sampled_from("ab 中文。かx"), max_size=60), st.integers(2, 50))
def test_prefix_within_is_the_longest_prefix_that_fits(text: str, limit: int) -> None:
    end = prefix_within(text, limit)
    assert count_characters(text[:end]) <= limit
    assert end == len(text) or count_characters(text[: end + 1]) > limit
