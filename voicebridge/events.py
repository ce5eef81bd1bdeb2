"""Speech events for callers: ``on_word`` callbacks and the items of ``astream_events``.

Both are pipeline listeners (:class:`~voicebridge.audio.pipeline.PipelineListener`): they run on
the audio dispatcher thread, after the audio before them reached the sinks, never on the
WebSocket receive thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from .turn import AudioChunk, TurnMetrics, Word

__all__ = ["EventForwarder", "SpeechEvent", "WordCallback"]

log = logging.getLogger("voicebridge.bridge")

SpeechEvent = AudioChunk | Word | TurnMetrics
"""What :meth:`VoiceBridge.astream_events` yields: audio and words in order, then the metrics."""


class WordCallback:
    """Runs the user's ``on_word`` on the dispatcher thread; its exceptions are logged."""

    def __init__(self, on_word: Callable[[Word], None]) -> None:
        self._on_word = on_word

    def on_audio(self, turn: int, chunk: bytes, start: float) -> None:
        """Audio needs nothing here."""

    def on_words(self, turn: int, words: tuple[object, ...]) -> None:
        for word in words:
            if not isinstance(word, Word):
                continue
            try:
                self._on_word(word)
            except Exception:
                log.exception("on_word raised; the word is skipped")


class EventForwarder:
    """Hands one turn's audio and words to an asyncio queue (dispatcher thread -> loop)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, events: asyncio.Queue[Any]) -> None:
        self._loop = loop
        self._events = events
        self.turn: int | None = None

    def _put(self, turn: int, event: SpeechEvent) -> None:
        if self.turn is not None and turn != self.turn:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is reading
            self._loop.call_soon_threadsafe(self._events.put_nowait, event)

    def on_audio(self, turn: int, chunk: bytes, start: float) -> None:
        self._put(turn, AudioChunk(chunk, start))

    def on_words(self, turn: int, words: tuple[object, ...]) -> None:
        for word in words:
            if isinstance(word, Word):
                self._put(turn, word)
