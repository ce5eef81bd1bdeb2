"""CosyVoice for the OpenAI Agents SDK through voicebridge: ``VoicePipeline(tts_model=...)``.

Install with ``pip install 'voicebridge[openai-agents]'`` (openai-agents[voice] 0.24).

The pipeline splits the agent's reply into sentence batches itself and starts a ``run()`` for
each batch as soon as it has one, so runs overlap. :class:`CosyVoiceTTSModel` keeps one warm
connection (one bridge) and speaks the batches one after another, in the order their runs
started: a batch's audio never interleaves with another's. Each batch is one voicebridge turn,
so the bridge's replay-exactly-once and idle rules hold inside it; between batches the
connection stays open (and is reopened if the service closed it while the agent was busy).

Audio is 16-bit mono PCM at 24 kHz, as the SDK expects, in chunks of 1,024 bytes like the SDK's
own TTS model: the pipeline holds ``TTSModelSettings.buffer_size`` chunks (120: 2.6 s) before its
first audio event, so lower it for a faster first word. The voice is chosen here:
``TTSModelSettings.voice`` names OpenAI voices and ``speed`` is not CosyVoice's rate, so both are
ignored (pass ``bridge_options={"rate": ...}``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any

from agents.voice import TTSModel, TTSModelSettings

from ..turn import AudioChunk
from ..voices import DEFAULT_MODEL, DEFAULT_VOICE
from ._common import BridgePool

__all__ = ["CHUNK_BYTES", "SAMPLE_RATE", "CosyVoiceTTSModel"]

SAMPLE_RATE = 24000  # the Agents SDK plays int16 PCM at 24 kHz
# The SDK's own OpenAI TTS model yields 1,024-byte chunks, and TTSModelSettings.buffer_size (120 by
# default) counts chunks: the same size here gives that setting the same meaning (about 2.6 s).
CHUNK_BYTES = 1024


class CosyVoiceTTSModel(TTSModel):
    """An Agents SDK ``TTSModel`` speaking through CosyVoice duplex synthesis (voicebridge).

    ``url`` and ``api_key`` default to the environment (``DASHSCOPE_API_KEY``,
    ``DASHSCOPE_WEBSOCKET_BASE_URL``); with neither, the embedded local server speaks offline.
    ``bridge_options`` go to :class:`~voicebridge.bridge.VoiceBridge`. Use it from one event loop;
    call :meth:`aclose` when done.
    """

    def __init__(
        self,
        *,
        voice: str = DEFAULT_VOICE,
        model: str = DEFAULT_MODEL,
        url: str | None = None,
        api_key: str | None = None,
        bridge_options: Mapping[str, Any] | None = None,
    ) -> None:
        self._model = model
        options = dict(bridge_options or {})
        options.update(voice=voice, model=model, sample_rate=SAMPLE_RATE, url=url, api_key=api_key)
        self._pool = BridgePool(options)
        self._order = asyncio.Lock()  # FIFO: batches speak in the order their runs started

    @property
    def model_name(self) -> str:
        return self._model

    def run(self, text: str, settings: TTSModelSettings) -> AsyncIterator[bytes]:
        """Speak one batch: its PCM chunks, after every earlier batch's."""
        return self._speak(text)

    async def _speak(self, text: str) -> AsyncGenerator[bytes, None]:
        async with (
            self._order,
            self._pool.borrow() as bridge,  # the first bridge: the lock lets one batch at a time
            contextlib.aclosing(bridge.astream_events(text)) as events,
        ):
            pending = b""
            async for event in events:
                if isinstance(event, AudioChunk):
                    pending += event.data
                    whole = len(pending) - len(pending) % CHUNK_BYTES
                    for start in range(0, whole, CHUNK_BYTES):
                        yield pending[start : start + CHUNK_BYTES]
                    pending = pending[whole:]
            if pending:
                yield pending

    def prewarm(self) -> None:
        """Open the connection now, off the first batch's time to first audio."""
        self._pool.prewarm()

    async def aclose(self) -> None:
        """Interrupt a batch being spoken, close the connection and the bridge's threads."""
        await self._pool.aclose()
