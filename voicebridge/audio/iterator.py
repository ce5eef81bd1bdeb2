"""IteratorSink: the audio of each turn as a sync or an async iterator over one janus queue.

The dispatcher puts chunks on the queue's sync side; a consumer reads them either with ``for``
on another thread (sync side) or with ``async for`` on an event loop (async side). One iteration
covers one turn: it ends when the turn ends (drain) or is interrupted (abort).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Iterator

import janus

from ..errors import AudioError, ConfigurationError, SynthesisTimeout
from .chunk_queue import ChunkQueue, Item, Signal
from .format import PcmFormat

__all__ = ["IteratorSink"]


class IteratorSink:
    """Hands chunks to a consumer that iterates; memory is bounded by ``max_chunks``.

    ``write`` waits while ``max_chunks`` chunks are unread (the pipeline queue grows instead);
    ``drain`` waits until the consumer has read the turn's end. Both give up after
    ``consumer_timeout`` seconds with :class:`AudioError` (nobody is reading). A consumer waits
    at most ``chunk_timeout`` seconds for the next chunk, then gets :class:`SynthesisTimeout`.
    """

    def __init__(
        self,
        *,
        max_chunks: int = 256,
        consumer_timeout: float = 60.0,
        chunk_timeout: float = 60.0,
    ) -> None:
        if max_chunks <= 0:
            raise ConfigurationError("max_chunks must be positive")
        self.consumer_timeout = consumer_timeout
        self.chunk_timeout = chunk_timeout
        self._queue = ChunkQueue(max_chunks + 1)  # + room for the end marker after an abort
        self._fmt = PcmFormat(16000)  # replaced by start()
        self._end_read = threading.Event()
        self._end_read.set()
        self._abort_gen = 0

    # -- Sink protocol (dispatcher thread, abort from any thread) --------------------------------

    def start(self, fmt: PcmFormat) -> None:
        self._fmt = fmt

    def write(self, chunk: bytes) -> None:
        self._put((self._abort_gen, chunk))

    def drain(self) -> None:
        self._end_read.clear()
        self._put((self._abort_gen, Signal.END))
        if not self._end_read.wait(self.consumer_timeout):
            raise self._stalled()

    def abort(self) -> None:
        """Drop unread chunks; the consumer's current (or next) iteration ends."""
        self._abort_gen += 1  # the consumer skips items of older generations
        while True:
            try:
                self._queue.sync_q.get_nowait()
            except (janus.SyncQueueEmpty, janus.SyncQueueShutDown):
                break
        with contextlib.suppress(janus.SyncQueueFull, janus.SyncQueueShutDown):
            self._queue.sync_q.put_nowait((self._abort_gen, Signal.END))
        self._end_read.set()

    def close(self) -> None:
        """End every iteration (consumers stop); later writes are dropped."""
        self._queue.close()
        self._end_read.set()

    def _put(self, item: Item) -> None:
        try:
            self._queue.sync_q.put(item, timeout=self.consumer_timeout)
        except janus.SyncQueueFull:
            raise self._stalled() from None
        except janus.SyncQueueShutDown:
            self._end_read.set()

    def _stalled(self) -> AudioError:
        return AudioError(f"nobody read the audio iterator for {self.consumer_timeout:.0f} s")

    # -- consumer side -------------------------------------------------------------------------

    @property
    def buffered_seconds(self) -> float:
        """Audio written here and not yet read by the consumer."""
        return self._fmt.seconds(self._queue.audio_bytes)

    @property
    def underruns(self) -> int:
        return 0  # the consumer sets the pace: it cannot be starved in the sense of a device

    def __iter__(self) -> Iterator[bytes]:
        """The chunks of the next turn, read on the calling thread."""
        while True:
            try:
                gen, payload = self._queue.sync_q.get(timeout=self.chunk_timeout)
            except janus.SyncQueueEmpty:
                raise SynthesisTimeout(f"no audio for {self.chunk_timeout:.0f} s") from None
            except janus.SyncQueueShutDown:
                return
            if gen != self._abort_gen:
                continue  # written before an abort() that dropped it
            if isinstance(payload, bytes):
                yield payload
            else:
                self._end_read.set()
                return

    async def __aiter__(self) -> AsyncIterator[bytes]:
        """The chunks of the next turn, read on the running event loop without blocking it."""
        while True:
            try:
                gen, payload = await asyncio.wait_for(self._queue.async_q.get(), self.chunk_timeout)
            except asyncio.TimeoutError:
                raise SynthesisTimeout(f"no audio for {self.chunk_timeout:.0f} s") from None
            except janus.AsyncQueueShutDown:
                return
            if gen != self._abort_gen:
                continue  # written before an abort() that dropped it
            if isinstance(payload, bytes):
                yield payload
            else:
                self._end_read.set()
                return
