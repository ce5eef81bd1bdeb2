"""One page's session: its WebSocket, its conversation, its own VoiceBridge, one turn at a time.

Everything here runs on the server's event loop; the bridge's threads are created, preconnected
and closed through ``asyncio.to_thread``. A turn is a task: the LLM stream is read on the loop
(each piece sent to the page as it arrives) and spoken by ``bridge.astream_events``; its audio
and words go to the page as they reach the bridge's sink, a :class:`PageSink` that mirrors the
page's player (the page reports what it played), so the turn ends when the page has played it
and a Stop tells the bridge what was heard. The session ends with its connection: the running
turn is cancelled (the bridge interrupts it, the LLM stream is closed) and the bridge is closed,
its threads joined.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from websockets.exceptions import ConnectionClosed

from ..bridge import VoiceBridge
from ..chat import DEFAULT_SYSTEM, LLMEndpoint
from ..errors import AudioError, RemoteProtocolError, SourceError, VoiceBridgeError
from ..llm import StreamEvent, TextDelta, aiter_events
from ..turn import AudioChunk, TurnMetrics, Word
from ..voices import Voice
from .conversation import Conversation, Turn
from .messages import (
    FloodGuard,
    Interrupt,
    Played,
    Say,
    WebLimits,
    audio_frame,
    encode,
    parse_message,
)
from .page_sink import PageSink

if TYPE_CHECKING:
    import openai
    from websockets.asyncio.server import ServerConnection

__all__ = ["SessionConfig", "WebSession"]

log = logging.getLogger(__name__)

_CLOSE_TIMEOUT = 10.0  # seconds for a bridge to stop its threads


@dataclass(frozen=True)
class SessionConfig:
    """What every session of one server shares: the LLM, the speech service, the limits."""

    llm: LLMEndpoint  # its base_url is where to send requests (a local LLM already started)
    voices: Sequence[Voice]  # the model's voices, for the selector (empty: any name)
    voice: str = "longxiaochun_v2"
    rate: float = 1.0
    volume: int = 50
    pitch: float = 1.0
    tts_model: str = "cosyvoice-v2"
    speech_url: str | None = None  # None: the bridge's own choice (DASHSCOPE_API_KEY: the service)
    speech_label: str = "the CosyVoice service"
    system: str | None = DEFAULT_SYSTEM
    max_tokens: int = 200
    sample_rate: int = 22050
    playback_stall_timeout: float = 10.0  # seconds a playing page may go without a report
    limits: WebLimits = field(default_factory=WebLimits)


@dataclass
class _TurnClock:
    """``time.monotonic()`` marks of one turn."""

    sent: float
    first_token: float | None = None
    first_audio: float | None = None

    def since_sent(self, mark: float | None) -> float | None:
        return None if mark is None else round(mark - self.sent, 3)


class WebSession:
    """Serves one WebSocket until it closes (:meth:`run`)."""

    def __init__(
        self, websocket: ServerConnection, config: SessionConfig, client: openai.AsyncOpenAI
    ) -> None:
        self._ws = websocket
        self._config = config
        self._client = client
        self._conversation = Conversation(config.system, config.limits.max_history_turns)
        self._guard = FloodGuard(config.limits.messages_per_second, config.limits.message_burst)
        self._bridge: VoiceBridge | None = None
        self._bridge_key: tuple[str, float] | None = None
        loop = asyncio.get_running_loop()

        def audio_end(samples: int) -> None:  # on the bridge's dispatcher thread
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody listens
                loop.call_soon_threadsafe(self._audio_end, samples)

        self._sink = PageSink(audio_end, config.playback_stall_timeout)
        self._voice = config.voice
        self._rate = config.rate
        self._task: asyncio.Task[None] | None = None
        self._running: Turn | None = None  # the turn whose task is running
        self._sending: set[asyncio.Future[None]] = set()  # sends started off the turn's task

    async def run(self) -> None:
        """Greet the page, then handle its messages until the connection closes; then cancel
        the running turn and close the bridge (its threads joined)."""
        try:
            await self._send(self._ready())
            async for frame in self._ws:
                await self._handle(frame)
        except ConnectionClosed:
            pass
        finally:
            await self._stop_task()
            if self._bridge is not None:
                await asyncio.to_thread(self._bridge.close, _CLOSE_TIMEOUT)
                self._bridge = None

    # ------------------------------------------------------------------ incoming

    async def _handle(self, frame: str | bytes) -> None:
        admitted, tell = self._guard.admit(time.monotonic())
        if not admitted:
            if tell:
                await self._error(
                    "input",
                    f"too many messages: at most {self._config.limits.messages_per_second:g} "
                    f"per second; {self._guard.dropped} dropped so far",
                )
            return
        try:
            message = parse_message(frame, self._config.limits)
        except RemoteProtocolError as exc:
            await self._error("input", str(exc))
            return
        if isinstance(message, Say):
            await self._say(message)
        elif isinstance(message, Played):
            running = self._running
            if running is not None and message.turn == running.number:
                self._sink.report(
                    message.seconds, finished=message.finished, underruns=message.underruns
                )
        else:
            await self._interrupt(message)

    async def _say(self, say: Say) -> None:
        if self._task is not None and not self._task.done():
            await self._error("input", "a reply is still being spoken: press Stop first")
            return
        voice = say.voice or self._voice
        if self._config.voices and voice not in {v.name for v in self._config.voices}:
            await self._error("input", f"unknown voice {voice!r}")
            return
        self._voice, self._rate = voice, say.rate or self._rate
        self._task = asyncio.create_task(self._turn(say.text))

    async def _interrupt(self, message: Interrupt) -> None:
        if message.turn is not None and message.turn > self._conversation.begun:
            await self._error("input", f"no turn {message.turn} to stop")
            return
        turn = self._running
        if turn is None or message.turn not in (None, turn.number):
            return  # that turn is over already
        turn.stopped = True
        if message.heard is not None:
            self._sink.stopped_at(message.heard)
        if self._bridge is not None:
            await self._bridge.ainterrupt()

    # ------------------------------------------------------------------ a turn

    async def _turn(self, text: str) -> None:
        turn = self._conversation.begin(text)
        self._running = turn
        clock = _TurnClock(time.monotonic())
        metrics: TurnMetrics | None = None
        await self._send(
            encode("turn", turn=turn.number, text=text, voice=self._voice, rate=self._rate)
        )
        try:
            bridge = await self._bridge_for(self._voice, self._rate)
            self._sink.begin_turn()
            async for event in bridge.astream_events(self._read_llm(turn, clock)):
                if isinstance(event, AudioChunk):
                    await self._send_audio(turn, clock, event)
                elif isinstance(event, Word):
                    word = turn.reply.place(event.text, event.start, event.end)
                    await self._send(
                        encode(
                            "word",
                            turn=turn.number,
                            index=word.index,
                            text=word.text,
                            start=round(word.start, 4),
                            end=round(word.end, 4),
                            span=word.span,
                        )
                    )
                else:
                    metrics = event
        except Exception as exc:
            turn.failed = not turn.reply.text
            await self._report_failure(turn, exc)
        finally:
            self._running = None
        await self._send(self._done(turn, clock, metrics))

    async def _send_audio(self, turn: Turn, clock: _TurnClock, chunk: AudioChunk) -> None:
        if clock.first_audio is None:
            clock.first_audio = time.monotonic()
        first = round(chunk.start * self._config.sample_rate)
        await self._send(audio_frame(turn.number, first, chunk.data))

    def _audio_end(self, samples: int) -> None:
        """The sink's drain began: every sample of the running turn was handed to the page."""
        turn = self._running
        if turn is not None:
            message = encode("audio_end", turn=turn.number, samples=samples)
            task = asyncio.ensure_future(self._send(message))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    def _done(self, turn: Turn, clock: _TurnClock, metrics: TurnMetrics | None) -> str:
        """The turn's ``done`` message; records what the history keeps of a stopped reply."""
        heard_end: int | None = None
        if metrics is not None and metrics.interrupted:
            turn.heard_text = metrics.heard_text
            heard_words = sum(1 for w in metrics.words if w.text_end <= len(metrics.heard_text))
            heard_end = turn.reply.heard_end(heard_words) if metrics.words else None
        figures = {
            "first_token": clock.since_sent(clock.first_token),
            "first_audio": clock.since_sent(clock.first_audio),
            "audio_seconds": None if metrics is None else round(metrics.audio_seconds, 3),
            "real_time_factor": None
            if metrics is None or metrics.real_time_factor is None
            else round(metrics.real_time_factor, 3),
            "underruns": None if metrics is None else metrics.underruns,
        }
        return encode(
            "done",
            turn=turn.number,
            interrupted=turn.stopped or bool(metrics and metrics.interrupted),
            reply=turn.kept,
            heard_end=heard_end,
            metrics=figures,
        )

    async def _read_llm(self, turn: Turn, clock: _TurnClock) -> AsyncIterator[StreamEvent]:
        """The LLM's reply as stream events; each text piece goes to the page on its way to the
        bridge (which reports what this raises as :class:`SourceError`)."""
        stream = await self._client.chat.completions.create(
            model=self._config.llm.model,
            messages=self._conversation.messages(),  # type: ignore[arg-type]
            max_tokens=self._config.max_tokens,
            stream=True,
        )
        async with contextlib.aclosing(aiter_events(stream)) as events:
            async for event in events:
                if turn.stopped:
                    return
                if isinstance(event, TextDelta):
                    if clock.first_token is None:
                        clock.first_token = time.monotonic()
                    turn.reply.write(event.text)
                    await self._send(encode("text", turn=turn.number, text=event.text))
                yield event

    async def _report_failure(self, turn: Turn, exc: Exception) -> None:
        if isinstance(exc, SourceError):  # the bridge wraps what the LLM stream raised
            await self._error("llm", str(exc), turn)
        elif isinstance(exc, AudioError):
            await self._error("audio", f"playback failed: {exc}", turn)
        elif isinstance(exc, VoiceBridgeError):
            await self._error("speech", f"speech failed: {type(exc).__name__}: {exc}", turn)
        else:
            log.exception("turn %d failed", turn.number)
            await self._error("server", f"the server failed: {type(exc).__name__}: {exc}", turn)

    async def _bridge_for(self, voice: str, rate: float) -> VoiceBridge:
        """The session's bridge for this voice and rate (a new one when they changed)."""
        if self._bridge is not None and self._bridge_key == (voice, rate):
            return self._bridge
        if self._bridge is not None:
            old, self._bridge = self._bridge, None
            await asyncio.to_thread(old.close, _CLOSE_TIMEOUT)
        config = self._config
        bridge = await asyncio.to_thread(
            VoiceBridge,
            voice=voice,
            model=config.tts_model,
            rate=rate,
            volume=config.volume,
            pitch=config.pitch,
            sample_rate=config.sample_rate,
            url=config.speech_url,
            sinks=[self._sink],  # the page plays the audio
        )
        self._bridge, self._bridge_key = bridge, (voice, rate)
        await asyncio.to_thread(bridge.preconnect)
        return bridge

    async def _stop_task(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # ------------------------------------------------------------------ outgoing

    def _ready(self) -> str:
        config = self._config
        return encode(
            "ready",
            sample_rate=config.sample_rate,
            voices=[[v.name, v.language, v.gender] for v in config.voices],
            voice=self._voice,
            rate=self._rate,
            llm=f"{config.llm.label}, model {config.llm.model}",
            speech=config.speech_label,
            max_text_chars=config.limits.max_text_chars,
        )

    async def _error(self, source: str, message: str, turn: Turn | None = None) -> None:
        number = None if turn is None else turn.number
        await self._send(encode("error", source=source, message=message, turn=number))

    async def _send(self, message: str | bytes) -> None:
        """Send, or nothing when the page is gone (the receive loop then ends the session)."""
        with contextlib.suppress(ConnectionClosed):
            await self._ws.send(message)
