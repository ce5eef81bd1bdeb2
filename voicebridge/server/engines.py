"""What the local server needs from a speech engine, and the tone engine.

An engine turns one sentence (:class:`SpeechRequest`) into a :class:`SpeechStream`: 16-bit
little-endian mono PCM chunks at the stream's ``sample_rate``, interleaved with word
:class:`~voicebridge.server.words.Anchor` items (where a spoken character starts, in samples of
that sentence). Streams block: iterate them on a worker thread, never on the event loop; every
wait in them is bounded; ``close()`` abandons the rest of the sentence.

Engines: ``tone`` (here), ``espeak`` (:mod:`.espeak`), ``text`` (:mod:`.text_engine`), ``piper``
(:mod:`.piper_engine`); :mod:`.lifecycle` opens and shares them by name.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..text.billing import count_characters
from .encoding import SERVER_FORMATS
from .words import Anchor

__all__ = ["Engine", "SpeechItem", "SpeechRequest", "SpeechStream", "ToneEngine"]

SpeechItem = bytes | Anchor


@dataclass(frozen=True)
class SpeechRequest:
    """One sentence to speak. ``language`` is an espeak-ng language (cmn, en-us...), ``rate`` and
    ``pitch`` factors (0.5-2.0, 1 = normal), ``volume`` 0-100 (50 = normal); ``sample_rate`` is
    what the task asked for (an engine may produce it directly, see :class:`SpeechStream`)."""

    text: str
    language: str
    rate: float = 1.0
    pitch: float = 1.0
    volume: int = 50
    sample_rate: int = 22050


class SpeechStream(Iterator[SpeechItem]):
    """PCM chunks (never empty) and anchors of one sentence at ``sample_rate`` Hz."""

    def __init__(
        self,
        sample_rate: int,
        items: Iterator[SpeechItem],
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.sample_rate = sample_rate
        self._items = items
        self._on_close = on_close

    def __next__(self) -> SpeechItem:
        return next(self._items)

    def close(self) -> None:
        """Abandon the rest of the sentence (idempotent)."""
        close = getattr(self._items, "close", None)
        if close is not None:
            close()
        if self._on_close is not None:
            self._on_close()


class Engine(Protocol):
    """A speech engine shared by every connection of a server (see :mod:`.scheduler`)."""

    @property
    def formats(self) -> tuple[str, ...]:
        """The containers its audio may be sent in (the text engine's codes survive no mp3)."""
        ...

    def synthesize(self, request: SpeechRequest) -> SpeechStream:
        """The stream for one sentence; raises :class:`~voicebridge.errors.VoiceBridgeError`
        (here or while iterating) when it cannot speak it."""
        ...

    def close(self) -> None:
        """Release resources and join threads; idempotent."""
        ...


class ToneEngine:
    """A deterministic sine tone (``frequency=0``: silence) lasting ``seconds_per_character`` per
    billed character (CJK = 2) divided by ``rate``; pitch scales the frequency, volume the level.
    Anchors at every character make its word times exact."""

    formats = SERVER_FORMATS

    def __init__(
        self,
        *,
        sample_rate: int = 22050,
        frequency: float = 440.0,
        seconds_per_character: float = 0.06,
        chunk_seconds: float = 0.1,
    ) -> None:
        self.sample_rate = sample_rate
        self.frequency = frequency
        self.seconds_per_character = seconds_per_character
        self._chunk = max(1, int(sample_rate * chunk_seconds))

    def synthesize(self, request: SpeechRequest) -> SpeechStream:
        return SpeechStream(self.sample_rate, self._items(request))

    def _items(self, request: SpeechRequest) -> Iterator[SpeechItem]:
        per_character = self.seconds_per_character * self.sample_rate / request.rate
        billed = 0
        for offset, char in enumerate(request.text):
            yield Anchor(offset, int(billed * per_character))
            billed += count_characters(char)
        total = int(billed * per_character)
        omega = 2 * math.pi * self.frequency * request.pitch / self.sample_rate
        amplitude = 32767 * 0.5 * request.volume / 100
        for start in range(0, total, self._chunk):
            n = np.arange(start, min(start + self._chunk, total))
            yield (amplitude * np.sin(omega * n)).astype("<i2").tobytes()

    def close(self) -> None:
        """Nothing to release."""
