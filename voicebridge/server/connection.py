"""One accepted WebSocket of the local server: a thin asyncio layer over ServerProtocol.

Four coroutines run on the event loop: the receiver (frames into the protocol, decoded once,
there), the timer (the protocol's deadlines, re-armed after every protocol call), the synthesizer
(one sentence at a time through the server's shared :class:`EngineScheduler`) and the sender (the
only writer, so frames leave in exactly the order the protocol produced them). The protocol
decides faults; the sender carries them out and applies the plan's delays.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from ..errors import VoiceBridgeError
from ..protocol import Audio, ResultGenerated, ServerEvent, TaskStarted, encode_server_event
from .encoding import TaskEncoder
from .faults import FaultPlan
from .scheduler import Delivery, EngineScheduler, Job, SentenceEnded, SentenceStarted
from .service import (
    CancelSynthesis,
    CloseConnection,
    DropConnection,
    ServerAction,
    ServerProtocol,
    StopAnswering,
    Synthesize,
)
from .words import Anchor, SentenceAudio

__all__ = ["Connection", "Transcript"]

_log = logging.getLogger("voicebridge.server")
_OUTBOX_HIGH = 32  # frames queued before the synthesizer waits for the sender
_STOP_TIMEOUT = 15.0  # seconds a connection's coroutines get to finish when it ends
_DROP_GRACE = 0.5  # seconds between the FIN and the abort of a dropped connection


@dataclass
class Transcript:
    """What one connection synthesized: per task id, the sentences whose sentence-end was sent."""

    connection: int
    tasks: dict[str, list[str]] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """All sentences of all tasks, in order."""
        return "".join(s for sentences in self.tasks.values() for s in sentences)


class _End(Enum):
    END = "end"  # the connection is over: close if still open, and stop the sender


_Outgoing = ServerEvent | CloseConnection | DropConnection | StopAnswering | _End


class Connection:
    """One accepted WebSocket; everything runs on the event loop except the engine."""

    def __init__(
        self,
        websocket: ServerConnection,
        protocol: ServerProtocol,
        scheduler: EngineScheduler,
        faults: FaultPlan,
        transcript: Transcript,
    ) -> None:
        self._ws = websocket
        self._protocol = protocol
        self._scheduler = scheduler
        self._loop = asyncio.get_running_loop()
        self._faults = faults
        self._transcript = transcript
        self._outbox: asyncio.Queue[_Outgoing] = asyncio.Queue()
        self._sentences: asyncio.Queue[Synthesize | None] = asyncio.Queue()
        self._encoder: tuple[str, TaskEncoder] | None = None
        self._stopped = False  # after a fault or a close: send nothing more
        self._rearm = asyncio.Event()  # the protocol's deadline may have moved
        self._ending = False  # the receiver is done: synthesize nothing more
        self._running: tuple[Job, asyncio.Queue[Delivery]] | None = None  # the sentence in work

    async def run(self) -> None:
        sender = asyncio.create_task(self._send_loop())
        synthesizer = asyncio.create_task(self._synthesis_loop())
        timer = asyncio.create_task(self._timer_loop())
        try:
            await self._receive_loop()
        finally:
            self._ending = True
            self._abandon()
            self._rearm.set()
            await _finish(timer)
            self._sentences.put_nowait(None)
            await _finish(synthesizer)
            self._outbox.put_nowait(_End.END)  # after what the synthesizer queued
            await _finish(sender)

    # ---- receiver and timer

    async def _receive_loop(self) -> None:
        """Until the connection closes (the timer's idle close included)."""
        while not self._protocol.closed:
            try:
                frame = await self._ws.recv()
            except ConnectionClosed:
                return
            now = self._loop.time()
            if isinstance(frame, bytes):
                self._dispatch(self._protocol.receive_binary(frame, now))
            else:
                self._dispatch(self._protocol.receive_text(frame, now))

    async def _timer_loop(self) -> None:
        while not (self._protocol.closed or self._ending):
            deadline = self._protocol.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - self._loop.time())
            self._rearm.clear()
            try:
                await asyncio.wait_for(self._rearm.wait(), timeout)
            except asyncio.TimeoutError:
                self._dispatch(self._protocol.poll(self._loop.time()))

    def _dispatch(self, actions: list[ServerAction]) -> None:
        """Route the protocol's actions: sentences to the synthesizer, the rest to the sender
        (CancelSynthesis needs nothing: the synthesizer checks the running task)."""
        self._rearm.set()
        for action in actions:
            if isinstance(action, Synthesize):
                self._sentences.put_nowait(action)
            elif isinstance(action, CancelSynthesis):
                self._abandon()
            else:
                self._outbox.put_nowait(action)

    def _abandon(self) -> None:
        """Give up the sentence in work now, even when its turn at the engine has not come."""
        if self._running is not None:
            job, results = self._running
            job.cancel()
            results.put_nowait(SentenceEnded())

    # ---- synthesizer

    async def _synthesis_loop(self) -> None:
        while (action := await self._sentences.get()) is not None:
            if not self._current(action.task_id):
                continue
            try:
                await self._synthesize(action)
            except VoiceBridgeError as exc:
                _log.warning("synthesis failed: %s", exc)
                self._dispatch(self._protocol.synthesis_failed(action.task_id, str(exc)))

    def _current(self, task_id: str) -> bool:
        return not (self._stopped or self._ending) and self._protocol.task_id == task_id

    async def _synthesize(self, action: Synthesize) -> None:
        task_id, index = action.task_id, action.index
        if self._encoder is None or self._encoder[0] != task_id:
            encoder = TaskEncoder(action.format, action.request.sample_rate)
            self._encoder = (task_id, encoder)
        encoder = self._encoder[1]
        results: asyncio.Queue[Delivery] = asyncio.Queue()
        job = self._scheduler.submit(self, action.request, self._handoff(results))
        self._running = (job, results)
        self._dispatch(self._protocol.sentence_begin(task_id, index, action.text))
        anchors: list[Anchor] = []
        samples, rate = 0, action.request.sample_rate
        try:
            while not isinstance(item := await results.get(), SentenceEnded):
                if not self._current(task_id):
                    return
                if isinstance(item, SentenceStarted):
                    rate = item.sample_rate
                elif isinstance(item, Anchor):
                    anchors.append(item)
                else:
                    samples += len(item) // 2
                    chunk = encoder.encode(item, rate)
                    self._dispatch(self._protocol.sentence_chunk(task_id, index, chunk))
                    if self._outbox.qsize() > _OUTBOX_HIGH:
                        await self._outbox.join()
        finally:
            job.cancel()  # a no-op once the sentence ended
            self._running = None
        if item.error is not None:
            raise item.error
        if not self._current(task_id):
            return
        self._dispatch(self._protocol.sentence_chunk(task_id, index, encoder.end_sentence()))
        audio = SentenceAudio(samples, rate, tuple(anchors))
        self._dispatch(
            self._protocol.sentence_done(task_id, index, action.text, self._loop.time(), audio)
        )

    def _handoff(self, results: asyncio.Queue[Delivery]) -> Callable[[Delivery], None]:
        """Called on the engine's thread: pass an item to this loop."""

        def handoff(item: Delivery) -> None:
            self._loop.call_soon_threadsafe(results.put_nowait, item)

        return handoff

    # ---- sender

    async def _send_loop(self) -> None:
        while True:
            item = await self._outbox.get()
            try:
                if item is _End.END or isinstance(item, CloseConnection):
                    self._stopped = True
                    await self._ws.close()
                    if item is _End.END:
                        return
                elif isinstance(item, DropConnection):
                    self._stopped = True
                    self._drop()
                elif isinstance(item, StopAnswering):
                    self._stopped = True
                elif not self._stopped:
                    await self._send_event(item)
            except ConnectionClosed:
                self._stopped = True
            finally:
                self._outbox.task_done()

    def _drop(self) -> None:
        """End TCP without a close frame. The frames already sent are delivered first (a FIN
        after them, then an abort): an immediate abort could turn into a reset that discards
        them, and a transcript would then list a sentence-end that the client never got."""
        transport = self._ws.transport
        if transport.can_write_eof():
            transport.write_eof()
            self._loop.call_later(_DROP_GRACE, transport.abort)
        else:
            transport.abort()

    async def _send_event(self, event: ServerEvent) -> None:
        if isinstance(event, TaskStarted) and self._faults.delay_task_started:
            await asyncio.sleep(self._faults.delay_task_started)
        elif isinstance(event, Audio) and self._faults.delay_audio:
            await asyncio.sleep(self._faults.delay_audio)
        await self._ws.send(encode_server_event(event))
        if isinstance(event, ResultGenerated) and event.type == "sentence-end":
            self._transcript.tasks.setdefault(event.task_id, []).append(event.original_text or "")


async def _finish(task: asyncio.Task[None]) -> None:
    """Wait for one of a connection's coroutines, bounded; cancel it if it does not end."""
    done, _ = await asyncio.wait({task}, timeout=_STOP_TIMEOUT)
    if not done:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    elif not task.cancelled() and (error := task.exception()) is not None:
        _log.error("connection coroutine failed", exc_info=error)
