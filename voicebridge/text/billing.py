"""CosyVoice character counting: every CJK ideograph counts 2, everything else 1."""

from __future__ import annotations

__all__ = ["count_characters", "is_cjk_ideograph"]

# CJK ideograph blocks (hanzi, kanji, hanja): URO, extension A, compatibility, and the
# supplementary-plane extensions B-I plus compatibility supplement. Kana and hangul are not here.
_IDEOGRAPH_RANGES = (
    (0x3400, 0x4DBF),
    (0x4E00, 0x9FFF),
    (0xF900, 0xFAFF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2EE5F),
    (0x2F800, 0x2FA1F),
    (0x30000, 0x323AF),
)


def is_cjk_ideograph(char: str) -> bool:
    """True for one CJK ideograph (the characters billed as 2)."""
    code = ord(char)
    return any(low <= code <= high for low, high in _IDEOGRAPH_RANGES)


def count_characters(text: str) -> int:
    """The billed length of ``text``: ``"中A文123"`` counts 8, ``"中 文。"`` counts 6."""
    return sum(2 if is_cjk_ideograph(char) else 1 for char in text)
