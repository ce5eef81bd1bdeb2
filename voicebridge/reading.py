"""Reading one turn's source into the session, never on a thread that must stay responsive.

A str, list or tuple is read at once. Any other sync source may block (an HTTP stream, a pipe),
so it gets a reader thread of its own: ``interrupt()`` then returns control at once whatever
the source is doing, and the thread ends when the source next yields (or is closed). An async
source is read by a task on the caller's event loop, which ``stop()`` cancels.

A source that raises ends its text there: what arrived is still spoken, and the failure comes
out afterwards as :class:`~voicebridge.errors.SourceError` with the original chained.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Iterator

from .errors import SourceError
from .llm import EndOfTurn, StreamEvent, aclose_source, aiter_events, close_source, iter_events
from .turn import Turn

__all__ = ["SourceReader"]

log = logging.getLogger("voicebridge.reading")

_JOIN = 1.0  # seconds join() waits for a reader thread stuck in its source


class SourceReader:
    """Feeds ``turn``'s text to ``text(str)``, flush points to ``flush()``, the end to ``end()``
    (called exactly once, whatever happens)."""

    def __init__(
        self,
        source: object,
        turn: Turn,
        *,
        text: Callable[[str], None],
        flush: Callable[[], None],
        end: Callable[[], None],
    ) -> None:
        self.source = source
        self.failure: SourceError | None = None
        self._turn = turn
        self._text = text
        self._flush = flush
        self._end = end
        self._thread: threading.Thread | None = None
        self._task: tuple[asyncio.AbstractEventLoop, asyncio.Future[None]] | None = None

    def start(self) -> None:
        """Read a sync source: at once if it is in memory, else on a reader thread.
        TypeError now, on the caller's thread, if it cannot be read."""
        events = iter_events(self.source)
        if isinstance(self.source, str | list | tuple):
            self._read(events)
            return
        self._thread = threading.Thread(
            target=self._read, args=(events,), name="voicebridge-reader", daemon=True
        )
        self._thread.start()

    def start_async(self) -> None:
        """Read an async (or sync in-memory) source with a task on the running loop."""
        if not _is_async(self.source):
            self.start()
            return
        self._task = (asyncio.get_running_loop(), asyncio.ensure_future(self._aread()))

    def stop(self) -> None:
        """Barge-in, from any thread: stop reading now (cancel the task, close the source)."""
        if self._task is not None:
            loop, task = self._task
            with contextlib.suppress(RuntimeError):  # its loop is closed: it is over anyway
                loop.call_soon_threadsafe(task.cancel)
        with contextlib.suppress(Exception):  # a source busy on its reader thread refuses
            close_source(self.source)

    async def astop(self) -> None:
        """:meth:`stop`, closing an async source properly too."""
        self.stop()
        with contextlib.suppress(Exception):
            await aclose_source(self.source)

    def join_now(self) -> bool:
        """True when no reader thread is left running (never waits)."""
        return self._thread is None or not self._thread.is_alive()

    def join(self) -> bool:
        """Wait (bounded) for the reader thread; False if the source still blocks it."""
        if self._thread is None:
            return True
        self._thread.join(_JOIN)
        if self._thread.is_alive():
            log.warning("a source is still blocked in a read; its reader thread is left")
            return False
        return True

    def _read(self, events: Iterator[StreamEvent]) -> None:
        try:
            for event in events:
                if self._turn.cancelled or self._turn.done.is_set():
                    break
                self._accept(event)
        except Exception as exc:  # the source failed: speak what arrived, then report it
            self.failure = _source_error(exc)
        finally:
            with contextlib.suppress(Exception):
                close_source(events)
            self._end()

    async def _aread(self) -> None:
        events = aiter_events(self.source)
        try:
            async for event in events:
                if self._turn.cancelled or self._turn.done.is_set():
                    break
                self._accept(event)
        except Exception as exc:
            self.failure = _source_error(exc)
        finally:
            with contextlib.suppress(Exception):
                await events.aclose()
            self._end()

    def _accept(self, event: StreamEvent) -> None:
        if isinstance(event, EndOfTurn):
            self._flush()
        else:
            self._text(event.text)


def _is_async(source: object) -> bool:
    return any(hasattr(source, name) for name in ("__aiter__", "__aenter__", "__await__"))


def _source_error(exc: Exception) -> SourceError:
    if isinstance(exc, SourceError):
        return exc
    error = SourceError(f"the LLM stream failed: {type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error
