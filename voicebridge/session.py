"""The synthesis session: text deltas in, audio out, every word spoken exactly once.

One worker thread owns the :class:`~voicebridge.client.SpeechSynthesizer` and the
:class:`~voicebridge.text.fragmenter.Fragmenter`; everything else talks to it through a command
queue. The connection's receive thread only enqueues (``put_nowait``) and hands audio on.

Rules the worker keeps (PROTOCOL.md "Limits and timers"):

- Idle flush: when no delta arrived for ``idle_flush_after`` s, text held by the fragmenter is sent.
- Idle rollover: when nothing was sent for ``rollover_after`` s (well under the server's 23 s),
  the task is finished; the next text opens a new task on the same connection.
- Size rollover: a task is finished before its billed total would pass ``max_task_characters``.
- Backpressure: while more than ``max_buffered_audio`` s of audio wait to be played (audio
  received and not played, plus the audio expected for unacknowledged text), fragments are held
  back here (text side), never in the receive callback; idle rollover still applies.
- Exactly once: text sent on a task stays "unacknowledged" until a sentence-end names it. When the
  connection drops, the server stops answering (``stall_timeout``) or a retryable task-failed
  arrives, the worker reconnects with backoff and replays only unacknowledged text; the audio of
  a sentence that was cut half-way is trimmed by the bytes already delivered, so nothing repeats.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from .client import ResultCallback, SpeechSynthesizer
from .errors import (
    ConfigurationError,
    ConnectionLost,
    HandshakeError,
    SynthesisTimeout,
    TaskFailedError,
    TransportError,
    VoiceBridgeError,
)
from .protocol import ResultGenerated, ServerEvent
from .text.billing import count_characters
from .text.fragmenter import Fragment, Fragmenter

__all__ = ["SessionSettings", "SpeechSession", "TurnRecord"]

log = logging.getLogger("voicebridge.session")

SERVER_IDLE_LIMIT = 23.0  # seconds without text before the service fails a task
_HOLD_POLL = 0.05  # seconds between checks of the playback buffer while fragments are held


@dataclass(frozen=True)
class SessionSettings:
    """Timers in seconds, sizes in billed characters (CJK ideograph = 2)."""

    idle_flush_after: float = 0.6
    rollover_after: float = 8.0
    max_task_characters: int = 190_000
    max_retries: int = 6
    backoff_initial: float = 0.1
    backoff_max: float = 2.0
    stall_timeout: float = 15.0
    finish_timeout: float = 120.0
    max_buffered_audio: float = 30.0  # seconds of unplayed audio before fragments are held back
    audio_per_character: float = 0.08  # seconds of speech one billed character is expected to make

    def __post_init__(self) -> None:
        if not 0 < self.rollover_after <= SERVER_IDLE_LIMIT - 3:
            raise ConfigurationError(
                f"rollover_after must be between 0 and {SERVER_IDLE_LIMIT - 3:g} s "
                f"(the service fails a task after {SERVER_IDLE_LIMIT:g} s without text)"
            )
        if not 0 < self.idle_flush_after <= self.rollover_after:
            raise ConfigurationError("idle_flush_after must be positive and <= rollover_after")


@dataclass
class TurnRecord:
    """What happened in one turn; times are ``time.monotonic()`` values, written by the worker
    (``first_audio_at`` by the receive thread)."""

    turn: int
    started_at: float
    first_text_at: float | None = None
    first_fragment_at: float | None = None
    first_audio_at: float | None = None
    last_audio_at: float | None = None
    fragments: int = 0
    billed_characters: int = 0
    task_ids: list[str] = field(default_factory=list)
    rollovers: int = 0
    reconnects: int = 0
    replayed_characters: int = 0
    interrupted: bool = False
    error: VoiceBridgeError | None = None
    done: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True)
class _Text:
    turn: int
    text: str


@dataclass(frozen=True)
class _EndTurn:
    turn: int


@dataclass(frozen=True)
class _Flush:
    turn: int


@dataclass(frozen=True)
class _Preconnect:
    start_task: bool


@dataclass(frozen=True)
class _SentenceEnd:
    task_id: str
    text: str | None


@dataclass(frozen=True)
class _Failure:
    task_id: str | None


class _Stop:
    pass


_Command = _Text | _EndTurn | _Flush | _Preconnect | _SentenceEnd | _Failure | _Stop


def _retryable(error: VoiceBridgeError) -> bool:
    if isinstance(error, TaskFailedError):
        return error.retryable
    if isinstance(error, HandshakeError):
        return error.status >= 500 or error.status == 429
    return isinstance(error, (ConnectionLost, SynthesisTimeout, TransportError))


class _Receiver(ResultCallback):
    """Runs on the receive thread: trims replayed audio, hands audio on, enqueues notices.

    ``position`` is the byte offset inside the sentence being synthesized; ``skip`` the number of
    bytes of the first sentence of a replay task that were already delivered before the failure.
    Both are touched only by the receive thread while a connection lives, and by the worker only
    after that connection's receive thread has been joined.
    """

    def __init__(self, session: SpeechSession) -> None:
        self._session = session
        self.position = 0
        self.in_sentence = False
        self.skip = 0

    def on_result(self, event: ServerEvent) -> None:
        self._session._last_progress_at = time.monotonic()
        if not isinstance(event, ResultGenerated):
            return
        if event.type == "sentence-begin":
            self.position = 0
            self.in_sentence = True
        elif event.type == "sentence-end":
            self.in_sentence = False
            self.skip = 0
            self._session._commands.put_nowait(_SentenceEnd(event.task_id, event.original_text))

    def on_data(self, data: bytes) -> None:
        now = self._session._last_progress_at = time.monotonic()
        start = self.position
        self.position += len(data)
        if start < self.skip:
            data = data[self.skip - start :]
        if data:
            self._session._deliver(data, now)

    def on_error(self, message: str) -> None:
        self._session._commands.put_nowait(_Failure(self._session._synth.task_id))


class SpeechSession:
    """Turns text deltas into speech over one synthesizer, on one worker thread.

    ``on_audio(turn, chunk)`` is called on the receive thread and must not block (the bridge passes
    the audio pipeline's ``receive``). Public methods are safe from any thread.
    """

    def __init__(
        self,
        synthesizer: Callable[[ResultCallback], SpeechSynthesizer],
        on_audio: Callable[[int, bytes], None],
        *,
        fragmenter: Callable[[], Fragmenter] = Fragmenter,
        settings: SessionSettings | None = None,
        buffered_audio: Callable[[], float] = lambda: 0.0,
    ) -> None:
        self.settings = settings or SessionSettings()
        self._receiver = _Receiver(self)
        self._synth = synthesizer(self._receiver)
        self._on_audio = on_audio
        self._fragmenter = fragmenter()
        self._buffered_audio = buffered_audio
        self._held: deque[str] = deque()  # fragments waiting for playback to catch up
        self._closing = False
        # Unbounded on purpose: it holds text deltas (small) that the LLM produced faster than
        # the worker sends them; its size is bounded by the answer's length.
        self._commands: queue.Queue[_Command] = queue.Queue()
        self._deferred: deque[_Command] = deque()  # commands set aside while waiting on a task
        self._turn: TurnRecord | None = None
        self._cancelled = -1
        self._unacked: deque[str] = deque()
        self._task_characters = 0
        self._last_delta_at = 0.0
        self._last_sent_at = 0.0
        self._last_progress_at = 0.0
        self._thread = threading.Thread(target=self._run, name="voicebridge-session", daemon=True)
        self._thread.start()

    @property
    def synthesizer(self) -> SpeechSynthesizer:
        return self._synth

    # ------------------------------------------------------------------ any thread

    def preconnect(self, *, start_task: bool = False) -> None:
        """Open the connection (and optionally start a task) before the first text arrives."""
        self._commands.put_nowait(_Preconnect(start_task))

    def begin_turn(self, turn: int) -> TurnRecord:
        record = TurnRecord(turn=turn, started_at=time.monotonic())
        self._turn = record
        return record

    def feed(self, turn: int, text: str) -> None:
        self._commands.put_nowait(_Text(turn, text))

    def flush(self, turn: int) -> None:
        """The source says its text is complete for now: send what the fragmenter holds."""
        self._commands.put_nowait(_Flush(turn))

    def end_turn(self, turn: int) -> None:
        self._commands.put_nowait(_EndTurn(turn))

    def cancel(self, turn: int) -> None:
        """Barge-in: drop the turn's text and audio; the worker cancels its task at once."""
        self._cancelled = turn
        self._commands.put_nowait(_EndTurn(turn))

    def close(self, timeout: float = 5.0) -> None:
        """Stop the worker, close the connection, join the threads (bounded)."""
        self._closing = True
        self._commands.put_nowait(_Stop())
        self._thread.join(timeout)
        self._synth.close()

    # ------------------------------------------------------------------ receive thread

    def _deliver(self, data: bytes, now: float) -> None:
        turn = self._turn
        if turn is None or turn.turn == self._cancelled:
            return
        if turn.first_audio_at is None:
            turn.first_audio_at = now
        turn.last_audio_at = now
        self._on_audio(turn.turn, data)

    # ------------------------------------------------------------------ worker thread

    def _run(self) -> None:
        while True:
            if self._deferred:
                command = self._deferred.popleft()
            else:
                try:
                    command = self._commands.get(timeout=self._next_timer())
                except queue.Empty:
                    self._guard(self._on_timer)
                    continue
            if isinstance(command, _Stop):
                return
            self._guard(functools.partial(self._handle, command))

    def _guard(self, action: Callable[[], None]) -> None:
        """Run a worker step; an error ends the current turn with that error."""
        try:
            action()
        except VoiceBridgeError as exc:
            self._end_turn_with(exc)
        except Exception as exc:  # a bug must not leave the caller waiting forever
            log.exception("session worker step failed")
            self._end_turn_with(VoiceBridgeError(f"internal error in the session worker: {exc!r}"))

    def _active_turn(self, turn: int) -> TurnRecord | None:
        record = self._turn
        if record is None or record.turn != turn or record.done.is_set():
            return None
        return record

    def _handle(self, command: _Command) -> None:
        now = time.monotonic()
        if isinstance(command, _Text):
            record = self._active_turn(command.turn)
            if record is None or command.turn == self._cancelled:
                return
            self._last_delta_at = now
            self._hold(self._fragmenter.feed(command.text))
        elif isinstance(command, _Flush):
            if self._active_turn(command.turn) is not None and command.turn != self._cancelled:
                self._hold(self._fragmenter.flush())
        elif isinstance(command, _EndTurn):
            record = self._active_turn(command.turn)
            if record is None:
                return
            if command.turn == self._cancelled:
                self._cancel_task()
                record.interrupted = True
                record.done.set()
                return
            self._held.extend(f.text for f in self._fragmenter.flush())
            if not self._send_all_held(record):
                return  # cancelled while waiting for playback
            self._complete_task()
            record.done.set()
        elif isinstance(command, _Preconnect):
            self._synth.connect()
            if command.start_task and not self._synth.task_active:
                self._start_task()
        elif isinstance(command, _SentenceEnd):
            if command.task_id == self._synth.task_id:
                self._acknowledge(command.text)
        elif isinstance(command, _Failure) and command.task_id == self._synth.task_id:
            self._recover()

    def _next_timer(self) -> float | None:
        """Seconds until the next idle flush or rollover; None if nothing is due."""
        deadlines = []
        if self._held:
            deadlines.append(time.monotonic() + _HOLD_POLL)
        if self._fragmenter.pending:
            deadlines.append(self._last_delta_at + self.settings.idle_flush_after)
        if self._synth.task_active:
            deadlines.append(self._last_sent_at + self.settings.rollover_after)
        if not deadlines:
            return None
        return max(0.0, min(deadlines) - time.monotonic())

    def _on_timer(self) -> None:
        now = time.monotonic()
        s = self.settings
        self._send_held()
        if self._fragmenter.pending and now - self._last_delta_at >= s.idle_flush_after:
            self._hold(self._fragmenter.flush())
        elif self._synth.task_active and now - self._last_sent_at >= s.rollover_after:
            log.debug("idle for %.1f s: finishing the task (rollover)", s.rollover_after)
            self._complete_task()
            if self._turn is not None:
                self._turn.rollovers += 1

    # ------------------------------------------------------------------ backpressure

    def _hold(self, fragments: list[Fragment]) -> None:
        self._held.extend(f.text for f in fragments)
        self._send_held()

    def _send_held(self) -> None:
        """Send held fragments while the unplayed audio is under ``max_buffered_audio``."""
        limit = self.settings.max_buffered_audio
        while self._held and self._owed_audio() < limit:
            self._send(self._held.popleft())

    def _owed_audio(self) -> float:
        """Seconds of audio not played yet: buffered, plus expected for unacknowledged text."""
        owed = sum(count_characters(text) for text in self._unacked)
        return self._buffered_audio() + owed * self.settings.audio_per_character

    def _send_all_held(self, record: TurnRecord) -> bool:
        """End of turn: send every held fragment as playback makes room, keeping the task alive
        with rollovers meanwhile. False if the turn was cancelled while waiting."""
        while True:
            self._send_held()
            if not self._held:
                return True
            if self._cancelled == record.turn or self._closing:
                return False
            self._replay_if_task_died()
            idle = time.monotonic() - self._last_sent_at
            if self._synth.task_active and idle >= self.settings.rollover_after:
                self._complete_task()
                record.rollovers += 1
            self._drain_notices()
            time.sleep(_HOLD_POLL)

    # ------------------------------------------------------------------ tasks

    def _start_task(self) -> None:
        task_id = self._synth.start()
        now = time.monotonic()
        self._task_characters = 0
        self._last_sent_at = now
        self._last_progress_at = now
        if self._turn is not None:
            self._turn.task_ids.append(task_id)

    def _send(self, text: str) -> None:
        """Send one fragment, opening or rolling over the task as needed."""
        record = self._turn
        if record is not None and record.first_fragment_at is None:
            record.first_fragment_at = time.monotonic()  # before any connect, as the SDK measures
        size = count_characters(text)
        self._replay_if_task_died()
        if self._synth.task_active and (
            self._task_characters + size > self.settings.max_task_characters
        ):
            self._complete_task()
            if record is not None:
                record.rollovers += 1
        if not self._synth.task_active:
            self._with_recovery(self._start_task)
        self._unacked.append(text)
        self._task_characters += size
        try:
            self._synth.streaming_call(text)
        except VoiceBridgeError as exc:
            if not _retryable(exc):
                raise
            self._recover()
        self._last_sent_at = time.monotonic()
        if record is not None:
            record.fragments += 1

    def _complete_task(self) -> None:
        """Finish the task and wait (bounded, stall-checked) for task-finished; replays on
        failure until the text is spoken or the retries are spent."""
        self._replay_if_task_died()
        while self._synth.task_active:
            try:
                self._synth.finish()
                deadline = time.monotonic() + self.settings.finish_timeout
                while not self._synth.wait_done(0.05):
                    self._drain_notices()
                    if self._closing or self._cancelled == getattr(self._turn, "turn", None):
                        self._synth.close()  # stops synthesis at once; the next turn reconnects
                        self._unacked.clear()
                        return
                    now = time.monotonic()
                    stalled = now - self._last_progress_at >= self.settings.stall_timeout
                    if stalled or now >= deadline:
                        log.warning("no task-finished and no progress: reconnecting")
                        raise SynthesisTimeout("the server stopped answering before task-finished")
            except VoiceBridgeError as exc:
                if not _retryable(exc):
                    raise
                self._recover()
                continue
            self._record_billing()
            self._unacked.clear()

    def _replay_if_task_died(self) -> None:
        """Text still owed by a task that is no longer active means the task failed (or its
        connection dropped) between two steps: replay it before going on."""
        if self._unacked and not self._synth.task_active:
            self._recover()

    def _drain_notices(self) -> None:
        """While waiting for task-finished, keep acknowledging sentences; other commands wait
        in ``_deferred`` (failures show up through ``wait_done``)."""
        while True:
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                return
            if isinstance(command, _SentenceEnd):
                self._handle(command)
            elif not isinstance(command, _Failure):
                self._deferred.append(command)

    def _cancel_task(self) -> None:
        self._fragmenter.reset()
        self._held.clear()
        self._unacked.clear()
        if self._synth.task_active:
            try:
                self._synth.streaming_cancel(timeout=2.0)
            except VoiceBridgeError:
                self._synth.close()
        self._record_billing()

    def _record_billing(self) -> None:
        if self._turn is not None:
            self._turn.billed_characters += self._synth.characters

    def _acknowledge(self, text: str | None) -> None:
        """Drop the sentence the server has spoken from the head of the unacknowledged text."""
        if not text or not self._unacked:
            return
        head = "".join(self._unacked)
        spoken = text.strip()
        stripped = head.lstrip()
        offset = len(head) - len(stripped)
        if stripped.startswith(spoken):
            cut = offset + len(spoken)
        else:
            found = head.find(spoken)
            if found < 0:
                log.debug("sentence-end text not found in unacknowledged text: %r", spoken[:40])
                return
            cut = found + len(spoken)
        while cut < len(head) and head[cut].isspace():
            cut += 1
        rest = head[cut:]
        self._unacked.clear()
        if rest:
            self._unacked.append(rest)

    # ------------------------------------------------------------------ recovery

    def _with_recovery(self, action: Callable[[], None]) -> None:
        delay = self.settings.backoff_initial
        for attempt in range(self.settings.max_retries + 1):
            try:
                action()
                return
            except VoiceBridgeError as exc:
                if not _retryable(exc) or attempt == self.settings.max_retries:
                    raise
                log.warning("attempt %d failed (%s); retrying in %.2f s", attempt + 1, exc, delay)
                self._synth.close()
                time.sleep(delay)
                delay = min(delay * 2, self.settings.backoff_max)

    def _recover(self) -> None:
        """Reconnect and replay the unacknowledged text on a new task."""
        error = self._synth.error
        if error is not None and not _retryable(error):
            raise error
        self._synth.close()  # joins the receive thread: the receiver's counters are final
        self._drain_notices()  # sentence-ends it queued before dying still count
        receiver = self._receiver
        if receiver.in_sentence:  # else the skip stands: a replay that died before it began
            receiver.skip = max(receiver.skip, receiver.position)
        receiver.position = 0
        receiver.in_sentence = False
        self._record_billing()
        replay = list(self._unacked)
        self._unacked.clear()
        record = self._turn
        if record is not None:
            record.reconnects += 1
            record.replayed_characters += sum(count_characters(t) for t in replay)
        log.info("replaying %d unacknowledged fragment(s) on a new task", len(replay))

        def restart() -> None:
            self._start_task()
            for text in replay:
                self._synth.streaming_call(text)

        self._with_recovery(restart)
        self._unacked.extend(replay)
        self._task_characters = sum(count_characters(t) for t in replay)
        self._last_sent_at = self._last_progress_at = time.monotonic()

    def _end_turn_with(self, error: VoiceBridgeError) -> None:
        record = self._turn
        self._fragmenter.reset()
        self._held.clear()
        self._unacked.clear()
        with contextlib.suppress(VoiceBridgeError):
            self._synth.close()
        if record is not None and not record.done.is_set():
            record.error = error
            record.done.set()
        else:
            log.error("session error outside a turn: %s", error)
