"""The engine shared fairly: one worker thread, one sentence at a time, connections in turn.

Every connection of a server submits its sentences here. The worker takes the connections with
work in round-robin order, one sentence each, so a client sending 200,000 characters without
punctuation (cut into sentences of bounded length by the service machine) delays the others by
at most one sentence. Results are handed to ``deliver`` on the worker thread (the connection
passes a thread-safe hand-off to its event loop): :class:`SentenceStarted`, then PCM chunks and
anchors, then :class:`SentenceEnded`. The worker never waits for a consumer.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

from ..errors import VoiceBridgeError
from .engines import Engine, SpeechItem, SpeechRequest

__all__ = ["EngineScheduler", "Job", "SentenceEnded", "SentenceStarted"]

_log = logging.getLogger("voicebridge.server")


@dataclass(frozen=True)
class SentenceStarted:
    """The engine began a sentence; its PCM is at ``sample_rate`` Hz."""

    sample_rate: int


@dataclass(frozen=True)
class SentenceEnded:
    """The sentence is over: complete, cancelled, or failed with ``error``."""

    error: VoiceBridgeError | None = None


Delivery = SentenceStarted | SpeechItem | SentenceEnded


@dataclass(eq=False)
class Job:
    """One sentence of one connection. ``cancel()`` may be called from any thread."""

    request: SpeechRequest
    deliver: Callable[[Delivery], None]
    cancelled: threading.Event = field(default_factory=threading.Event)

    def cancel(self) -> None:
        self.cancelled.set()


class EngineScheduler:
    """Runs ``engine`` (not owned) for every connection of a server on one thread."""

    def __init__(self, engine: Engine, *, name: str = "voicebridge-synth") -> None:
        self._engine = engine
        self._queues: dict[Hashable, deque[Job]] = {}
        self._turns: deque[Hashable] = deque()  # clients with queued jobs, next first
        self._wakeup = threading.Condition()
        self._stopping = False
        self._current: Job | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(
        self, client: Hashable, request: SpeechRequest, deliver: Callable[[Delivery], None]
    ) -> Job:
        """Queue one sentence of ``client``; results go to ``deliver`` (on the worker thread)."""
        job = Job(request, deliver)
        with self._wakeup:
            if self._stopping:
                job.cancel()
            elif client in self._queues:
                self._queues[client].append(job)
            else:
                self._queues[client] = deque([job])
                self._turns.append(client)
                self._wakeup.notify()
        if job.cancelled.is_set():
            _deliver(job, SentenceEnded(VoiceBridgeError("the local server is stopping")))
        return job

    def close(self, timeout: float) -> None:
        """Stop taking work, abandon the running sentence, join the thread (bounded)."""
        with self._wakeup:
            self._stopping = True
            pending = [job for queue in self._queues.values() for job in queue]
            self._queues.clear()
            self._turns.clear()
            if self._current is not None:
                self._current.cancel()
            self._wakeup.notify()
        for job in pending:
            job.cancel()
            _deliver(job, SentenceEnded(VoiceBridgeError("the local server is stopping")))
        self._thread.join(timeout)
        if self._thread.is_alive():
            _log.error("the synthesis thread did not stop within %s s", timeout)

    def _next(self) -> Job | None:
        with self._wakeup:
            while not self._stopping and not self._turns:
                self._wakeup.wait()
            if self._stopping:
                return None
            client = self._turns.popleft()
            queue = self._queues[client]
            job = queue.popleft()
            if queue:
                self._turns.append(client)  # its next sentence waits for the others' turn
            else:
                del self._queues[client]
            self._current = job
            return job

    def _run(self) -> None:
        while (job := self._next()) is not None:
            try:
                self._synthesize(job)
            finally:
                with self._wakeup:
                    self._current = None

    def _synthesize(self, job: Job) -> None:
        if job.cancelled.is_set():
            _deliver(job, SentenceEnded())
            return
        error: VoiceBridgeError | None = None
        try:
            stream = self._engine.synthesize(job.request)
            try:
                if _deliver(job, SentenceStarted(stream.sample_rate)):
                    for item in stream:
                        if job.cancelled.is_set() or not _deliver(job, item):
                            break
            finally:
                stream.close()
        except VoiceBridgeError as exc:
            error = exc
        except Exception as exc:  # an engine bug must not kill the worker serving everyone
            _log.exception("the speech engine failed")
            error = VoiceBridgeError(f"the speech engine failed: {type(exc).__name__}")
        _deliver(job, SentenceEnded(error))


def _deliver(job: Job, item: Delivery) -> bool:
    """Hand ``item`` over; False (and the job cancelled) when its consumer is gone."""
    try:
        job.deliver(item)
    except RuntimeError:  # the connection's event loop is closed
        job.cancel()
        return False
    return True
