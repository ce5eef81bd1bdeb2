"""VoiceBridge: an LLM stream in, speech out, while the LLM is still writing.

    source ─► llm.iter_events ─► SessionCore (fragments, tasks, ledger) ─► AudioPipeline ─► sinks
                                     │ SessionDriver: one I/O thread          └► listeners (words)

Threads: the caller's thread (or event loop) only hands text to the session core and waits; a
sync source that may block is read on a reader thread of the turn, so ``interrupt()`` returns
control at once whatever the source is doing. The session's driver thread talks to the service;
each connection's receive thread hands audio straight to the pipeline (``put_nowait``); the
pipeline's dispatcher thread writes to the sinks and runs word callbacks. ``speak`` and ``aspeak``
return when the turn's audio has been played or written.

With no URL and no API key (argument or environment), the bridge starts the embedded local
server on a free loopback port, so it speaks offline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .audio import AudioPipeline, PcmFormat, Sink
from .config import ApiKey, resolve_api_key, resolve_url
from .errors import ConfigurationError, SynthesisTimeout
from .events import EventForwarder, SpeechEvent, WordCallback
from .options import synthesis_parameters
from .protocol import DEFAULT_SAMPLE_RATE
from .reading import SourceReader
from .session import SessionCore, SessionDriver, SessionSettings
from .text.fragmenter import Fragmenter
from .turn import AudioChunk, Turn, TurnMetrics, TurnProgress, Word
from .voices import DEFAULT_MODEL, DEFAULT_VOICE

if TYPE_CHECKING:
    from .server import ServerThread

__all__ = ["SpeechEvent", "TurnMetrics", "VoiceBridge"]

log = logging.getLogger("voicebridge.bridge")


_DRAIN_MARGIN = 10.0  # seconds allowed beyond the buffered audio for sinks to drain
_WATCHDOG = 5.0  # seconds between checks that the session thread is alive while a turn runs
_SERVICE_HOST = "aliyuncs.com"  # word timings are opt-in on the real service (voice-dependent)


class VoiceBridge:
    """Speaks LLM streams through CosyVoice duplex synthesis, one turn at a time.

    ``sinks`` receive 16-bit mono PCM at ``sample_rate``; by default the speaker. ``url`` and
    ``api_key`` default to the environment; with neither, the embedded local server is used
    (``engine`` and ``piper_voice`` pick its speech engine). Options are checked here, before any
    connection (:func:`voicebridge.options.synthesis_parameters`). ``word_timestamps``: None
    asks for them except from the real service, where only some voices have them. ``on_word``
    runs on the audio dispatcher thread, once per word, after the word's audio reached the sinks.
    Use as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        *,
        voice: str = DEFAULT_VOICE,
        model: str = DEFAULT_MODEL,
        sample_rate: int = DEFAULT_SAMPLE_RATE,
        volume: int = 50,
        rate: float = 1.0,
        pitch: float = 1.0,
        sinks: Sequence[Sink] | None = None,
        url: str | None = None,
        api_key: str | ApiKey | None = None,
        engine: str = "espeak",
        piper_voice: str | None = None,
        settings: SessionSettings | None = None,
        fragmenter: Callable[[], Fragmenter] = Fragmenter,
        connect_timeout: float = 5.0,
        word_timestamps: bool | None = None,
        on_word: Callable[[Word], None] | None = None,
        language_hints: Sequence[str] | None = None,
        seed: int | None = None,
        instruction: str | None = None,
        hot_fix: Mapping[str, Any] | None = None,
        enable_markdown_filter: bool | None = None,
    ) -> None:
        # Rebound at once: no plain-text key stays in this frame (traceback locals).
        api_key = resolve_api_key(api_key)
        embedded = (
            url is None and api_key is None and not os.environ.get("DASHSCOPE_WEBSOCKET_BASE_URL")
        )
        if not embedded:
            url = resolve_url(url)
        if word_timestamps is None:
            word_timestamps = embedded or not (urlsplit(url or "").hostname or "").endswith(
                _SERVICE_HOST
            )
        parameters = synthesis_parameters(
            model=model,
            voice=voice,
            sample_rate=sample_rate,
            volume=volume,
            rate=rate,
            pitch=pitch,
            word_timestamps=word_timestamps,
            language_hints=language_hints,
            seed=seed,
            instruction=instruction,
            hot_fix=hot_fix,
            enable_markdown_filter=enable_markdown_filter,
        )
        self.format = PcmFormat(sample_rate)
        self._server: ServerThread | None = None
        if sinks is None:
            from .audio.player import PyAudioSink

            sinks = [PyAudioSink()]
        self._pipeline = AudioPipeline(sinks, self.format)
        if embedded:
            from .server import ServerThread

            engine_options: dict[str, Any] = {"piper_voice": piper_voice} if piper_voice else {}
            try:
                self._server = ServerThread(engine=engine, **engine_options).start()
            except BaseException:
                self._pipeline.close()
                raise
            url = self._server.url
            log.info("no API key or URL: speaking through the embedded local server at %s", url)
        assert url is not None
        self.url = url
        self.parameters = parameters
        self._core = SessionCore(
            parameters,
            settings,
            fragmenter=fragmenter(),
            bytes_per_second=self.format.bytes_per_second,
            buffered_audio=lambda: self._pipeline.buffered_seconds,
        )
        self._driver = SessionDriver(
            self._core,
            url,
            api_key=api_key,
            connect_timeout=connect_timeout,
            deliver=self._deliver,
            words=self._words,
        )
        self._listener = WordCallback(on_word) if on_word is not None else None
        if self._listener is not None:
            self._pipeline.add_listener(self._listener)
        self._lock = threading.Lock()  # one turn at a time
        self._turn: Turn | None = None
        self._reader: SourceReader | None = None  # the running turn's
        self._readers: list[SourceReader] = []  # every turn's, until its thread ended
        self._closed = False

    def __repr__(self) -> str:
        p = getattr(self, "parameters", None)  # None while __init__ runs (traceback locals)
        if p is None:
            return "VoiceBridge(<not constructed>)"
        return f"VoiceBridge(voice={p.voice!r}, model={p.model!r}, url={self.url!r})"

    @property
    def pipeline(self) -> AudioPipeline:
        return self._pipeline

    @property
    def settings(self) -> SessionSettings:
        return self._core.settings

    @property
    def connected(self) -> bool:
        """True while a WebSocket to the service is open (after :meth:`preconnect`, a turn)."""
        return self._driver.connected

    @property
    def server(self) -> ServerThread | None:
        """The embedded local server, when the bridge started one."""
        return self._server

    @property
    def progress(self) -> TurnProgress | None:
        """A snapshot of the running turn, or None between turns (any thread)."""
        turn = self._turn
        return (
            None if turn is None else turn.progress(time.monotonic(), self.format.bytes_per_second)
        )

    # ------------------------------------------------------------------ turns

    def preconnect(self, *, start_task: bool = False) -> None:
        """Open the WebSocket (and optionally start a task) before the first token, to take the
        handshake off the time to first audio. Idle tasks are finished before the 23 s limit."""
        self._driver.call(self._core.preconnect, start_task)

    def speak(self, source: object) -> TurnMetrics:
        """Speak one turn: read ``source`` (text, an iterable of text, an OpenAI stream) to its
        end, and return when its audio has been played or written.

        Raises :class:`SourceError` (the source's own exception chained) after speaking what
        arrived when the source fails, and the turn's error, with ``unspoken_text``, when the
        service could not speak all of it (the text read and not spoken; the source is then
        closed and read no further)."""
        turn, reader = self._begin(source)
        try:
            reader.start()
            self._wait_session(turn)
            self._pipeline.end_turn(turn.number)
            self._pipeline.wait_turn_done(turn.number, self._drain_timeout())
        except BaseException:
            self.interrupt()
            raise
        finally:
            self._end(turn, reader)
        return self._result(turn, reader)

    async def aspeak(self, source: object) -> TurnMetrics:
        """The asyncio face of :meth:`speak`: never blocks the event loop; cancelling it is a
        barge-in. Async sources are read on the loop; sync iterators on a reader thread."""
        turn, reader = self._begin(source)
        try:
            reader.start_async()
            await turn.wait()
            self._pipeline.end_turn(turn.number)
            await self._pipeline.await_turn_done(turn.number, self._drain_timeout())
        except BaseException:  # CancelledError included: barge-in, then propagate
            await self.ainterrupt()
            raise
        finally:
            self._end(turn, reader)
        return self._result(turn, reader)

    async def astream(self, source: object) -> AsyncGenerator[bytes, None]:
        """Speak ``source`` and yield its audio chunks (16-bit mono PCM) as they reach the sinks."""
        async for event in self.astream_events(source):
            if isinstance(event, AudioChunk):
                yield event.data

    async def astream_events(self, source: object) -> AsyncGenerator[SpeechEvent, None]:
        """Speak ``source`` and yield :class:`AudioChunk` and :class:`Word` items as they reach
        the sinks (a word after its audio), then the turn's :class:`TurnMetrics`. Closing the
        iterator early interrupts the turn."""
        loop = asyncio.get_running_loop()
        # Unbounded: it holds one turn's audio that the consumer has not read yet.
        events: asyncio.Queue[SpeechEvent | None] = asyncio.Queue()
        listener = EventForwarder(loop, events)
        self._pipeline.add_listener(listener)
        task = asyncio.ensure_future(self.aspeak(source))
        task.add_done_callback(lambda _: loop.call_soon(events.put_nowait, None))
        await asyncio.sleep(0)  # aspeak's first step opens the turn: keep only its events
        if self._turn is not None:
            listener.turn = self._turn.number
        try:
            while (event := await events.get()) is not None:
                yield event
            yield await task
        finally:
            self._pipeline.remove_listener(listener)
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def interrupt(self) -> None:
        """Barge-in: stop playback at once, drop queued audio, cancel the task, stop reading the
        source. Safe from any thread; returns at once; the bridge is ready for the next turn."""
        turn = self._turn
        if turn is None or turn.cancelled:
            return
        turn.cancelled = True
        self._pipeline.interrupt()
        turn.heard_seconds = self._pipeline.turn_stats(turn.number).played_seconds
        self._driver.call(self._core.cancel)
        if self._reader is not None:
            self._reader.stop()

    async def ainterrupt(self) -> None:
        """:meth:`interrupt` for asyncio sources (closes an async stream properly)."""
        reader = self._reader
        self.interrupt()
        if reader is not None:
            await reader.astop()

    def close(self, timeout: float = 5.0) -> None:
        """Stop every thread this bridge started and the embedded server; bounded by ``timeout``
        per part."""
        if self._closed:
            return
        self._closed = True
        self.interrupt()
        self._driver.close(timeout)
        self._pipeline.close(timeout)
        for reader in self._readers:
            reader.join()
        if self._server is not None:
            self._server.stop()

    def __enter__(self) -> VoiceBridge:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> VoiceBridge:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.close)

    # ------------------------------------------------------------------ internals

    def _deliver(self, turn: Turn, chunk: bytes) -> None:
        """Receive thread: the audio goes straight to the pipeline's queue."""
        self._pipeline.receive(turn.number, chunk)

    def _words(self, turn: Turn, words: tuple[Word, ...]) -> None:
        self._pipeline.receive_words(turn.number, words)

    def _begin(self, source: object) -> tuple[Turn, SourceReader]:
        if self._closed:
            raise ConfigurationError("this VoiceBridge is closed")
        if not self._lock.acquire(blocking=False):
            raise ConfigurationError("a turn is already being spoken; interrupt() it first")
        try:
            turn = Turn(self._pipeline.begin_turn(), time.monotonic())
            call = self._driver.call
            reader = SourceReader(
                source,
                turn,
                text=lambda text: call(self._core.feed, turn, text),
                flush=lambda: call(self._core.flush, turn),
                end=lambda: call(self._core.end_turn, turn),
            )
            self._readers = [r for r in self._readers if not r.join_now()]
            self._readers.append(reader)
            self._reader, self._turn = reader, turn
            call(self._core.begin_turn, turn)
        except BaseException:
            self._lock.release()
            raise
        return turn, reader

    def _wait_session(self, turn: Turn) -> None:
        """Until the session ended the turn; bounded by the session's own progress rules, and
        checked against a dead session thread."""
        while not turn.done.wait(_WATCHDOG):
            if not self._driver.alive:
                raise SynthesisTimeout("the session thread stopped during the turn")

    def _drain_timeout(self) -> float:
        return self._pipeline.buffered_seconds + _DRAIN_MARGIN

    def _end(self, turn: Turn, reader: SourceReader) -> None:
        if turn.error is not None:  # the turn failed: its source is read no further
            reader.stop()
        self._reader = self._turn = None
        self._lock.release()

    def _result(self, turn: Turn, reader: SourceReader) -> TurnMetrics:
        if turn.error is not None and not turn.cancelled:
            raise turn.error
        if reader.failure is not None and not turn.cancelled:
            raise reader.failure
        return self._metrics(turn)

    def _metrics(self, turn: Turn) -> TurnMetrics:
        stats = self._pipeline.turn_stats(turn.number)
        synthesis = _since(turn.first_fragment_at, turn.last_audio_at)
        rtf = synthesis / stats.audio_seconds if synthesis and stats.audio_seconds else None
        metrics = TurnMetrics(
            turn=turn.number,
            text=turn.text,
            heard_text=turn.heard_text(),
            words=tuple(turn.words),
            time_to_first_fragment=_since(turn.first_text_at, turn.first_fragment_at),
            first_package_delay=_since(turn.first_fragment_at, turn.first_audio_at),
            time_to_first_audio=_since(turn.first_text_at, stats.first_write_at),
            audio_seconds=stats.audio_seconds,
            real_time_factor=rtf,
            billed_characters=turn.billed_characters,
            underruns=stats.underruns,
            task_ids=tuple(turn.task_ids),
            rollovers=turn.rollovers,
            reconnects=turn.reconnects,
            replayed_characters=turn.replayed_characters,
            interrupted=turn.cancelled or stats.interrupted,
        )
        log.debug("turn metrics: %s", metrics)
        return metrics


def _since(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else end - start
