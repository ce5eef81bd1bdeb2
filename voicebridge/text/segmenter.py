"""Where text may be cut: word breaks in scripts written without spaces, and grapheme clusters.

Which scripts count as what, for the fragmenter:

- **Spaced scripts** (Latin, Cyrillic, Greek, Arabic, Hebrew, Devanagari and the other Indic
  scripts, Hangul, Ethiopic, Armenian, Georgian, ... : every script not named below): a word ends at
  whitespace. Tibetan, Javanese, Balinese and Tai Tham are treated as spaced too (no segmenter for
  them here), so a run of them is cut only by length.
- **CJK** (ideographs and kana): a cut point between any two characters.
- **Spaceless scripts**: Thai, Lao, Khmer and Myanmar (``SPACELESS_CLASS``): cut points come
  from a :class:`Segmenter`.

Segmenters:

- :class:`IcuSegmenter`: ICU's line breaker, whose dictionaries cover Thai, Lao, Khmer and Burmese,
  through ``icu4py`` (MIT, ICU bundled in manylinux wheels for x86_64 and aarch64, Python >= 3.11,
  16 MB download, about 15 ms to import). It is imported only when spaceless text first needs a cut.
- :class:`SyllableSegmenter`: the fallback without ``icu4py``: cuts before a Thai or Lao
  preposed vowel, after a syllable-final mark (Thai/Lao ``ะ ำ ์ ๆ ฯ``, Khmer bantoc, reahmuk and
  toandakhiat, Myanmar asat and visarga not followed by a mark), before a Myanmar consonant
  that starts a syllable (not stacked, not killed by asat), before a Khmer consonant that carries
  a vowel sign or a subscript, and at script changes. Cuts are syllable breaks, not always word
  breaks.

:func:`cluster_boundary` approximates the extended grapheme cluster rules (UAX #29) for a cut made
by length: never before a combining mark, after a virama that stacks the next consonant (Indic
scripts, Khmer coeng, Myanmar U+1039), inside a Hangul syllable or after a Thai or Lao preposed
vowel.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterator
from typing import Protocol

__all__ = [
    "SPACELESS_CLASS",
    "IcuSegmenter",
    "Segmenter",
    "SyllableSegmenter",
    "cluster_boundary",
    "default_segmenter",
]

SPACELESS_CLASS = (
    "\u0e00-\u0e7f"  # Thai
    "\u0e80-\u0eff"  # Lao
    "\u1000-\u109f\ua9e0-\ua9ff\uaa60-\uaa7f"  # Myanmar and its extensions
    "\u1780-\u17ff\u19e0-\u19ff"  # Khmer and Khmer symbols
)
"""Thai, Lao, Myanmar and Khmer, as the inside of a regular-expression character class."""

_SPACELESS_RUN = re.compile(f"[{SPACELESS_CLASS}]+")
_PREPOSED = frozenset("\u0e40\u0e41\u0e42\u0e43\u0e44\u0ec0\u0ec1\u0ec2\u0ec3\u0ec4")
_SYLLABLE_FINAL = frozenset(
    "\u0e30\u0e33\u0e4c\u0e46\u0e2f\u0e5a\u0e5b"  # Thai: sara a, sara am, thanthakhat, mai yamok...
    "\u0eb0\u0eb3\u0ecc\u0ec6\u0eaf"  # Lao
    "\u17cb\u17c7\u17cd\u17d4\u17d5\u17d6\u17d7"  # Khmer: bantoc, reahmuk, toandakhiat, khan...
    "\u103a\u1038\u1037\u104a\u104b"  # Myanmar: asat, visarga, dot below, section marks
)
_MYANMAR_CONSONANT = re.compile("[\u1000-\u1021\u103f]")
_MYANMAR_ATTACHED = frozenset("\u103a\u1039")  # asat and virama: the consonant closes a syllable
_KHMER_INITIAL = re.compile("[\u1780-\u17b3]")  # consonants and independent vowels
_KHMER_VOWEL = re.compile("[\u17b6-\u17c5]")
_KHMER_COENG = "\u17d2"
_SPACING_MARKS = frozenset("\u0e33\u0eb3")  # sara am: a letter category, a grapheme extender
_VIRAMA = 9  # canonical combining class of viramas (Indic conjuncts, Khmer coeng, Myanmar)
# Combining class 9, but killers that end a syllable rather than stack the next consonant:
# Myanmar asat, Tamil pulli, Thai phinthu.
_KILLERS = frozenset("\u103a\u0bcd\u0e3a")
_HANGUL_L = re.compile("[\u1100-\u115f\ua960-\ua97c]")
_HANGUL_V = re.compile("[\u1160-\u11a7\ud7b0-\ud7c6]")
_HANGUL_T = re.compile("[\u11a8-\u11ff\ud7cb-\ud7fb]")


class Segmenter(Protocol):
    """Word cut points for a run of spaceless-script text (no lone surrogates in it)."""

    def breaks(self, text: str) -> list[int]:
        """Ascending offsets ``0 < i < len(text)`` where ``text`` may be cut between words."""
        ...

    def count_words(self, text: str) -> int:
        """How many words ``text`` holds (its pieces between breaks that contain a letter)."""
        ...


def _pieces(text: str, breaks: list[int]) -> Iterator[str]:
    start = 0
    for end in [*breaks, len(text)]:
        yield text[start:end]
        start = end


class IcuSegmenter:
    """ICU's dictionary-based line breaker (``icu4py``); raises ImportError when it is absent."""

    def __init__(self) -> None:
        from icu4py.breakers import LineBreaker

        self._breaker = LineBreaker

    def breaks(self, text: str) -> list[int]:
        offsets: list[int] = []
        end = 0
        for piece in self._breaker(text, "") if text else ():
            end += len(piece)  # Python offsets, whatever ICU's UTF-16 offsets are
            offsets.append(end)
        return offsets[:-1]

    def count_words(self, text: str) -> int:
        return sum(1 for piece in _pieces(text, self.breaks(text)) if _has_letter(piece))


class SyllableSegmenter:
    """The fallback: syllable breaks from marks that end or start a syllable (module docstring)."""

    def breaks(self, text: str) -> list[int]:
        return [i for i in range(1, len(text)) if _syllable_break(text, i)]

    def count_words(self, text: str) -> int:
        return sum(1 for piece in _pieces(text, self.breaks(text)) if _has_letter(piece))


def _has_letter(text: str) -> bool:
    return any(char.isalpha() for char in text)


def _syllable_break(text: str, i: int) -> bool:
    before, after = text[i - 1], text[i]
    spaceless_before = _SPACELESS_RUN.match(before) is not None
    if spaceless_before != (_SPACELESS_RUN.match(after) is not None):
        return cluster_boundary(text, i)  # a script change (or a space)
    if not spaceless_before or not cluster_boundary(text, i):
        return False
    if after in _PREPOSED or before in _SYLLABLE_FINAL:
        return True
    following = text[i + 1] if i + 1 < len(text) else ""
    if _MYANMAR_CONSONANT.match(after) and before != "\u1039":
        return following not in _MYANMAR_ATTACHED
    if _KHMER_INITIAL.match(after) and before != _KHMER_COENG:
        return _KHMER_VOWEL.match(following) is not None or following == _KHMER_COENG
    return False


def cluster_boundary(text: str, i: int) -> bool:
    """False when cutting ``text`` at ``i`` would split a grapheme cluster (approximately)."""
    if i <= 0 or i >= len(text):
        return True
    before, after = text[i - 1], text[i]
    if unicodedata.category(after)[0] == "M" or after in _SPACING_MARKS or after == "\u200d":
        return False
    if before in _PREPOSED or before == "\u200d":
        return False
    if unicodedata.combining(before) == _VIRAMA and before not in _KILLERS and after.isalpha():
        return False
    return not _hangul_joins(before, after)


def _hangul_joins(before: str, after: str) -> bool:
    if not ("\u1100" <= after <= "\u11ff" or "\ua960" <= after <= "\ud7ff"):
        return False
    syllable = "\uac00" <= before <= "\ud7a3"
    lv = syllable and (ord(before) - 0xAC00) % 28 == 0
    if _HANGUL_L.match(before):
        syllable_after = "\uac00" <= after <= "\ud7a3"
        return bool(_HANGUL_L.match(after) or _HANGUL_V.match(after)) or syllable_after
    if _HANGUL_V.match(before) or lv:
        return bool(_HANGUL_V.match(after) or _HANGUL_T.match(after))
    if _HANGUL_T.match(before) or syllable:
        return bool(_HANGUL_T.match(after))
    return False


@functools.cache
def default_segmenter() -> Segmenter:
    """:class:`IcuSegmenter` when ``icu4py`` is installed, else :class:`SyllableSegmenter`."""
    try:
        return IcuSegmenter()
    except ImportError:
        return SyllableSegmenter()
