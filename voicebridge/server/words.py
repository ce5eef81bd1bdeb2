"""Word timestamps of one sentence, in the service's shape (docs/protocol.md, "Word timestamps").

Pure. An engine reports *anchors*: "spoken character ``offset`` starts at audio sample ``sample``"
(espeak-ng at each word and clause end; the tone engine at every character; the others at the
start and end only). Words are cut from the spoken text by one rule for every engine:

- each CJK ideograph and each kana is a word of its own (the service gives one per character);
- otherwise a word is a run of letters, digits and combining marks, with inner apostrophes;
- spaces and punctuation belong to no word.

A word starts at the time its first character has on the line through the anchors around it, and
ends at the time of the offset just after its last character. Words are then mapped back into the
original text; words that a replacement fused into one original span are merged.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from ..text.billing import IDEOGRAPH_CLASS
from .speech_text import SpeechText

__all__ = [
    "Anchor",
    "SentenceAudio",
    "WordReporting",
    "WordTiming",
    "sentence_words",
    "word_entries",
    "word_spans",
]

_KANA = "\u3040-\u30ff\u31f0-\u31ff"
_MARKS = "\u0300-\u036f\u0e31\u0e34-\u0e3a\u0e47-\u0e4e\u0900-\u0903\u093a-\u094f"
_WORD = re.compile(
    f"[{IDEOGRAPH_CLASS}{_KANA}]"
    f"|(?:[^\\W_{IDEOGRAPH_CLASS}{_KANA}]|[{_MARKS}])+"
    f"(?:['’](?:[^\\W_{IDEOGRAPH_CLASS}{_KANA}]|[{_MARKS}])+)*"
)


@dataclass(frozen=True)
class Anchor:
    """Spoken character ``offset`` starts at ``sample`` (of the sentence's engine audio)."""

    offset: int
    sample: int


@dataclass(frozen=True)
class WordReporting:
    """Where word timestamps go. ``time_origin="sentence"``: ``begin_time`` counts from the start
    of the sentence's audio (this server's default, see docs/protocol.md); ``"task"``: from the
    task's first audio. ``in_task_finished``: task-finished repeats every word of the task."""

    time_origin: Literal["sentence", "task"] = "sentence"
    in_task_finished: bool = False


@dataclass(frozen=True)
class SentenceAudio:
    """What the engine made of a sentence: ``samples`` at ``sample_rate``, word anchors."""

    samples: int
    sample_rate: int
    anchors: tuple[Anchor, ...] = ()


@dataclass(frozen=True)
class WordTiming:
    """One word: ``[begin_index, end_index)`` in the original sentence, times in samples."""

    begin_index: int
    end_index: int
    begin_sample: int
    end_sample: int


def word_spans(text: str) -> list[tuple[int, int]]:
    """The ``[start, end)`` spans of the words of ``text`` (the rule above)."""
    return [match.span() for match in _WORD.finditer(text)]


def _timeline(anchors: Iterable[Anchor], length: int, samples: int) -> tuple[list[int], list[int]]:
    """Anchor offsets and samples, from (0, 0) to (length, samples), both never decreasing."""
    offsets, times = [0], [0]
    for anchor in sorted(anchors, key=lambda a: a.offset):
        if offsets[-1] < anchor.offset < length and times[-1] <= anchor.sample <= samples:
            offsets.append(anchor.offset)
            times.append(anchor.sample)
    offsets.append(length)
    times.append(samples)
    return offsets, times


def _at(offsets: list[int], times: list[int], offset: int) -> int:
    i = min(bisect.bisect_right(offsets, offset), len(offsets) - 1)
    left, right = offsets[i - 1], offsets[i]
    if right == left:
        return times[i]
    return times[i - 1] + (times[i] - times[i - 1]) * (offset - left) // (right - left)


def sentence_words(speech: SpeechText, anchors: Iterable[Anchor], samples: int) -> list[WordTiming]:
    """The words of a sentence whose spoken text lasted ``samples``, in order, never
    overlapping, times rising."""
    offsets, times = _timeline(anchors, len(speech.text), samples)
    words: list[WordTiming] = []
    for start, end in word_spans(speech.text):
        begin_index, end_index = speech.original_span(start, end)
        begin, finish = _at(offsets, times, start), _at(offsets, times, end)
        if words and begin_index < words[-1].end_index:  # one original span: merge
            last = words.pop()
            words.append(WordTiming(last.begin_index, max(end_index, last.end_index),
                                    last.begin_sample, max(finish, last.end_sample)))  # fmt: skip
        elif begin_index < end_index:
            words.append(WordTiming(begin_index, end_index, begin, finish))
    return words


def word_entries(
    original: str, words: Iterable[WordTiming], sample_rate: int, origin_ms: int = 0
) -> list[dict[str, Any]]:
    """The ``words`` list of a sentence-end event: text, indexes, and times in milliseconds
    from ``origin_ms`` (0: from the start of the sentence's audio)."""
    return [
        {
            "text": original[w.begin_index : w.end_index],
            "begin_index": w.begin_index,
            "end_index": w.end_index,
            "begin_time": origin_ms + w.begin_sample * 1000 // sample_rate,
            "end_time": origin_ms + w.end_sample * 1000 // sample_rate,
        }
        for w in words
    ]
