"""VoiceBridge: an LLM stream in, speech out, while the LLM is still writing.

    source ─► llm.iter_events ─► SpeechSession (fragmenter, tasks, replay) ─► AudioPipeline ─► sinks

The caller's thread (or event loop, for ``aspeak``) reads the source and only enqueues text;
the session's worker thread talks to the service; the receive thread hands audio to the pipeline
with ``put_nowait``; the pipeline's dispatcher thread writes to the sinks. ``speak`` and
``aspeak`` return when the turn's audio has been played or written.

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
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .audio import AudioPipeline, PcmFormat, Sink
from .client import AudioFormat, ResultCallback, SpeechSynthesizer
from .config import ApiKey, resolve_api_key
from .errors import ConfigurationError, SynthesisTimeout, VoiceBridgeError
from .llm import EndOfTurn, StreamEvent, aclose_source, aiter_events, close_source, iter_events
from .session import SessionSettings, SpeechSession, TurnRecord
from .text.fragmenter import Fragmenter

if TYPE_CHECKING:
    from .server import ServerThread

__all__ = ["TurnMetrics", "VoiceBridge"]

log = logging.getLogger("voicebridge.bridge")

_DRAIN_MARGIN = 10.0  # seconds allowed beyond the buffered audio for sinks to drain
_INTERRUPT_SETTLE = 5.0  # seconds an interrupted turn waits for the worker to drop its task


@dataclass(frozen=True)
class TurnMetrics:
    """One turn, measured. Durations in seconds (None when the event did not happen)."""

    turn: int
    time_to_first_fragment: float | None  # first token read -> first fragment sent
    first_package_delay: float | None  # first fragment ready -> first audio byte (incl. connect)
    time_to_first_audio: float | None  # first token read -> first audio handed to the sinks
    audio_seconds: float
    real_time_factor: float | None  # synthesis wall time / audio seconds
    billed_characters: int
    underruns: int
    task_ids: tuple[str, ...]
    rollovers: int
    reconnects: int
    replayed_characters: int
    interrupted: bool


def _pcm_format(sample_rate: int) -> AudioFormat:
    for candidate in AudioFormat:
        if candidate.format == "pcm" and candidate.sample_rate == sample_rate:
            return candidate
    raise ConfigurationError(f"unsupported sample_rate {sample_rate}")


async def _settle(record: TurnRecord) -> None:
    """Wait (bounded) until the worker has dropped an interrupted turn, through repeated
    cancellation: the next turn must not find this one's task still open on the worker."""
    settled = asyncio.get_running_loop().run_in_executor(
        None, record.done.wait, _INTERRUPT_SETTLE
    )
    while not settled.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(settled)


def _since(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else end - start


class VoiceBridge:
    """Speaks LLM streams through CosyVoice duplex synthesis, one turn at a time.

    ``sinks`` receive 16-bit mono PCM at ``sample_rate``; by default the speaker. ``url`` and
    ``api_key`` default to the environment; with neither, the embedded local server is used
    (``engine`` picks its speech engine). Use as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        *,
        voice: str = "longxiaochun_v2",
        model: str = "cosyvoice-v2",
        sample_rate: int = 22050,
        volume: int = 50,
        rate: float = 1.0,
        pitch: float = 1.0,
        sinks: Sequence[Sink] | None = None,
        url: str | None = None,
        api_key: str | ApiKey | None = None,
        engine: str = "espeak",
        settings: SessionSettings | None = None,
        fragmenter: Callable[[], Fragmenter] = Fragmenter,
        connect_timeout: float = 5.0,
    ) -> None:
        self.format = PcmFormat(sample_rate)
        audio_format = _pcm_format(sample_rate)
        key = resolve_api_key(api_key)
        self._server: ServerThread | None = None
        if url is None and key is None and not os.environ.get("DASHSCOPE_WEBSOCKET_BASE_URL"):
            from .server import ServerThread

            self._server = ServerThread(engine=engine)
            self._server.start()
            url = self._server.url
            log.info("no API key or URL: speaking through the embedded local server at %s", url)
        self.url = url
        if sinks is None:
            from .audio.player import PyAudioSink

            sinks = [PyAudioSink()]
        self._pipeline = AudioPipeline(sinks, self.format)

        def synthesizer(callback: ResultCallback) -> SpeechSynthesizer:
            return SpeechSynthesizer(
                model,
                voice,
                format=audio_format,
                volume=volume,
                speech_rate=rate,
                pitch_rate=pitch,
                callback=callback,
                url=url,
                api_key=key,
                connect_timeout=connect_timeout,
            )

        self._listener: Callable[[bytes], object] | None = None
        self._session = SpeechSession(
            synthesizer,
            self._on_audio,
            fragmenter=fragmenter,
            settings=settings,
            buffered_audio=lambda: self._pipeline.buffered_seconds,
        )
        self._lock = threading.Lock()  # one turn at a time
        self._turn: int | None = None
        self._interrupted = -1  # the turn interrupt() was called for
        self._source: object = None
        self._closed = False

    def __repr__(self) -> str:
        params = self._session.synthesizer.parameters
        return f"VoiceBridge(voice={params.voice!r}, model={params.model!r}, url={self.url!r})"

    @property
    def pipeline(self) -> AudioPipeline:
        return self._pipeline

    @property
    def connected(self) -> bool:
        """True while the WebSocket to the service is open (after :meth:`preconnect`, a turn)."""
        return self._session.synthesizer.connected

    @property
    def server(self) -> ServerThread | None:
        """The embedded local server, when the bridge started one."""
        return self._server

    # ------------------------------------------------------------------ turns

    def preconnect(self, *, start_task: bool = False) -> None:
        """Open the WebSocket (and optionally start a task) before the first token, to take the
        handshake off the time to first audio. Idle tasks are finished before the 23 s limit."""
        self._session.preconnect(start_task=start_task)

    def speak(self, source: object) -> TurnMetrics:
        """Speak one turn: read ``source`` (text, an iterable of text, an OpenAI stream) to its
        end, and return when its audio has been played or written."""
        turn, record = self._begin(source)
        try:
            source_error: VoiceBridgeError | None = None
            try:
                for event in iter_events(source):
                    if not self._accept(turn, record, event):
                        break
            except VoiceBridgeError as exc:
                source_error = exc  # speak what arrived, then report the source's failure
            self._session.end_turn(turn)
            self._wait_worker(record)
            self._pipeline.end_turn(turn)
            self._pipeline.wait_turn_done(turn, self._drain_timeout())
        except BaseException:
            self.interrupt()
            self._session.end_turn(turn)
            record.done.wait(_INTERRUPT_SETTLE)  # the next turn must not find this one's task
            raise
        finally:
            self._end(turn)
        if source_error is not None:
            raise source_error
        return self._metrics(record)

    async def aspeak(self, source: object) -> TurnMetrics:
        """The asyncio face of :meth:`speak`: reads sync or async sources on the event loop and
        never blocks it."""
        turn, record = self._begin(source)
        try:
            source_error: VoiceBridgeError | None = None
            try:
                async for event in aiter_events(source):
                    if not self._accept(turn, record, event):
                        break
            except VoiceBridgeError as exc:
                source_error = exc
            self._session.end_turn(turn)
            await asyncio.get_running_loop().run_in_executor(None, self._wait_worker, record)
            self._pipeline.end_turn(turn)
            await self._pipeline.await_turn_done(turn, self._drain_timeout())
        except BaseException:  # CancelledError included: barge-in, then propagate
            self.interrupt()
            self._session.end_turn(turn)
            await _settle(record)
            raise
        finally:
            self._end(turn)
        if source_error is not None:
            raise source_error
        return self._metrics(record)

    async def astream(self, source: object) -> AsyncIterator[bytes]:
        """Speak ``source`` and yield its audio chunks (16-bit mono PCM) as they arrive, in
        addition to the bridge's sinks."""
        # Unbounded: it holds the audio of one turn that the consumer has not read yet.
        chunks: asyncio.Queue[bytes | None] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        self._listener = lambda chunk: loop.call_soon_threadsafe(chunks.put_nowait, chunk)
        task = asyncio.ensure_future(self.aspeak(source))
        task.add_done_callback(lambda _: chunks.put_nowait(None))
        try:
            while (chunk := await chunks.get()) is not None:
                yield chunk
            await task
        finally:
            self._listener = None
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def interrupt(self) -> None:
        """Barge-in: stop playback at once, drop queued audio, cancel the task, stop reading the
        source. Safe from any thread; the bridge is ready for the next turn."""
        turn = self._turn
        if turn is None:
            return
        self._interrupted = turn
        self._pipeline.interrupt()
        self._session.cancel(turn)
        source = self._source
        if source is not None:
            with contextlib.suppress(Exception):
                close_source(source)

    async def ainterrupt(self) -> None:
        """:meth:`interrupt` for asyncio sources (closes an async stream properly)."""
        source = self._source
        self.interrupt()
        if source is not None:
            with contextlib.suppress(Exception):
                await aclose_source(source)

    def close(self, timeout: float = 5.0) -> None:
        """Stop every thread this bridge started and the embedded server; bounded by ``timeout``
        per part."""
        if self._closed:
            return
        self._closed = True
        self._session.close(timeout)
        self._pipeline.close(timeout)
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

    def _on_audio(self, turn: int, chunk: bytes) -> None:
        """Receive thread: enqueue only (the pipeline's janus queue, the astream loop)."""
        self._pipeline.receive(turn, chunk)
        listener = self._listener
        if listener is not None:
            listener(chunk)

    def _begin(self, source: object) -> tuple[int, TurnRecord]:
        if self._closed:
            raise ConfigurationError("this VoiceBridge is closed")
        if not self._lock.acquire(blocking=False):
            raise ConfigurationError("a turn is already being spoken; interrupt() it first")
        turn = self._pipeline.begin_turn()
        self._turn = turn
        self._interrupted = -1
        self._source = source
        return turn, self._session.begin_turn(turn)

    def _accept(self, turn: int, record: TurnRecord, event: StreamEvent) -> bool:
        """Hand one stream event to the session; False when the turn was interrupted."""
        if self._interrupted == turn:
            return False
        if isinstance(event, EndOfTurn):
            self._session.flush(turn)
            return True
        if record.first_text_at is None:
            record.first_text_at = time.monotonic()
        self._session.feed(turn, event.text)
        return True

    def _wait_worker(self, record: TurnRecord) -> None:
        settings = self._session.settings
        limit = settings.finish_timeout + settings.max_retries * (settings.backoff_max + 15.0)
        if not record.done.wait(limit):
            raise SynthesisTimeout(f"the turn did not finish within {limit:g} s")
        if record.error is not None:
            raise record.error

    def _drain_timeout(self) -> float:
        return self._pipeline.buffered_seconds + _DRAIN_MARGIN

    def _end(self, turn: int) -> None:
        self._source = None
        self._turn = None
        self._lock.release()

    def _metrics(self, record: TurnRecord) -> TurnMetrics:
        stats = self._pipeline.turn_stats(record.turn)
        synthesis = _since(record.first_fragment_at, record.last_audio_at)
        rtf = synthesis / stats.audio_seconds if synthesis and stats.audio_seconds else None
        metrics = TurnMetrics(
            turn=record.turn,
            time_to_first_fragment=_since(record.first_text_at, record.first_fragment_at),
            first_package_delay=_since(record.first_fragment_at, record.first_audio_at),
            time_to_first_audio=_since(record.first_text_at, stats.first_write_at),
            audio_seconds=stats.audio_seconds,
            real_time_factor=rtf,
            billed_characters=record.billed_characters,
            underruns=stats.underruns,
            task_ids=tuple(record.task_ids),
            rollovers=record.rollovers,
            reconnects=record.reconnects,
            replayed_characters=record.replayed_characters,
            interrupted=record.interrupted or stats.interrupted,
        )
        log.debug("turn metrics: %s", metrics)
        return metrics
