"""What the engine speaks for a sentence, and where each spoken character came from.

The service reports ``original_text`` (what the client sent) and word indexes into it, while the
engine may speak something else: ``hot_fix.replace`` substitutions and ``enable_markdown_filter``
change the text before synthesis (docs/protocol.md, "Client messages"). :class:`SpeechText` keeps
the spoken text with two offset maps back into the original, so word indexes always point into
``original_text``. Pure functions.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["SpeechText", "filter_markdown", "prepare_speech", "replace_words"]


@dataclass(frozen=True)
class SpeechText:
    """``text`` is spoken; ``starts[i]`` is the original offset where spoken character ``i``
    comes from, ``ends[i]`` the original offset where the spoken prefix ``text[:i]`` ends. A
    replaced span maps each of its spoken characters to the whole original span."""

    text: str
    starts: tuple[int, ...]
    ends: tuple[int, ...]

    @classmethod
    def unchanged(cls, text: str) -> SpeechText:
        offsets = tuple(range(len(text) + 1))
        return cls(text, offsets, offsets)

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """The original ``[begin, end)`` of the spoken ``text[start:end]`` (start < end)."""
        return self.starts[start], self.ends[end]

    def then(self, later: SpeechText) -> SpeechText:
        """The composition: ``later`` transforms this text further."""
        return SpeechText(
            later.text,
            tuple(self.starts[i] for i in later.starts),
            tuple(self.ends[i] for i in later.ends),
        )


def _from_pieces(original: str, pieces: Sequence[tuple[int, int, str]]) -> SpeechText:
    """Build a SpeechText from ``(begin, end, spoken)`` pieces covering the parts of
    ``original`` that are kept or replaced, in order; what no piece covers is deleted."""
    text: list[str] = []
    starts: list[int] = []
    ends: list[int] = [0]
    for begin, end, spoken in pieces:
        if spoken == original[begin:end]:
            starts += range(begin, end)
            ends += range(begin + 1, end + 1)
        else:
            starts += [begin] * len(spoken)
            ends += [end] * len(spoken)
        text.append(spoken)
    starts.append(len(original))
    return SpeechText("".join(text), tuple(starts), tuple(ends))


def replace_words(text: str, replacements: Sequence[tuple[str, str]]) -> SpeechText:
    """``hot_fix.replace``: one scan from the left; at each position the longest matching key
    is replaced (replacements are not applied to text that a replacement produced)."""
    keys = sorted((k for k, _ in replacements if k), key=len, reverse=True)
    if not keys:
        return SpeechText.unchanged(text)
    table = dict(replacements)
    pattern = re.compile("|".join(re.escape(k) for k in keys))
    pieces: list[tuple[int, int, str]] = []
    position = 0
    for match in pattern.finditer(text):
        pieces.append((position, match.start(), text[position : match.start()]))
        pieces.append((match.start(), match.end(), table[match.group()]))
        position = match.end()
    pieces.append((position, len(text), text[position:]))
    return _from_pieces(text, [p for p in pieces if p[0] < p[1]])


# Markdown marks the filter drops: heading, quote and list markers at a line start, emphasis
# runs, backticks, and the bracket/URL parts of links and images (their text is kept).
_MARKDOWN = re.compile(
    r"(?m)^[ \t]*(?:#{1,6}[ \t]+|>[ \t]?|[-*+][ \t]+|\d{1,9}[.)][ \t]+)"
    r"|!?\[(?=[^\]\n]*\]\([^)\n]*\))|\]\([^)\n]*\)"
    r"|\*{1,3}|~~|`+|(?<![^\W_])_{1,3}|_{1,3}(?![^\W_])"
)


def filter_markdown(text: str) -> SpeechText:
    """``enable_markdown_filter``: Markdown marks removed, the words kept. An approximation of
    the service's filter (its rules are not published); it never removes a word character."""
    pieces: list[tuple[int, int, str]] = []
    position = 0
    for match in _MARKDOWN.finditer(text):
        pieces.append((position, match.start(), text[position : match.start()]))
        position = match.end()
    pieces.append((position, len(text), text[position:]))
    return _from_pieces(text, [p for p in pieces if p[0] < p[1]])


def prepare_speech(
    original: str, replacements: Sequence[tuple[str, str]], markdown_filter: bool
) -> SpeechText:
    """The Markdown filter (when asked), then the replacements."""
    speech = filter_markdown(original) if markdown_filter else SpeechText.unchanged(original)
    if replacements:
        speech = speech.then(replace_words(speech.text, replacements))
    return speech
