"""AudioPipeline: one janus queue between the WebSocket receive thread and the sinks.

Threads:

* the receive thread calls :meth:`AudioPipeline.receive`, :meth:`AudioPipeline.receive_words` and
  :meth:`AudioPipeline.end_turn`; they only ``put_nowait`` on the janus queue (unbounded:
  backpressure belongs to the text side, which reads :attr:`AudioPipeline.buffered_seconds`) and
  never wait on a sink;
* a dispatcher thread (:mod:`.dispatcher`) reads the queue's sync side and hands each chunk to
  the listeners, then to every sink, in order; word timings reach the listeners in the same
  order. Sinks that may block get a dispatcher of their own; sinks that never block
  (``shares_dispatcher = True``) share the process's one;
* the caller's thread runs ``begin_turn``, ``wait_turn_done``, ``interrupt`` and ``close``.

End of speech drains (every sink plays or flushes all of the turn); interrupt discards (queued
audio is dropped at once, sinks abort, later chunks of the cancelled turn are ignored).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ..errors import AudioError, ConfigurationError, SynthesisTimeout
from .chunk_queue import Signal
from .dispatcher import Dispatcher, acquire_shared, release_shared
from .format import PcmFormat
from .sink import MeteredSink, Sink

__all__ = ["AudioPipeline", "PipelineListener", "TurnAudioStats"]

logger = logging.getLogger(__name__)

_KEPT_TURNS = 64  # stats of this many recent turns stay readable


class PipelineListener(Protocol):
    """Sees a turn's audio and words on the dispatcher thread, before the sinks; must not block.
    ``start`` is the chunk's place on the turn's timeline, in seconds."""

    def on_audio(self, turn: int, chunk: bytes, start: float) -> None: ...

    def on_words(self, turn: int, words: tuple[object, ...]) -> None: ...


@dataclass(frozen=True)
class _Words:
    words: tuple[object, ...]


@dataclass(frozen=True)
class TurnAudioStats:
    """Audio figures of one turn. ``first_write_at`` is ``time.monotonic()`` seconds."""

    turn: int
    first_write_at: float | None  # when the first chunk was handed to the sinks
    audio_seconds: float  # audio handed to the sinks
    bytes: int
    underruns: int  # gaps the players had to fill during the turn
    interrupted: bool
    done: bool
    played_seconds: float | None  # when interrupted: the audio a listener had heard by then


@dataclass
class _TurnState:
    turn: int
    bytes: int = 0
    first_write_at: float | None = None
    underrun_base: list[int] = field(default_factory=list)
    underruns: int = 0
    ended: bool = False
    interrupted: bool = False
    played_seconds: float | None = None
    received: int = 0  # audio bytes queued (written by the receive thread only)
    handled: int = 0  # audio bytes taken off the queue (written by the dispatcher only)
    error: AudioError | None = None
    failed_sinks: set[int] = field(default_factory=set)
    done: threading.Event = field(default_factory=threading.Event)
    waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = field(
        default_factory=list
    )


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class AudioPipeline:
    """Fans the audio of successive turns out to ``sinks`` from one dispatcher thread.

    ``sinks`` are started here (an :class:`AudioError` from one closes the others and propagates)
    and closed by :meth:`close`. ``abort_timeout`` bounds how long :meth:`interrupt` waits for a
    sink's ``write`` to return after ``abort()``.
    """

    def __init__(self, sinks: Sequence[Sink], fmt: PcmFormat, *, abort_timeout: float = 1.0):
        if not sinks:
            raise ConfigurationError("AudioPipeline needs at least one sink")
        self.fmt = fmt
        self._sinks = tuple(sinks)
        self._metered = tuple(s for s in self._sinks if isinstance(s, MeteredSink))
        self._abort_timeout = abort_timeout
        self._start_sinks()
        self._shared = all(getattr(sink, "shares_dispatcher", False) for sink in self._sinks)
        self._dispatcher = acquire_shared() if self._shared else Dispatcher()
        self._drained = threading.Event()  # close(): the dispatcher has run all of our items
        self._states: dict[int, _TurnState] = {}
        self._state_lock = threading.Lock()  # turns, states, waiters; never taken by receive()
        self._write_lock = threading.RLock()  # dispatcher's check-and-write vs. interrupt()
        self._current_turn = 0
        self._cancelled_through = 0  # receive() drops chunks of turns <= this
        self._listeners: list[PipelineListener] = []
        self._closed = False

    # -- caller thread -------------------------------------------------------------------------

    def begin_turn(self) -> int:
        """Open a new turn and return its id (ids increase from 1)."""
        if self._closed:
            raise AudioError("the audio pipeline is closed")
        with self._state_lock:
            self._current_turn += 1
            turn = self._current_turn
            self._states[turn] = _TurnState(turn)
            for old in [t for t in self._states if t <= turn - _KEPT_TURNS]:
                if self._states[old].done.is_set():
                    del self._states[old]
        return turn

    def add_listener(self, listener: PipelineListener) -> None:
        """Also hand every chunk and word of every turn to ``listener`` (dispatcher thread)."""
        self._listeners = [*self._listeners, listener]

    def remove_listener(self, listener: PipelineListener) -> None:
        self._listeners = [x for x in self._listeners if x is not listener]

    def wait_turn_done(self, turn: int, timeout: float) -> None:
        """Block until every sink played/flushed all audio of ``turn`` (or it was interrupted).

        Raises :class:`SynthesisTimeout` after ``timeout`` seconds, :class:`AudioError` if a sink
        failed during the turn.
        """
        state = self._state(turn)
        if not state.done.wait(timeout):
            raise SynthesisTimeout(f"audio of turn {turn} was not played within {timeout:.1f} s")
        if state.error is not None:
            raise state.error

    async def await_turn_done(self, turn: int, timeout: float) -> None:
        """:meth:`wait_turn_done` for asyncio: waits without blocking the event loop."""
        state = self._state(turn)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        waiter = (loop, future)
        with self._state_lock:
            if state.done.is_set():
                future.set_result(None)
            else:
                state.waiters.append(waiter)
        try:
            await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            raise SynthesisTimeout(
                f"audio of turn {turn} was not played within {timeout:.1f} s"
            ) from None
        finally:
            with self._state_lock:
                if waiter in state.waiters:
                    state.waiters.remove(waiter)
        if state.error is not None:
            raise state.error

    def interrupt(self) -> None:
        """Barge-in: drop all queued and buffered audio of the current and earlier turns now.

        Sinks are aborted (a player stops within one device buffer); chunks of those turns that
        arrive later are dropped by :meth:`receive`; their ``wait_turn_done`` returns. Nothing
        of a cancelled turn is written to a sink after this returns. Any thread; the next
        :meth:`begin_turn` comes after it returns, not at the same time.
        """
        with self._state_lock:
            turn = self._cancelled_through = self._current_turn
            current = self._states.get(turn)
        if current is not None and not current.done.is_set():
            unplayed = max((s.buffered_seconds for s in self._metered), default=0.0)
            current.played_seconds = max(0.0, self.fmt.seconds(current.bytes) - unplayed)
        self._abort_sinks()  # unblocks a write() in progress on the dispatcher
        if self._write_lock.acquire(timeout=self._abort_timeout):
            try:
                self._abort_sinks()  # drops what that last write() added
            finally:
                self._write_lock.release()
        else:
            logger.warning(
                "a sink's write() did not return within %.1f s of abort()", self._abort_timeout
            )
        with self._state_lock:
            pending = [s for s in self._states.values() if s.turn <= turn and not s.done.is_set()]
        for state in pending:
            self._settle(state)

    @property
    def buffered_seconds(self) -> float:
        """Audio received but not yet played (or consumed): queue plus the fullest sink buffer."""
        live = [s for s in list(self._states.values()) if s.turn > self._cancelled_through]
        queued = self.fmt.seconds(max(0, sum(s.received - s.handled for s in live)))
        return queued + max((s.buffered_seconds for s in self._metered), default=0.0)

    def turn_stats(self, turn: int) -> TurnAudioStats:
        state = self._state(turn)
        return TurnAudioStats(
            turn=turn,
            first_write_at=state.first_write_at,
            audio_seconds=self.fmt.seconds(state.bytes),
            bytes=state.bytes,
            underruns=state.underruns,
            interrupted=state.interrupted,
            done=state.done.is_set(),
            played_seconds=state.played_seconds,
        )

    def close(self, timeout: float = 5.0) -> None:
        """Discard pending audio, stop the dispatcher, close the sinks; join within ``timeout``."""
        if self._closed:
            return
        self._closed = True
        self.interrupt()
        deadline = time.monotonic() + timeout
        self._dispatcher.put(self._handle, 0, Signal.STOP)
        drained = self._drained.wait(timeout)
        rest = max(0.0, deadline - time.monotonic())  # one timeout for the drain and the join
        if self._shared:
            release_shared(rest)
        elif not self._dispatcher.stop(rest):
            drained = False
        errors: list[BaseException] = []
        for sink in self._sinks:
            try:
                sink.close()
            except Exception as exc:
                errors.append(exc)
        if not drained:
            raise AudioError(f"the audio dispatcher did not stop within {timeout:.1f} s")
        if errors:
            raise _as_audio_error("close", errors[0])

    def __enter__(self) -> AudioPipeline:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- receive thread ------------------------------------------------------------------------

    def receive(self, turn: int, chunk: bytes) -> None:
        """Queue a chunk of ``turn``. Receive thread only; never blocks, never raises for audio."""
        state = self._states.get(turn)
        if state is None or turn <= self._cancelled_through or not chunk or self._closed:
            return
        state.received += len(chunk)
        self._dispatcher.put(self._handle, turn, chunk)

    def receive_words(self, turn: int, words: tuple[object, ...]) -> None:
        """Word timings of ``turn``, for the listeners, after the audio queued before them."""
        if turn <= self._cancelled_through or not words or self._closed:
            return
        self._dispatcher.put(self._handle, turn, _Words(words))

    def end_turn(self, turn: int) -> None:
        """No more audio for ``turn``: the sinks drain it. Never blocks."""
        if turn <= self._cancelled_through or self._closed:
            return
        self._dispatcher.put(self._handle, turn, Signal.END)

    # -- dispatcher thread ---------------------------------------------------------------------

    def _handle(self, turn: int, payload: object) -> None:
        """One item of this pipeline, in queue order (dispatcher thread)."""
        if payload is Signal.STOP:
            self._drained.set()
            return
        state = self._states.get(turn)
        if state is None:
            return
        size = len(payload) if isinstance(payload, bytes) else 0
        try:
            if turn <= self._cancelled_through or self._drained.is_set():
                return
            if payload is Signal.END:
                self._finish(state)
            elif isinstance(payload, _Words):
                for listener in self._listeners:
                    listener.on_words(turn, payload.words)
            elif state.ended or not size:
                logger.warning("audio for turn %d after end_turn() dropped", turn)
            else:
                with self._write_lock:
                    if turn > self._cancelled_through:
                        self._write(state, payload)  # type: ignore[arg-type]
        finally:
            state.handled += size

    def _write(self, state: _TurnState, chunk: bytes) -> None:
        if state.first_write_at is None:
            state.first_write_at = time.monotonic()
            state.underrun_base = [s.underruns for s in self._metered]
        start = self.fmt.seconds(state.bytes)
        for listener in self._listeners:
            listener.on_audio(state.turn, chunk, start)
        for index, sink in enumerate(self._sinks):
            if index not in state.failed_sinks:
                try:
                    sink.write(chunk)
                except Exception as exc:
                    self._fail(state, index, "write", exc)
        state.bytes += len(chunk)

    def _finish(self, state: _TurnState) -> None:
        state.ended = True
        for index, sink in enumerate(self._sinks):
            if state.turn <= self._cancelled_through:
                break  # interrupted while draining: the other sinks were aborted, not drained
            if index not in state.failed_sinks:
                try:
                    sink.drain()
                except Exception as exc:
                    self._fail(state, index, "drain", exc)
        self._settle(state)

    # -- any thread ----------------------------------------------------------------------------

    def _fail(self, state: _TurnState, index: int, what: str, exc: Exception) -> None:
        """Take a failed sink out of the rest of the turn; the turn's waiter gets the error."""
        state.failed_sinks.add(index)
        logger.warning(
            "sink %d (%s) failed in %s(): %s", index, type(self._sinks[index]).__name__, what, exc
        )
        if state.error is None:
            state.error = _as_audio_error(f"{type(self._sinks[index]).__name__}.{what}()", exc)

    def _settle(self, state: _TurnState) -> None:
        """Record the turn's underruns and wake its waiters (once)."""
        with self._state_lock:
            if state.done.is_set():
                return
            state.interrupted = state.turn <= self._cancelled_through
            if state.underrun_base:
                now = [s.underruns for s in self._metered]
                state.underruns = sum(n - b for n, b in zip(now, state.underrun_base, strict=True))
            state.done.set()
            waiters, state.waiters = state.waiters, []
        for loop, future in waiters:
            if not loop.is_closed():
                loop.call_soon_threadsafe(_wake, future)

    def _abort_sinks(self) -> None:
        for sink in self._sinks:
            try:
                sink.abort()
            except Exception:
                logger.exception("sink %s failed in abort()", type(sink).__name__)

    def _state(self, turn: int) -> _TurnState:
        state = self._states.get(turn)
        if state is None:
            raise ConfigurationError(f"unknown or expired audio turn {turn}")
        return state

    def _start_sinks(self) -> None:
        started: list[Sink] = []
        for sink in self._sinks:
            try:
                sink.start(self.fmt)
            except Exception as exc:
                for other in started:
                    try:
                        other.close()
                    except Exception:
                        logger.exception("sink %s failed in close()", type(other).__name__)
                raise _as_audio_error(f"{type(sink).__name__}.start()", exc) from exc
            started.append(sink)


def _as_audio_error(where: str, exc: BaseException) -> AudioError:
    if isinstance(exc, AudioError):
        return exc
    error = AudioError(f"{where} failed: {type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error
