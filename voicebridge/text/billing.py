"""CosyVoice character counting: every CJK ideograph counts 2, everything else 1.

The service limits (docs/protocol.md) are in these billed characters: 2,000 per continue-task in the
SDK pages, 200,000 per task.
"""

from __future__ import annotations

import re

__all__ = [
    "MAX_MESSAGE_CHARACTERS",
    "MAX_TASK_CHARACTERS",
    "count_characters",
    "is_cjk_ideograph",
    "prefix_within",
]

MAX_MESSAGE_CHARACTERS = 2_000
MAX_TASK_CHARACTERS = 200_000

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
IDEOGRAPH_CLASS = "".join(f"{chr(low)}-{chr(high)}" for low, high in _IDEOGRAPH_RANGES)
"""The ideograph ranges as the inside of a regular-expression character class."""

_IDEOGRAPH = re.compile(f"[{IDEOGRAPH_CLASS}]")


def is_cjk_ideograph(char: str) -> bool:
    """True for one CJK ideograph (the characters billed as 2)."""
    code = ord(char)
    return any(low <= code <= high for low, high in _IDEOGRAPH_RANGES)


def count_characters(text: str) -> int:
    """The billed length of ``text``: ``"中A文123"`` counts 8, ``"中 文。"`` counts 6."""
    if text.isascii():
        return len(text)
    return len(text) + len(_IDEOGRAPH.findall(text))


def prefix_within(text: str, limit: int) -> int:
    """The length of the longest prefix of ``text`` whose billed count is at most ``limit``."""
    if len(text) <= limit // 2 or count_characters(text) <= limit:
        return len(text)
    # Each character costs 1 or 2, so the answer lies in [limit // 2, limit]; walk from there.
    end = limit // 2
    billed = count_characters(text[:end])
    while end < len(text):
        cost = 2 if _IDEOGRAPH.match(text, end) else 1
        if billed + cost > limit:
            break
        billed += cost
        end += 1
    return end
