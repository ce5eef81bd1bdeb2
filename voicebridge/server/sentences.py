"""Where the service cuts received text into sentences (docs/protocol.md, "Server events").

Pure functions. A sentence ends at 。！？!?；; or a line break, at the Arabic, Urdu, Devanagari,
Myanmar and Khmer full stops (؟ ۔ । ॥ ။ ។ ៕; an inference: the client's fragmenter ends
sentences there too), or at a '.' followed by white space;
closing quotes and brackets stay with their sentence. The local server also cuts a sentence that
has no end once it grows past ``max_length`` billed characters (a client that never punctuates
must not hold the engine for minutes, and its listener must hear something): at the last clause
mark in the second half of the window, else at the last space, else (scripts without spaces)
at the window's end.
"""

from __future__ import annotations

import unicodedata

from ..text.billing import count_characters

__all__ = ["cut_long", "split_sentences"]

_SENTENCE_ENDS = frozenset("。！？!?；;\n؟۔।॥။។៕")
_CLOSERS = frozenset("\"'”’」』）)]")
_CLAUSE_MARKS = frozenset("，,、：:—…")


def split_sentences(text: str, max_length: int | None = None) -> tuple[list[str], str]:
    """Cut ``text`` into the complete sentences the service would synthesize now, and the tail it
    would hold back. A '.' ends a sentence only before white space (so 3.14 and e.g. stay whole).
    With ``max_length`` (billed characters), longer sentences and tails are cut into pieces of
    at most that size (not counting white space at a piece's end); the tail left over is not
    longer than ``max_length``."""
    sentences: list[str] = []
    start = 0
    i = 0
    n = len(text)
    while i < n:
        char = text[i]
        end = char in _SENTENCE_ENDS or (char == "." and i + 1 < n and text[i + 1].isspace())
        if end:
            j = i + 1
            while j < n and (text[j] in _CLOSERS or text[j] in _SENTENCE_ENDS):
                j += 1
            while j < n and text[j].isspace() and text[j] != "\n":
                j += 1
            if text[start:j].strip():
                sentences.append(text[start:j])
                start = j
            i = j
            continue
        i += 1
    tail = text[start:]
    if max_length is None:
        return sentences, tail
    pieces: list[str] = []
    for sentence in sentences:
        cut, rest = cut_long(sentence, max_length)
        if rest.strip() or not cut:
            pieces += [*cut, rest]
        else:  # only white space left: it stays with the piece before it
            pieces += [*cut[:-1], cut[-1] + rest]
    cut, tail = cut_long(tail, max_length)
    return pieces + cut, tail


def cut_long(text: str, max_length: int) -> tuple[list[str], str]:
    """Pieces of at most ``max_length`` billed characters cut from the front of ``text`` while
    it is longer than that, and the rest (which is not longer)."""
    pieces: list[str] = []
    while count_characters(text) > max_length:
        cut = _cut_point(text, max_length)
        pieces.append(text[:cut])
        text = text[cut:]
    return pieces, text


def _cut_point(text: str, max_length: int) -> int:
    """Where to cut ``text``: an index in 1..len(text)-1, the piece before it within the limit."""
    window = _window(text, max_length)
    for i in range(window - 1, window // 2 - 1, -1):  # a clause mark in the second half
        if text[i] in _CLAUSE_MARKS:
            return i + 1
    for i in range(window - 1, 0, -1):  # the last space: the space stays with the first piece
        if text[i].isspace() and text[:i].strip():
            return i + 1
    cut = max(1, window)
    while cut > 1 and unicodedata.combining(text[cut]):  # never split a base from its marks
        cut -= 1
    return cut


def _window(text: str, max_length: int) -> int:
    """The longest prefix length whose billed size is within ``max_length``."""
    size = 0
    for i, char in enumerate(text):
        size += count_characters(char)
        if size > max_length:
            return i
    return len(text)
