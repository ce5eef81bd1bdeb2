"""Stand-ins for the word-timing API of issue 12 until it lands on main; deleted at that merge.

``turn_events`` yields the bridge's audio as :class:`AudioChunk` events (no words, no metrics)
through ``VoiceBridge.astream``; the plugins are written against ``astream_events``' shape.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from ..bridge import TurnMetrics, VoiceBridge


@dataclass(frozen=True)
class AudioChunk:
    data: bytes
    start: float


@dataclass(frozen=True)
class Word:
    text: str
    start: float
    end: float
    text_start: int
    text_end: int


async def turn_events(
    bridge: VoiceBridge, source: object
) -> AsyncGenerator[AudioChunk | Word | TurnMetrics, None]:
    bytes_per_second = 2 * bridge.format.sample_rate
    position = 0
    async with contextlib.aclosing(bridge.astream(source)) as chunks:  # type: ignore[type-var]
        async for data in chunks:
            yield AudioChunk(data, position / bytes_per_second)
            position += len(data)
