"""CosyVoice for pipecat through voicebridge: ``CosyVoiceTTSService`` in a ``Pipeline``.

Install with ``pip install 'voicebridge[pipecat]'`` (pipecat-ai 1.14).

One voicebridge turn per pipecat turn context (an LLM reply, or a ``TTSSpeakFrame``):

- ``run_tts(text, context_id)`` feeds the context's turn (opening it on its first text);
  ``flush_audio`` (the end of the LLM reply) ends it: the bridge speaks what is left and the
  context gets its ``TTSStoppedFrame``.
- Audio goes out as ``TTSAudioRawFrame`` in the context; word times as ``add_word_timestamps``,
  so pipecat writes the ``TTSTextFrame`` of each word as it is heard.
- ``on_audio_context_interrupted`` (barge-in) cancels the turn: the bridge interrupts the task
  at once, and nothing is appended to the interrupted context afterwards.
- An LLM that goes quiet mid-reply (a slow tool call) for longer than the service's 23 s idle
  limit is spoken through: the bridge rolls its task over.

Text aggregation defaults to ``TextAggregationMode.TOKEN``: the bridge's own fragmenter cuts the
tokens where a listener would. With ``SENTENCE`` aggregation pipecat strips the space between
sentences, so a trailing space is appended (``append_trailing_space``).
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field
from typing import Any

from loguru import logger
from pipecat.frames.frames import (
    Frame,
    InterruptionFrame,
    StartFrame,
    TTSAudioRawFrame,
    TTSStoppedFrame,
)
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.settings import TTSSettings
from pipecat.services.tts_service import TextAggregationMode, TTSService
from pipecat.transcriptions.language import Language

from ..errors import ConfigurationError, VoiceBridgeError
from ..text.billing import is_cjk_ideograph
from ..turn import AudioChunk, Word
from ._common import BridgePool, TextFeed, in_executor

__all__ = ["CosyVoiceTTSService"]

_REMEMBERED_DEAD = 64  # interrupted context ids kept, to drop text that still arrives for them
_CANCEL_TIMEOUT = 5.0  # seconds to wait for an interrupted turn's task


@dataclass
class _Turn:
    """One voicebridge turn speaking one pipecat audio context."""

    feed: TextFeed = field(default_factory=TextFeed)
    task: Any = None  # asyncio.Task[None], made by the service's task manager
    audio_base: float = 0.0  # turn audio time of the context's current first audio
    rebase: bool = False  # the context was re-created: its next audio starts a new base


class CosyVoiceTTSService(TTSService):
    """A pipecat ``TTSService`` speaking through CosyVoice duplex synthesis (voicebridge).

    ``url`` and ``api_key`` default to the environment (``DASHSCOPE_API_KEY``,
    ``DASHSCOPE_WEBSOCKET_BASE_URL``); with neither, the embedded local server speaks offline.
    ``language`` becomes the bridge's language hint. ``bridge_options`` go to
    :class:`~voicebridge.bridge.VoiceBridge` (``rate``, ``pitch``, ``volume``, ``settings``,
    ``engine``, ...). The sample rate is the pipeline's output rate unless ``sample_rate`` says.
    Other keyword arguments go to ``TTSService``.
    """

    def __init__(
        self,
        *,
        voice: str = "longxiaochun_v2",
        model: str = "cosyvoice-v2",
        language: Language | str | None = None,
        url: str | None = None,
        api_key: str | None = None,
        bridge_options: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("text_aggregation_mode", TextAggregationMode.TOKEN)
        super().__init__(
            settings=TTSSettings(model=model, voice=voice, language=language),
            push_start_frame=True,
            push_text_frames=False,  # the word times make the TTSTextFrames
            append_trailing_space=True,
            **kwargs,
        )
        self._connection = {"url": url, "api_key": api_key, **(bridge_options or {})}
        self._pool: BridgePool | None = None
        self._turns: dict[str, _Turn] = {}
        self._dead: deque[str] = deque(maxlen=_REMEMBERED_DEAD)

    def can_generate_metrics(self) -> bool:
        return True

    def language_to_service_language(self, language: Language) -> str | None:
        """CosyVoice's hint is the primary language subtag: ``en-US`` -> ``en``."""
        return str(language.value).split("-")[0].lower()

    # ------------------------------------------------------------------ lifecycle

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        await self._new_pool()

    async def stop(self, frame: Any) -> None:
        await super().stop(frame)  # returns once every audio context has played
        await self._close_pool()

    async def cancel(self, frame: Any) -> None:
        await super().cancel(frame)
        for context_id in list(self._turns):
            await self._interrupt_turn(context_id)
        await self._close_pool()

    async def cleanup(self) -> None:
        await super().cleanup()
        await self._close_pool()

    async def _new_pool(self) -> None:
        settings = self._settings
        options = dict(self._connection)
        options.update(voice=settings.voice, model=settings.model, sample_rate=self.sample_rate)
        if settings.language:
            options["language_hints"] = [settings.language]
        old, self._pool = self._pool, await in_executor(lambda: BridgePool(options))
        if old is not None:
            await old.retire()  # its running turns finish on their bridges

    async def _close_pool(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.aclose()

    async def _update_settings(self, delta: TTSSettings) -> dict[str, Any]:  # type: ignore[override]
        changed: dict[str, Any] = await super()._update_settings(delta)
        if self._pool is not None and changed.keys() & {"voice", "model", "language"}:
            await self._new_pool()
        return changed

    # ------------------------------------------------------------------ turns

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame | None, None]:
        """Feed ``text`` to the context's turn; the audio arrives through the audio context."""
        if context_id in self._dead:
            logger.debug(f"{self}: dropping text for interrupted context {context_id}")
            return
        turn = self._turns.get(context_id)
        if turn is None:
            turn = self._turns[context_id] = _Turn()
            turn.task = self.create_task(self._speak(context_id, turn), f"speak-{context_id}")
        turn.feed.push(text)
        yield None

    async def flush_audio(self, context_id: str | None = None) -> None:
        """The context's text is complete: its turn speaks the rest and ends."""
        turn = self._turns.get(context_id or self.get_active_audio_context_id() or "")
        if turn is not None:
            turn.feed.end()

    async def on_turn_context_completed(self) -> None:
        context_id = self._turn_context_id
        await super().on_turn_context_completed()
        # The base flushes only a context it still holds; one that went quiet (a long pause
        # closed it) still has a turn to end.
        if context_id is not None and (turn := self._turns.get(context_id)) is not None:
            turn.feed.end()

    async def create_audio_context(self, context_id: str) -> None:
        await super().create_audio_context(context_id)
        turn = self._turns.get(context_id)
        if turn is not None:  # re-created after going quiet: pipecat times words from here
            turn.rebase = True

    async def on_audio_context_interrupted(self, context_id: str) -> None:
        await self._interrupt_turn(context_id)
        await super().on_audio_context_interrupted(context_id)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InterruptionFrame):
            # A turn whose context had already gone quiet got no interruption hook.
            open_contexts = set(self.get_audio_contexts())
            for context_id in [c for c in self._turns if c not in open_contexts]:
                await self._interrupt_turn(context_id)

    async def _interrupt_turn(self, context_id: str) -> None:
        """Barge-in: cancel the turn's task (the bridge interrupts its task at once) and never
        append to this context again."""
        self._dead.append(context_id)
        turn = self._turns.pop(context_id, None)
        if turn is not None and turn.task is not None:
            await self.cancel_task(turn.task, timeout=_CANCEL_TIMEOUT)

    async def _speak(self, context_id: str, turn: _Turn) -> None:
        """The turn's task: audio and word times into the audio context, then its end."""
        try:
            if self._pool is None:
                raise ConfigurationError(f"{self} has no connection: its start failed")
            async with (
                self._pool.borrow() as bridge,
                contextlib.aclosing(bridge.astream_events(turn.feed)) as events,
            ):
                async for event in events:
                    if isinstance(event, AudioChunk):
                        await self._audio(context_id, turn, event)
                    elif isinstance(event, Word):
                        await self.add_word_timestamps(
                            [(event.text, event.start - turn.audio_base)],
                            context_id,
                            includes_inter_frame_spaces=is_cjk_ideograph(event.text[-1:]),
                        )
        except VoiceBridgeError as exc:
            await self.push_error(error_msg=f"CosyVoice synthesis failed: {exc}", exception=exc)
        finally:
            # Still ours unless interrupted (then the context is dead: append nothing).
            if self._turns.get(context_id) is turn:
                del self._turns[context_id]
                stopped = TTSStoppedFrame(context_id=context_id)
                await self.append_to_audio_context(context_id, stopped)
                await self.remove_audio_context(context_id)

    async def _audio(self, context_id: str, turn: _Turn, chunk: AudioChunk) -> None:
        if turn.rebase:
            turn.audio_base, turn.rebase = chunk.start, False
        frame = TTSAudioRawFrame(chunk.data, self.sample_rate, 1, context_id=context_id)
        await self.append_to_audio_context(context_id, frame)
