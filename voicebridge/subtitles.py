"""Subtitles from word timings: cues of readable length, written as SubRip (``.srt``) or WebVTT
(``.vtt``), and the words themselves as JSON.

Pure functions, no I/O. The input is a turn's spoken text and its words
(:attr:`~voicebridge.turn.TurnMetrics.text` and ``.words``): a word's ``start``/``end`` are
seconds on the turn's audio timeline, its ``text_start``/``text_end`` index the text, and the
words come in order. Cue text is cut from the spoken text itself, so punctuation the word events
leave out stays in.

A cue holds at most two lines of at most ``max_width`` columns (a CJK character takes two) and
lasts at most ``max_duration`` seconds; a pause in the speech ends it. A cue ends at a sentence
end once it holds half a line or more; when a cue is full it is cut at its last sentence end,
else at its last clause end, else before the word that does not fit. A single word wider than a
line is a cue of its own.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePath

from .turn import Word

__all__ = [
    "Cue",
    "build_cues",
    "format_srt",
    "format_vtt",
    "subtitle_format",
    "words_json",
]

MAX_WIDTH = 42
"""Columns per line: the common broadcast and streaming limit (a CJK character takes two)."""
MAX_DURATION = 7.0
"""Seconds a cue may stay on screen."""
MIN_DURATION = 1.0
"""Seconds a cue is kept on screen at least, unless the next cue or the audio ends sooner."""
PAUSE = 1.5
"""Seconds of silence between two words that end a cue (the text is not shown ahead of time)."""
_SENTENCE_ENDS = frozenset(".!?。！？…")
_CLAUSE_ENDS = frozenset(",;:，、；：—–")
_CLOSERS = frozenset("\"')]}»”’）」』】")
_FORMATS = {".srt": "srt", ".vtt": "vtt"}


@dataclass(frozen=True)
class Cue:
    """One subtitle: ``lines`` (one or two) shown from ``start`` to ``end`` seconds."""

    start: float
    end: float
    lines: tuple[str, ...]


@dataclass(frozen=True)
class _Unit:
    """A word with the text that goes with it on screen (punctuation, the space after it)."""

    text: str
    start: float
    end: float
    stop: int  # 2: ends a sentence, 1: ends a clause, 0: neither


def subtitle_format(path: str) -> str:
    """``"srt"`` or ``"vtt"`` from the file name's extension; ValueError for any other."""
    suffix = PurePath(path).suffix.lower()
    if suffix not in _FORMATS:
        raise ValueError(f"{path!r}: subtitles are .srt or .vtt files")
    return _FORMATS[suffix]


def build_cues(
    text: str,
    words: Sequence[Word],
    *,
    audio_end: float | None = None,
    max_width: int = MAX_WIDTH,
    max_duration: float = MAX_DURATION,
) -> list[Cue]:
    """Cues for ``words`` of ``text``, in order, not overlapping; no cue ends after
    ``audio_end`` (seconds) when it is given."""
    units = _units(text, words)
    groups: list[list[_Unit]] = []
    current: list[_Unit] = []
    for unit in units:
        if current and unit.start - current[-1].end >= PAUSE:
            groups.append(current)
            current = []
        if current and not _fits([*current, unit], max_width, max_duration):
            cut = _best_cut(current, max_width)
            groups.append(current[:cut])
            current = current[cut:]
            if current and not _fits([*current, unit], max_width, max_duration):
                groups.append(current)
                current = []
        current.append(unit)
        if unit.stop == 2 and _width(_join(current)) >= max_width // 2:
            groups.append(current)
            current = []
    if current:
        groups.append(current)
    return _timed(groups, max_width, audio_end)


def format_srt(cues: Sequence[Cue]) -> str:
    """SubRip: numbered cues, ``HH:MM:SS,mmm`` times."""
    blocks = [
        f"{index}\n{_clock(c.start, ',')} --> {_clock(c.end, ',')}\n" + "\n".join(c.lines)
        for index, c in enumerate(cues, 1)
    ]
    return "".join(block + "\n\n" for block in blocks)


def format_vtt(cues: Sequence[Cue]) -> str:
    """WebVTT: a ``WEBVTT`` header, ``HH:MM:SS.mmm`` times."""
    blocks = [
        f"{_clock(c.start, '.')} --> {_clock(c.end, '.')}\n" + "\n".join(c.lines) for c in cues
    ]
    return "WEBVTT\n\n" + "".join(block + "\n\n" for block in blocks)


def words_json(words: Sequence[Word]) -> str:
    """``[{"text", "start", "end"}]``, one word a line, times in seconds (to the millisecond)."""
    items = [
        json.dumps(
            {"text": w.text, "start": round(w.start, 3), "end": round(w.end, 3)}, ensure_ascii=False
        )
        for w in words
    ]
    return "[\n" + ",\n".join(items) + "\n]\n" if items else "[]\n"


# --------------------------------------------------------------------------- internals


def _units(text: str, words: Sequence[Word]) -> list[_Unit]:
    """Each word with its share of ``text``: from where the previous share ended, through the
    characters glued to its end (punctuation) and the spaces after them, up to the next word.
    An opening quote before the next word goes with the next word."""
    units = []
    begin = 0
    for index, word in enumerate(words):
        limit = words[index + 1].text_start if index + 1 < len(words) else len(text)
        limit = max(limit, word.text_end)
        stop = word.text_end
        while stop < limit and not text[stop].isspace():
            stop += 1
        glued = text[word.text_end : stop]
        while stop < limit and text[stop].isspace():
            stop += 1
        if index + 1 == len(words):
            stop = len(text)
        units.append(_Unit(text[begin:stop], word.start, word.end, _stop_kind(glued)))
        begin = stop
    return units


def _stop_kind(glued: str) -> int:
    """2 when the punctuation after a word ends a sentence, 1 a clause, 0 neither."""
    mark = glued.rstrip("".join(_CLOSERS))[-1:]
    return 2 if mark in _SENTENCE_ENDS else 1 if mark in _CLAUSE_ENDS else 0


def _join(units: Sequence[_Unit]) -> str:
    """The units' text on one line: whitespace runs (newlines too) become one space."""
    return " ".join("".join(u.text for u in units).split())


def _width(line: str) -> int:
    """Columns ``line`` takes on screen (wide and full-width characters take two)."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in line)


def _lines(units: Sequence[_Unit], max_width: int) -> tuple[str, ...] | None:
    """One line if it fits, else the best two, else None. The best cut between two lines ends
    a sentence, else a clause, and balances their widths."""
    whole = _join(units)
    if _width(whole) <= max_width or len(units) == 1:
        return (whole,)
    best: tuple[int, tuple[str, str]] | None = None
    for cut in range(1, len(units)):
        first, second = _join(units[:cut]), _join(units[cut:])
        widths = _width(first), _width(second)
        if max(widths) > max_width:
            continue
        score = (2 - units[cut - 1].stop) * 8 + abs(widths[0] - widths[1])
        if best is None or score < best[0]:
            best = score, (first, second)
    return None if best is None else best[1]


def _fits(units: Sequence[_Unit], max_width: int, max_duration: float) -> bool:
    duration = units[-1].end - units[0].start
    return duration <= max_duration and _lines(units, max_width) is not None


def _best_cut(units: Sequence[_Unit], max_width: int) -> int:
    """Where to end a full cue: after its last sentence end, else its last clause end (if what
    comes before is at least half a line), else after all of it."""
    for kind in (2, 1):
        for cut in range(len(units) - 1, 0, -1):
            if units[cut - 1].stop == kind and _width(_join(units[:cut])) >= max_width // 2:
                return cut
    return len(units)


def _timed(groups: list[list[_Unit]], max_width: int, audio_end: float | None) -> list[Cue]:
    cues = []
    for index, group in enumerate(groups):
        start = group[0].start
        limit = groups[index + 1][0].start if index + 1 < len(groups) else audio_end
        end = max(group[-1].end, start + MIN_DURATION)
        if limit is not None:
            end = max(min(end, limit), start)
        lines = _lines(group, max_width) or (_join(group),)
        cues.append(Cue(start, end, lines))
    return cues


def _clock(seconds: float, separator: str) -> str:
    milliseconds = max(0, round(seconds * 1000))
    hours, rest = divmod(milliseconds, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}{separator}{rest % 1000:03d}"
