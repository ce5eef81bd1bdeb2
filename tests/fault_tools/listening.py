"""What a listener heard, counted exactly: sinks that keep the audio, and the word count.

The local server's ``text`` engine makes audio that encodes the text it was given
(:func:`voicebridge.server.text_engine.decode_text_audio`), so the audio a sink received decodes
to exactly the text a listener heard: every replayed byte that was not trimmed shows up as a
repeated character, every trimmed byte too many as a lost one.
"""

from __future__ import annotations

import difflib
import threading
import time
from dataclasses import dataclass

from voicebridge.audio import CallbackSink, PcmFormat
from voicebridge.server.text_engine import TextEngine, decode_text_audio, encode_character

__all__ = ["FakeSpeaker", "Heard", "Recorder", "heard_words", "text_audio"]


def text_audio(text: str, sample_rate: int) -> bytes:
    """The audio the default ``text`` engine makes for ``text`` (each character's block stands
    alone, so sentence cuts do not change it): comparing bytes is an exact check in
    milliseconds, where decoding megabytes takes seconds."""
    frames = TextEngine().frames_per_character(sample_rate)
    return b"".join(
        encode_character(c, True) + encode_character(c, False) * (frames - 1) for c in text
    )


class Recorder(CallbackSink):
    """A sink that keeps every byte it is given (a file, a network stream)."""

    def __init__(self) -> None:
        self.audio = bytearray()
        super().__init__(self.audio.extend)

    @property
    def text(self) -> str:
        return decode_text_audio(bytes(self.audio)).text


class FakeSpeaker(CallbackSink):
    """A fake speaker (no device here plays 10 minutes in a few seconds): ``write`` blocks while
    it "plays" the chunk at ``speed`` times real time, in slices of ``slice_seconds`` of audio,
    and keeps only what was played; ``abort`` stops at once and drops the rest, as a device
    does. ``played`` holds the audio a listener heard."""

    def __init__(self, speed: float, slice_seconds: float = 0.1) -> None:
        super().__init__(self._play)
        self.speed = speed
        self.slice_seconds = slice_seconds
        self.played = bytearray()
        self._fmt = PcmFormat(22050)
        self._aborted = threading.Event()

    def start(self, fmt: PcmFormat) -> None:
        self._fmt = fmt

    def _play(self, chunk: bytes) -> None:
        self._aborted.clear()
        step = max(2, int(self._fmt.bytes_per_second * self.slice_seconds) // 2 * 2)
        started = time.monotonic()
        for offset in range(0, len(chunk), step):
            piece = chunk[offset : offset + step]
            due = started + self._fmt.seconds(offset + len(piece)) / self.speed
            if self._aborted.wait(max(0.0, due - time.monotonic())):
                return
            self.played += piece

    def abort(self) -> None:
        self._aborted.set()

    @property
    def text(self) -> str:
        return decode_text_audio(bytes(self.played)).text


@dataclass(frozen=True)
class Heard:
    """Words of the expected text a listener did not hear whole (``lost``), and words heard that
    were not owed at that place (``repeated``: heard again after a replay); ``exact`` when the
    heard text is the expected one, character for character."""

    lost: int
    repeated: int
    exact: bool


def heard_words(expected: str, heard: str) -> Heard:
    """Align ``heard`` with ``expected`` character by character, then count words: a word of
    ``expected`` with a character missing is lost (a word cut off counts as lost), a word of
    ``heard`` with a character that has no place in ``expected`` is repeated."""
    missing = [False] * len(expected)
    extra = [False] * len(heard)
    head = _common_prefix(expected, heard)  # the aligner is quadratic: trim the equal ends
    tail = _common_prefix(expected[head:][::-1], heard[head:][::-1])
    a, b = expected[head : len(expected) - tail], heard[head : len(heard) - tail]
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if tag in ("delete", "replace"):
            missing[head + i1 : head + i2] = [True] * (i2 - i1)
        if tag in ("insert", "replace"):
            extra[head + j1 : head + j2] = [True] * (j2 - j1)
    return Heard(_words_marked(expected, missing), _words_marked(heard, extra), expected == heard)


def _common_prefix(a: str, b: str) -> int:
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    low, high = 0, n  # a[:low] == b[:low], a[:high] != b[:high]
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if a[:middle] == b[:middle] else (low, middle)
    return low


def _words_marked(text: str, marks: list[bool]) -> int:
    """How many white-space separated words of ``text`` have a marked character."""
    count, marked, in_word = 0, False, False
    for char, mark in zip(text, marks, strict=True):
        if char.isspace():
            count += marked
            marked = in_word = False
            continue
        in_word = True
        marked = marked or mark
    return count + (marked and in_word)
