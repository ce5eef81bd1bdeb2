"""What the framework plugins share: the text feed one turn reads while the framework is still
writing, and a pool of warm bridges.

Threads: everything here runs on the framework's event loop; bridges are made and closed in the
loop's default executor (making one may start the embedded server, closing one joins threads).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from typing import Any, TypeVar

from ..audio import NullSink
from ..bridge import VoiceBridge
from ..errors import ConfigurationError

__all__ = ["BridgePool", "TextFeed", "in_executor"]

_T = TypeVar("_T")


async def in_executor(call: Callable[[], _T]) -> _T:
    """Run a blocking call (making or closing a bridge) in the loop's default executor."""
    return await asyncio.get_running_loop().run_in_executor(None, call)


class TextFeed:
    """The text of one running turn, pushed by a framework callback and read by the bridge: an
    async iterable of text pieces.

    Unbounded: it holds text the LLM wrote that the bridge has not read yet, and the bridge reads
    it as soon as the event loop runs. Not thread-safe: push from the loop's thread only.
    """

    def __init__(self) -> None:
        self._items: asyncio.Queue[str | None] = asyncio.Queue()
        self._ended = False

    def push(self, text: str) -> None:
        """Add text to the turn; ignored once the feed has ended."""
        if text and not self._ended:
            self._items.put_nowait(text)

    def end(self) -> None:
        """No more text: the turn speaks what it has and ends. Idempotent."""
        if not self._ended:
            self._ended = True
            self._items.put_nowait(None)

    def __aiter__(self) -> AsyncIterator[str]:
        return self._read()

    async def _read(self) -> AsyncGenerator[str, None]:
        while (item := await self._items.get()) is not None:
            yield item


class BridgePool:
    """The warm :class:`~voicebridge.bridge.VoiceBridge` objects of one plugin; a turn borrows
    one and gives it back when it ends.

    The first bridge is made at once, so bad options fail where the plugin is built; when it
    started the embedded server, the others speak through that server too, and it closes last.
    More bridges (each its own connection) are made only while turns overlap; at most ``keep``
    idle ones stay open. The audio goes to the framework, so every bridge writes to a
    :class:`~voicebridge.audio.NullSink`.
    """

    def __init__(self, options: Mapping[str, Any], *, keep: int = 2) -> None:
        if "sinks" in options:
            raise ConfigurationError("sinks: the framework receives the audio; pass no sinks")
        self._options = dict(options)
        self._first = self._make()
        if self._first.server is not None:
            self._options["url"] = self._first.url
        self._idle = [self._first]
        self._lent: set[VoiceBridge] = set()
        self._making: set[asyncio.Future[VoiceBridge]] = set()
        self._keep = keep
        self._retired = False

    def _make(self) -> VoiceBridge:
        return VoiceBridge(sinks=[NullSink()], **self._options)

    @property
    def first(self) -> VoiceBridge:
        """The bridge made at construction (the embedded server's owner, if any)."""
        return self._first

    def prewarm(self) -> None:
        """Open the first bridge's connection now, off the time to first audio."""
        if not self._retired:
            self._first.preconnect()

    @contextlib.asynccontextmanager
    async def borrow(self) -> AsyncGenerator[VoiceBridge, None]:
        """An idle bridge (a new one when all are busy), given back when the block ends."""
        if self._retired:
            raise ConfigurationError("this TTS plugin is closed")
        bridge = self._idle.pop() if self._idle else await self._new_bridge()
        self._lent.add(bridge)
        try:
            yield bridge
        finally:
            self._lent.discard(bridge)
            self._idle.append(bridge)
            await self._close_spare()

    async def _new_bridge(self) -> VoiceBridge:
        """A new bridge. Making one goes on when its borrower is cancelled (the bridge's thread
        has started by then): that bridge becomes idle, and :meth:`aclose` waits for it."""
        making = asyncio.ensure_future(in_executor(self._make))
        self._making.add(making)
        making.add_done_callback(self._making.discard)
        try:
            return await asyncio.shield(making)
        except asyncio.CancelledError:
            making.add_done_callback(self._adopt)
            raise

    def _adopt(self, making: asyncio.Future[VoiceBridge]) -> None:
        if not making.cancelled() and making.exception() is None:
            self._idle.append(making.result())

    async def _close_spare(self) -> None:
        """Close idle bridges beyond ``keep`` (all once retired), the first one last. They leave
        the idle list before the first close is awaited, so closes that overlap take each one
        once."""
        keep = 0 if self._retired else self._keep
        spare = [b for b in self._idle if b is not self._first][: max(0, len(self._idle) - keep)]
        if self._retired and not self._lent and self._first in self._idle:
            spare.append(self._first)
        for bridge in spare:
            self._idle.remove(bridge)
        for bridge in spare:
            await in_executor(bridge.close)

    async def retire(self) -> None:
        """Close idle bridges now and the others as their turns end; borrow no more."""
        self._retired = True
        await self._close_spare()

    async def aclose(self) -> None:
        """Interrupt running turns and close every bridge (bounded by each bridge's close)."""
        self._retired = True
        for bridge in self._lent:
            bridge.interrupt()
        await asyncio.gather(*self._making, return_exceptions=True)  # a cancelled turn's bridge
        everything = [b for b in (*self._idle, *self._lent) if b is not self._first]
        self._idle.clear()
        for bridge in [*everything, self._first]:
            await in_executor(bridge.close)
