"""The janus queue the audio path uses: items are ``(key, payload)``, audio bytes are counted.

A payload is a chunk of audio (bytes), a :class:`Signal`, or any other object the reader knows
(the pipeline passes word timings this way, in order with the audio).
"""

from __future__ import annotations

import enum

import janus

__all__ = ["ChunkQueue", "Item", "Signal"]


class Signal(enum.Enum):
    END = "end"  # no more audio for this turn
    STOP = "stop"  # the reader returns


Item = tuple[int, object]  # (turn or generation, chunk, signal or another payload)


class ChunkQueue(janus.Queue[Item]):
    """A janus queue that also counts the audio bytes it holds.

    ``_put``/``_get`` are janus's documented override points and run under its mutex, so
    ``audio_bytes`` needs no lock of its own; readers on other threads see a recent value.
    """

    def _init(self, maxsize: int) -> None:
        super()._init(maxsize)
        self.audio_bytes = 0

    def _put(self, item: Item) -> None:
        super()._put(item)
        if isinstance(item[1], bytes):
            self.audio_bytes += len(item[1])

    def _get(self) -> Item:
        item = super()._get()
        if isinstance(item[1], bytes):
            self.audio_bytes -= len(item[1])
        return item
