"""CosyVoice for LiveKit Agents through voicebridge: ``AgentSession(tts=TTS(...))``.

Install with ``pip install 'voicebridge[livekit]'`` (livekit-agents 1.8).

- :meth:`TTS.stream` returns a ``SynthesizeStream``: its text (pushed by the agent while the LLM
  writes) feeds one voicebridge turn per segment; audio goes out as 16-bit mono PCM frames at
  ``sample_rate``, and the word times as timed transcripts on the segment's own audio timeline
  (``aligned_transcript`` when word timestamps are on: always with the local server, on the real
  service with ``bridge_options={"word_timestamps": True}`` for a voice that has them). A flush
  ends the segment; the next text opens another.
- :meth:`TTS.synthesize` speaks one text the same way (a ``ChunkedStream``).
- A tool call that keeps the LLM quiet for longer than the service's 23 s idle limit is spoken
  through: the bridge rolls the task over. Closing or cancelling a stream (barge-in) interrupts
  its turn at once.
- Overlapping streams each borrow a warm bridge from a small pool (one connection each).
- voicebridge retries and replays by itself, so its errors reach LiveKit as non-retryable
  ``APIError``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any, Literal, TypeAlias

from livekit.agents import APIConnectOptions, APIError, tts, utils
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, TimedString

from ..errors import VoiceBridgeError
from ..text.billing import is_cjk_ideograph
from ..turn import AudioChunk, Word
from ._common import BridgePool

__all__ = ["TTS"]

_Input: TypeAlias = "str | tts.SynthesizeStream._FlushSentinel"


class TTS(tts.TTS[Literal["metrics_collected", "error"]]):
    """A LiveKit ``tts.TTS`` speaking through CosyVoice duplex synthesis (voicebridge).

    ``url`` and ``api_key`` default to the environment (``DASHSCOPE_API_KEY``,
    ``DASHSCOPE_WEBSOCKET_BASE_URL``); with neither, the embedded local server speaks offline.
    ``bridge_options`` go to :class:`~voicebridge.bridge.VoiceBridge` (``rate``, ``pitch``,
    ``volume``, ``settings``, ``engine``, ...).
    """

    def __init__(
        self,
        *,
        voice: str = "longxiaochun_v2",
        model: str = "cosyvoice-v2",
        sample_rate: int = 24000,
        url: str | None = None,
        api_key: str | None = None,
        bridge_options: Mapping[str, Any] | None = None,
    ) -> None:
        options = dict(bridge_options or {})
        options.update(voice=voice, model=model, sample_rate=sample_rate, url=url, api_key=api_key)
        self._pool = BridgePool(options)
        words = bool(self._pool.first.parameters.extra.get("word_timestamp_enabled"))
        super().__init__(
            capabilities=tts.TTSCapabilities(streaming=True, aligned_transcript=words),
            sample_rate=sample_rate,
            num_channels=1,
        )
        self._model = model

    @property
    def model(self) -> str:
        return self._model

    @property
    def provider(self) -> str:
        return "CosyVoice"

    @property
    def pool(self) -> BridgePool:
        """The warm bridges this TTS speaks through."""
        return self._pool

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> ChunkedStream:
        return ChunkedStream(tts=self, input_text=text, conn_options=conn_options)

    def stream(
        self, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> SynthesizeStream:
        return SynthesizeStream(tts=self, conn_options=conn_options)

    def prewarm(self) -> None:
        self._pool.prewarm()

    async def aclose(self) -> None:
        await self._pool.aclose()


class _Transcript:
    """Lines a turn's words up with the text pushed into it, so that the timed transcript reads
    exactly like that text: each piece runs from the end of the previous piece to the end of its
    word (spaces and punctuation included), and :meth:`rest` holds what follows the last word.

    ``Word.text`` is a piece of the speakable text the bridge sent, which is the pushed text but
    for markup; a word not found in the pushed text is given as it is, followed by a space.
    """

    def __init__(self) -> None:
        self._text = ""
        self._cursor = 0
        self._last_end = 0.0

    def add(self, text: str) -> str:
        self._text += text
        return text

    def piece(self, word: Word) -> TimedString:
        self._last_end = word.end
        found = self._text.find(word.text, self._cursor)
        if found < 0:
            separator = "" if is_cjk_ideograph(word.text[-1:]) else " "
            return TimedString(word.text + separator, start_time=word.start, end_time=word.end)
        end = found + len(word.text)
        piece, self._cursor = self._text[self._cursor : end], end
        return TimedString(piece, start_time=word.start, end_time=word.end)

    def rest(self) -> TimedString | None:
        rest, self._cursor = self._text[self._cursor :], len(self._text)
        if not rest:
            return None
        return TimedString(rest, start_time=self._last_end, end_time=self._last_end)


async def _speak(pool: BridgePool, source: AsyncIterator[str], emitter: tts.AudioEmitter) -> None:
    """One voicebridge turn: audio and word times into ``emitter``. Leaving early (cancel)
    interrupts the turn; voicebridge errors become non-retryable ``APIError``."""
    transcript = _Transcript()
    try:
        async with (
            pool.borrow() as bridge,
            contextlib.aclosing(bridge.astream_events(_kept(source, transcript))) as events,
        ):
            async for event in events:
                if isinstance(event, AudioChunk):
                    emitter.push(event.data)
                elif isinstance(event, Word):
                    emitter.push_timed_transcript(transcript.piece(event))
    except VoiceBridgeError as exc:
        raise APIError(f"CosyVoice synthesis failed: {exc}", retryable=False) from exc
    if (rest := transcript.rest()) is not None:
        emitter.push_timed_transcript(rest)


async def _kept(source: AsyncIterator[str], transcript: _Transcript) -> AsyncIterator[str]:
    """``source``, each piece also added to ``transcript``."""
    async for text in source:
        yield transcript.add(text)


def _start_pcm(emitter: tts.AudioEmitter, sample_rate: int, *, stream: bool) -> None:
    """The emitter takes 16-bit mono PCM; ``stream``: segments are started and ended by hand."""
    emitter.initialize(
        request_id=utils.shortuuid(),
        sample_rate=sample_rate,
        num_channels=1,
        mime_type="audio/pcm",
        stream=stream,
    )


class ChunkedStream(tts.ChunkedStream):
    """:meth:`TTS.synthesize`: one text, one turn."""

    def __init__(self, *, tts: TTS, input_text: str, conn_options: APIConnectOptions) -> None:
        super().__init__(tts=tts, input_text=input_text, conn_options=conn_options)
        self._pool = tts.pool

    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        _start_pcm(output_emitter, self._tts.sample_rate, stream=False)
        await _speak(self._pool, _one(self._input_text), output_emitter)


class SynthesizeStream(tts.SynthesizeStream):
    """:meth:`TTS.stream`: one voicebridge turn per segment (text up to a flush)."""

    def __init__(self, *, tts: TTS, conn_options: APIConnectOptions) -> None:
        super().__init__(tts=tts, conn_options=conn_options)
        self._pool = tts.pool

    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        _start_pcm(output_emitter, self._tts.sample_rate, stream=True)
        inputs = aiter(self._input_ch)
        while (first := await _first_text(inputs)) is not None:
            output_emitter.start_segment(segment_id=utils.shortuuid())
            self._mark_started()
            await _speak(self._pool, _segment(first, inputs), output_emitter)
            output_emitter.end_segment()


async def _one(text: str) -> AsyncIterator[str]:
    yield text


async def _first_text(inputs: AsyncIterator[_Input]) -> str | None:
    """The first text of the next segment (flushes with no text before them are skipped); None
    when the input has ended."""
    async for item in inputs:
        if isinstance(item, str) and item:
            return item
    return None


async def _segment(first: str, inputs: AsyncIterator[_Input]) -> AsyncIterator[str]:
    """The text of one segment: ``first``, then the input up to the next flush."""
    yield first
    async for item in inputs:
        if not isinstance(item, str):
            return
        yield item
