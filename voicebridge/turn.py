"""One turn of speech: the record the bridge makes, the session fills in, and the caller reads.

A :class:`Turn` is made by :class:`~voicebridge.bridge.VoiceBridge` for each ``speak`` and passed
down: it holds the turn's one cancellation flag and its one progress record. Fields are written
under the session's lock (audio figures by the receive thread, the rest by whichever thread drives
the session); any thread may read them. What the caller gets back is the frozen
:class:`TurnMetrics`; :class:`TurnProgress` is a snapshot taken while the turn runs.

Times: ``*_at`` fields are ``time.monotonic()`` seconds. Word and chunk times are seconds on the
turn's own audio timeline: 0 is the first sample of the turn's audio, and the timeline is the audio
handed to the sinks (rollovers, reconnects and trimmed replays leave no gap and no overlap in it).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import threading
from dataclasses import dataclass

from .errors import VoiceBridgeError
from .text.billing import count_characters, is_cjk_ideograph

__all__ = ["AudioChunk", "OpenSentence", "Turn", "TurnMetrics", "TurnProgress", "Word"]


@dataclass(frozen=True)
class Word:
    """One spoken word. ``start``/``end``: seconds on the turn's audio timeline;
    ``text_start``/``text_end``: where it stands in :attr:`TurnMetrics.text`."""

    text: str
    start: float
    end: float
    text_start: int
    text_end: int


@dataclass(frozen=True)
class AudioChunk:
    """16-bit mono PCM of a turn; ``start`` is where it begins on the turn's audio timeline."""

    data: bytes
    start: float


@dataclass(frozen=True)
class Sentence:
    """A sentence the service spoke: its span on the timeline and in the turn's text."""

    start: float
    end: float
    text_start: int
    text_end: int


@dataclass(frozen=True)
class OpenSentence:
    """The sentence being spoken (sentence-begin came, sentence-end not yet): where it starts on
    the timeline and in the turn's text, its text, and the pace expected (seconds per billed
    character) to estimate how much of it was heard."""

    start: float
    text_start: int
    text: str
    seconds_per_character: float


@dataclass(frozen=True)
class TurnProgress:
    """A snapshot of a running turn (characters are Python characters, not billed ones)."""

    characters_read: int  # text read from the source
    characters_sent: int  # text sent to the service
    characters_spoken: int  # text the service acknowledged (sentence-end)
    audio_seconds: float  # audio received
    elapsed: float  # seconds since the turn started


@dataclass(frozen=True)
class TurnMetrics:
    """One finished turn, measured. Durations in seconds (None when the event did not happen)."""

    turn: int
    text: str  # the speakable text the service spoke (acknowledged), in order
    heard_text: str  # the part of ``text`` a listener heard: all of it unless interrupted
    words: tuple[Word, ...]  # word timings, when the service sends them
    time_to_first_fragment: float | None  # first text read -> first fragment ready
    first_package_delay: float | None  # first fragment ready -> first audio byte (incl. connect)
    time_to_first_audio: float | None  # first text read -> first audio handed to the sinks
    audio_seconds: float
    real_time_factor: float | None  # synthesis wall time / audio seconds
    billed_characters: int
    underruns: int
    task_ids: tuple[str, ...]
    rollovers: int
    reconnects: int
    replayed_characters: int
    interrupted: bool


class Turn:
    """The live record of one turn (see the module docstring for who writes what)."""

    def __init__(self, number: int, started_at: float) -> None:
        self.number = number
        self.started_at = started_at
        self.cancelled = False  # the one cancellation flag: interrupt() sets it, once
        self.done = threading.Event()
        self.error: VoiceBridgeError | None = None
        self.first_text_at: float | None = None
        self.first_fragment_at: float | None = None
        self.first_audio_at: float | None = None
        self.last_audio_at: float | None = None
        self.characters_read = 0
        self.characters_sent = 0
        self.audio_bytes = 0
        self.billed_characters = 0
        self.task_ids: list[str] = []
        self.rollovers = 0
        self.reconnects = 0
        self.replayed_characters = 0
        self.spoken: list[str] = []  # acknowledged text, piece by piece
        self.characters_spoken = 0
        self.words: list[Word] = []
        self.sentences: list[Sentence] = []
        self.open_sentence: OpenSentence | None = None
        self.heard_seconds: float | None = None  # audio played when interrupted
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._waiters_lock = threading.Lock()

    def __repr__(self) -> str:
        state = "done" if self.done.is_set() else "running"
        return f"Turn({self.number}, {state}, {self.characters_spoken} characters spoken)"

    @property
    def text(self) -> str:
        return "".join(self.spoken)

    def finish(self, error: VoiceBridgeError | None = None) -> None:
        """End the turn (once): ``error`` None means every character was acknowledged (or the
        turn was cancelled). Wakes :meth:`wait` on any event loop."""
        with self._waiters_lock:
            if self.done.is_set():
                return
            self.error = error
            self.done.set()
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits
                loop.call_soon_threadsafe(_resolve, future)

    async def wait(self) -> None:
        """Until :meth:`finish`, without blocking the event loop or holding a thread."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._waiters_lock:
            if self.done.is_set():
                return
            self._waiters.append((loop, future))
        await future

    def progress(self, now: float, bytes_per_second: int) -> TurnProgress:
        return TurnProgress(
            characters_read=self.characters_read,
            characters_sent=self.characters_sent,
            characters_spoken=self.characters_spoken,
            audio_seconds=self.audio_bytes / bytes_per_second,
            elapsed=now - self.started_at,
        )

    def heard_text(self) -> str:
        """The text heard up to :attr:`heard_seconds` (all of it when not interrupted).

        With word timings: every word whose audio ended by then, and the spaces after it. Without:
        whole sentences played, plus the share of the sentence in progress that was played,
        rounded down to a word boundary (an estimate, for services that send no word timings).
        """
        text = self.text
        if self.heard_seconds is None:
            return text
        heard = self.heard_seconds
        if self.words:
            ends = [w.end for w in self.words]
            count = bisect.bisect_right(ends, heard + 1e-6)
            cut = self.words[count - 1].text_end if count else 0
        else:
            cut = _estimate_cut(self.sentences, heard, text)
        while cut < len(text) and text[cut].isspace():
            cut += 1
        open_sentence = self.open_sentence
        if open_sentence is None or cut < len(text) or heard <= open_sentence.start:
            return text[:cut]
        return text[: open_sentence.text_start] + _open_part(open_sentence, heard)


def _estimate_cut(sentences: list[Sentence], heard: float, text: str) -> int:
    cut = 0
    for sentence in sentences:
        if heard >= sentence.end:
            cut = sentence.text_end
            continue
        if heard > sentence.start and sentence.end > sentence.start:
            share = (heard - sentence.start) / (sentence.end - sentence.start)
            guess = sentence.text_start + int(share * (sentence.text_end - sentence.text_start))
            while guess > sentence.text_start and not _word_edge(text, guess):
                guess -= 1  # back to the start of the word in progress
            cut = max(cut, guess)
        break
    return cut


def _open_part(sentence: OpenSentence, heard: float) -> str:
    """The words of the sentence in progress played by ``heard`` seconds (an estimate from the
    expected pace: its word timings only come with its sentence-end, which a stop cancels)."""
    text = sentence.text
    expected = max(count_characters(text) * sentence.seconds_per_character, 1e-6)
    cut = int(min(1.0, (heard - sentence.start) / expected) * len(text))
    while 0 < cut < len(text) and not _word_edge(text, cut):
        cut -= 1
    return text[:cut].rstrip()


def _word_edge(text: str, index: int) -> bool:
    """True when a word starts at ``text[index]`` (after a space, or at a CJK ideograph)."""
    return text[index - 1].isspace() or is_cjk_ideograph(text[index - 1])


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
