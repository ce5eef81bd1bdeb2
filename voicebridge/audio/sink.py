"""The sink protocol that :class:`~voicebridge.audio.pipeline.AudioPipeline` fans audio out to.

Threads: ``start`` and ``close`` run on the thread that builds / closes the pipeline; ``write`` and
``drain`` run on the pipeline's dispatcher thread only; ``abort`` may run on any thread, at the
same time as ``write`` or ``drain`` on the dispatcher, and must make both return promptly.
No method ever runs on the WebSocket receive thread.

A sink class may set ``shares_dispatcher = True`` to promise that ``write`` and ``drain`` never
block (a file, nothing at all): pipelines of such sinks share one dispatcher thread per process.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from .format import PcmFormat

__all__ = ["MeteredSink", "NullSink", "Sink"]


@runtime_checkable
class Sink(Protocol):
    """Where the audio of a turn goes (speaker, file, iterator, callback)."""

    def start(self, fmt: PcmFormat) -> None:
        """Prepare for audio in ``fmt``; raise :class:`~voicebridge.errors.AudioError` if unable."""

    def write(self, chunk: bytes) -> None:
        """Take a chunk of whole frames. May block (that only delays the dispatcher)."""

    def drain(self) -> None:
        """End of a turn: return once everything written is played or flushed (bounded)."""

    def abort(self) -> None:
        """Interrupt: drop buffered audio now; a blocked ``write``/``drain`` returns."""

    def close(self) -> None:
        """Release the sink's resources; called once, after the dispatcher has stopped."""


@runtime_checkable
class MeteredSink(Sink, Protocol):
    """A sink that holds audio for a while (a player, an iterator) and can say how much."""

    @property
    def buffered_seconds(self) -> float:
        """Audio written to the sink but not yet played or consumed."""

    @property
    def underruns(self) -> int:
        """Gaps since the sink started: times it ran dry in the middle of a turn (cumulative)."""


class NullSink:
    """Discards the audio; counts the bytes it was given (for tests and benchmarks)."""

    shares_dispatcher = True

    def __init__(self) -> None:
        self.bytes_written = 0

    def start(self, fmt: PcmFormat) -> None:
        self.bytes_written = 0

    def write(self, chunk: bytes) -> None:
        self.bytes_written += len(chunk)

    def drain(self) -> None:
        pass

    def abort(self) -> None:
        pass

    def close(self) -> None:
        pass
