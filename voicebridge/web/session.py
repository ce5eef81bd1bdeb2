"""One page's session: its WebSocket, its conversation, its own VoiceBridge, one turn at a time.

Everything here runs on the server's event loop; the bridge's threads are created, preconnected
and closed through ``asyncio.to_thread``. A turn is a task: the LLM stream is read on the loop
(each piece sent to the page as it arrives) and spoken by ``bridge.astream``; its audio goes to
the page as binary frames as soon as it arrives (the page buffers and plays it). The session ends
with its connection: the running turn is cancelled (the bridge interrupts it, the LLM stream is
closed) and the bridge is closed, its threads joined.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from websockets.exceptions import ConnectionClosed

from ..audio import NullSink
from ..bridge import VoiceBridge
from ..chat import DEFAULT_SYSTEM, LLMEndpoint
from ..errors import RemoteProtocolError, SourceError, VoiceBridgeError
from ..llm import StreamEvent, TextDelta, aiter_events
from .conversation import Conversation, Turn
from .messages import FloodGuard, Interrupt, Say, WebLimits, audio_frame, encode, parse_message

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
    voices: Mapping[str, str]  # voice name -> language, for the selector (empty: any name)
    voice: str = "longxiaochun_v2"
    rate: float = 1.0
    tts_model: str = "cosyvoice-v2"
    speech_url: str | None = None  # None: the bridge's own choice (DASHSCOPE_API_KEY: the service)
    speech_label: str = "the CosyVoice service"
    system: str | None = DEFAULT_SYSTEM
    max_tokens: int = 200
    sample_rate: int = 22050
    limits: WebLimits = field(default_factory=WebLimits)


@dataclass
class _TurnClock:
    """``time.monotonic()`` marks of one turn."""

    sent: float
    first_token: float | None = None
    first_audio: float | None = None
    llm_error: BaseException | None = None

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
        self._voice = config.voice
        self._rate = config.rate
        self._task: asyncio.Task[None] | None = None
        self._running: Turn | None = None  # the turn whose task is running

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
        else:
            await self._interrupt(message)

    async def _say(self, say: Say) -> None:
        if self._task is not None and not self._task.done():
            await self._error("input", "a reply is still being spoken: press Stop first")
            return
        voice = say.voice or self._voice
        if self._config.voices and voice not in self._config.voices:
            await self._error("input", f"unknown voice {voice!r}")
            return
        self._voice, self._rate = voice, say.rate or self._rate
        self._task = asyncio.create_task(self._turn(say.text))

    async def _interrupt(self, message: Interrupt) -> None:
        turn = self._conversation.find(message.turn)
        if turn is None:
            await self._error("input", f"no turn {message.turn} to stop")
            return
        if message.heard is not None:
            turn.heard = message.heard if turn.heard is None else min(turn.heard, message.heard)
        turn.stopped = True
        if turn is self._running:
            if self._bridge is not None:
                await self._bridge.ainterrupt()
        else:  # its audio was all sent and is still playing on the page: cut its history now
            await self._send(encode("kept", turn=turn.number, reply=turn.kept))

    # ------------------------------------------------------------------ a turn

    async def _turn(self, text: str) -> None:
        turn = self._conversation.begin(text)
        self._running = turn
        clock = _TurnClock(time.monotonic())
        samples = 0
        await self._send(
            encode("turn", turn=turn.number, text=text, voice=self._voice, rate=self._rate)
        )
        try:
            bridge = await self._bridge_for(self._voice, self._rate)
            source = self._read_llm(turn, clock)
            async for chunk in bridge.astream(source):
                if turn.stopped:
                    continue  # the page dropped this turn's audio already
                if clock.first_audio is None:
                    clock.first_audio = time.monotonic()
                await self._send(audio_frame(turn.number, samples, chunk))
                samples += len(chunk) // 2
        except Exception as exc:
            turn.failed = not turn.reply.text
            await self._report_failure(turn, clock, exc)
        finally:
            self._running = None
        rate = self._config.sample_rate
        metrics = {
            "first_token": clock.since_sent(clock.first_token),
            "first_audio": clock.since_sent(clock.first_audio),
            "audio_seconds": round(samples / rate, 3),
            "real_time_factor": None,
        }
        await self._send(
            encode(
                "done",
                turn=turn.number,
                interrupted=turn.stopped,
                reply=turn.kept,
                samples=samples,
                metrics=metrics,
            )
        )

    async def _read_llm(self, turn: Turn, clock: _TurnClock) -> AsyncIterator[StreamEvent]:
        """The LLM's reply as stream events; each text piece goes to the page on its way to the
        bridge. A failure here is the LLM's (``clock.llm_error``)."""
        try:
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
        except Exception as exc:
            clock.llm_error = exc
            raise

    async def _report_failure(self, turn: Turn, clock: _TurnClock, exc: Exception) -> None:
        if clock.llm_error is not None or isinstance(exc, SourceError):
            await self._error("llm", f"the LLM failed: {type(exc).__name__}: {exc}", turn)
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
            sample_rate=config.sample_rate,
            url=config.speech_url,
            sinks=[NullSink()],  # the page plays the audio
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
            voices=sorted(config.voices.items(), key=lambda item: (item[1], item[0])),
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
