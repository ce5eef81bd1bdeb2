"""A sink that hands each chunk to a user function, on the dispatcher thread."""

from __future__ import annotations

from collections.abc import Callable

from .format import PcmFormat

__all__ = ["CallbackSink"]


class CallbackSink:
    """Calls ``fn(chunk)`` for every chunk, on the pipeline's dispatcher thread.

    Never on the WebSocket receive thread: a slow ``fn`` delays later sinks and lets the queue
    grow, but never delays receiving. An exception from ``fn`` fails the turn with AudioError.
    """

    def __init__(self, fn: Callable[[bytes], object]) -> None:
        self._fn = fn

    def start(self, fmt: PcmFormat) -> None:
        pass

    def write(self, chunk: bytes) -> None:
        self._fn(chunk)

    def drain(self) -> None:
        pass

    def abort(self) -> None:
        pass

    def close(self) -> None:
        pass
