"""SessionCore: the session's rules as a pure state machine (sans-I/O, the clock passed in).

Inputs: text from the source (:meth:`~SessionCore.feed`, :meth:`~SessionCore.flush`,
:meth:`~SessionCore.end_turn`, :meth:`~SessionCore.cancel`), what happened on the connection
(``connected``, ``text_frame``, ``audio_frame``, ``closed``...), and the time (:meth:`tick`).
Outputs: :data:`Action` values for the driver (open a connection, send a frame, ping, close)
and for the audio path (words placed, turn ended), plus :meth:`next_deadline`. Frames are built
by :class:`~voicebridge.protocol.ClientProtocol`, one per connection.

The rules (numbers in :class:`~voicebridge.session.settings.SessionSettings`):

- fragments: the fragmenter cuts the text; the first fragment of a turn and after a pause, and
  every fragment cut by length, are followed by a flush;
- idle flush, idle rollover, size rollover (the 23-second rule, docs/protocol.md);
- backpressure on the text side, from the audio buffered plus the audio owed;
- exactly once: the :class:`~voicebridge.session.ledger.Ledger` keeps what was sent and not
  spoken; failures replay it on a new task, within the turn's retry budget;
- liveness from progress: pings answer "alive?", stalls are failures.

Not thread-safe: the driver calls it under one lock.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from enum import Enum

from ..errors import (
    ConfigurationError,
    ConnectionLost,
    SynthesisTimeout,
    TaskFailedError,
    VoiceBridgeError,
)
from ..protocol import (
    ClientProtocol,
    ClientState,
    ResultGenerated,
    SynthesisParameters,
    TaskFailed,
    TaskFinished,
    TaskStarted,
    is_synthesis_notice,
)
from ..text.billing import count_characters
from ..text.fragmenter import Fragmenter
from ..turn import OpenSentence, Turn
from .actions import (
    Action,
    CheckStall,
    Close,
    Connect,
    Ping,
    Send,
    TurnEnded,
    WordsPlaced,
    retryable,
)
from .budget import RetryBudget
from .ledger import Acknowledgement, Ledger, Piece, WordTimes
from .liveness import Liveness
from .outbox import Outbox
from .pace import Pace
from .settings import SessionSettings

__all__ = ["SessionCore"]

log = logging.getLogger("voicebridge.session")


class _Link(Enum):
    DOWN = "down"
    CONNECTING = "connecting"
    UP = "up"


class SessionCore:
    """One session: one connection at a time, one turn at a time (see the module docstring).

    ``buffered_audio()`` returns the seconds of audio received and not yet played;
    ``bytes_per_second`` is the PCM rate of the audio timeline.
    """

    def __init__(
        self,
        parameters: SynthesisParameters,
        settings: SessionSettings | None = None,
        *,
        fragmenter: Fragmenter | None = None,
        bytes_per_second: int,
        buffered_audio: Callable[[], float] = lambda: 0.0,
        word_times: WordTimes = "sentence",
    ) -> None:
        self.parameters = parameters
        self.settings = settings = settings or SessionSettings()
        self._outbox = Outbox(fragmenter or Fragmenter(), settings)
        self._bps = bytes_per_second
        self._buffered_audio = buffered_audio
        self._word_times = word_times
        self._actions: list[Action] = []
        self._closed = False
        # the connection
        self._link = _Link.DOWN
        self._conn = 0  # id of the current connection; 0: none
        self._conn_ids = 0
        self._protocol = ClientProtocol()
        self._want_link = False  # preconnect() asked for a connection
        self._want_task = False  # preconnect(start_task=True) asked for a task
        self._retry_at: float | None = None
        self._budget = RetryBudget(settings)
        self._liveness = Liveness(settings)
        # the turn
        self._turn: Turn | None = None
        self._task_turn: Turn | None = None  # the turn the running task speaks for
        self._ledger = Ledger(bytes_per_second, word_times)
        self._replay: deque[Piece] = deque()  # to send again on the next task, first
        self._source_done = False
        self.sooner = False  # a deadline may have come sooner since the driver last looked
        self._sent_at = 0.0  # last text sent on the current task
        self._task_billed = 0
        self._pace = Pace(settings)
        self._recheck_at: float | None = None  # held back by backpressure: look again then

    # ------------------------------------------------------------------ the source's side

    @property
    def turn(self) -> Turn | None:
        return self._turn

    def begin_turn(self, turn: Turn, now: float) -> list[Action]:
        if self._closed:
            raise ConfigurationError("the session is closed")
        self._turn = turn
        self._outbox.reset()
        self._ledger = Ledger(self._bps, self._word_times)
        self._replay.clear()
        self._source_done = False
        self._budget.reset()
        self._retry_at = None
        if self._task_turn is None and self._protocol.state in (
            ClientState.STARTING,
            ClientState.STARTED,
        ):
            self._task_turn = turn  # a task started by preconnect() speaks for this turn
        return self._take(now)

    def feed(self, turn: Turn, text: str, now: float) -> list[Action]:
        """Text of ``turn``'s source. The source calls of a turn that is over (failed,
        cancelled) are ignored: a reader still running must never speak into the next turn."""
        if turn is not self._active() or not text:
            return []
        turn.characters_read += len(text)
        if turn.first_text_at is None:
            turn.first_text_at = now
        before = None if self.sooner else self._outbox.deadline()
        if not self._outbox.feed(text, now):  # most tokens: held, nothing else changes
            if not self.sooner:  # the idle timer started, or restarted after an idle flush
                after = self._outbox.deadline()
                self.sooner = after is not None and (before is None or after < before)
            return []
        return self._queued(now)

    def flush(self, turn: Turn, now: float) -> list[Action]:
        """The source says its text so far is complete: send and flush all of it."""
        if turn is self._active() and self._outbox.flush():
            return self._queued(now)
        return self._take(now)

    def end_turn(self, turn: Turn, now: float) -> list[Action]:
        """The source is exhausted: speak what is left, then end the turn."""
        if turn is self._active():
            self._source_done = True
            if self._outbox.end():
                return self._queued(now)
        return self._take(now)

    def cancel(self, now: float) -> list[Action]:
        """Barge-in: drop the turn's text, cancel its task, end it now."""
        turn = self._active()
        if turn is not None:
            self._drop_turn_text()
            self._stop_task(now)
            turn.finish()
            self._actions.append(TurnEnded(turn))
        return self._take(now)

    def preconnect(self, start_task: bool, now: float) -> list[Action]:
        self._want_link = True
        self._want_task = self._want_task or start_task
        return self._take(now)

    def close(self, now: float) -> list[Action]:
        """Stop for good: close the connection; a running turn ends with an error."""
        turn = self._active()
        if turn is not None:
            self._end_turn_with(ConfigurationError("the session was closed during the turn"), now)
        self._closed = True
        self._drop_link()
        return self._actions_only()

    # ------------------------------------------------------------------ the connection's side

    def connected(self, conn: int, now: float) -> list[Action]:
        if conn == self._conn and self._link is _Link.CONNECTING:
            self._link = _Link.UP
            self._budget.connected()
            self._protocol = ClientProtocol()
            self._liveness.restart(now)
        return self._take(now)

    def connect_failed(self, conn: int, error: VoiceBridgeError, now: float) -> list[Action]:
        if conn == self._conn:
            self._fail(error, now)
        return self._take(now)

    def send_failed(self, conn: int, error: VoiceBridgeError, now: float) -> list[Action]:
        return self.connect_failed(conn, error, now)

    def closed(self, conn: int, error: VoiceBridgeError | None, now: float) -> list[Action]:
        """The server closed ``conn``. During a turn that is a failure, also with no task
        running: the turn would reopen the link at once, so it gets the turn's backoff and
        budget (a gateway that closes every connection must not be reopened in a loop).
        Between turns the link is dropped; a preconnect() wish ends with it."""
        if conn == self._conn:
            if self._protocol.task_active or not self._ledger.empty or self._active() is not None:
                self._fail(error or ConnectionLost("the connection closed during a turn"), now)
            else:  # an idle connection closed (the service's 60 s idle close): open one later
                self._drop_link()
                self._want_link = self._want_task = False
        return self._take(now)

    def control_frame(self, conn: int, now: float) -> None:
        """A ping or pong: the peer is alive."""
        if conn == self._conn:
            self._liveness.heard(now)

    def audio_frame(self, conn: int, data: bytes, now: float) -> int:
        """An audio frame arrived: how many leading bytes to drop (-1: all). Receive thread."""
        if conn != self._conn:
            return -1
        self._liveness.progressed(now)
        try:
            self._protocol.receive_binary(data)
        except VoiceBridgeError as exc:
            self._fail(exc, now)
            return -1
        turn = self._task_turn
        if turn is None or turn is not self._turn or turn.done.is_set():
            return -1  # audio of a cancelled or finished turn
        skip = self._ledger.audio(len(data))
        if skip < len(data):
            turn.audio_bytes += len(data) - skip
            turn.last_audio_at = now
            if turn.first_audio_at is None:
                turn.first_audio_at = now
        return skip

    def text_frame(self, conn: int, text: str, now: float) -> list[Action]:
        if conn != self._conn:
            return self._take(now)
        self._liveness.progressed(now)
        if is_synthesis_notice(text):
            return []  # one before every audio frame; it says nothing the audio does not
        try:
            event = self._protocol.receive_text(text)
        except VoiceBridgeError as exc:  # malformed: like a dropped connection
            self._fail(exc, now)
            return self._take(now)
        if isinstance(event, TaskFailed):
            self._fail(TaskFailedError(event.code, event.message, event.task_id), now)
        elif isinstance(event, TaskStarted) and self._task_turn is not None:
            self._task_turn.task_ids.append(event.task_id)
        elif isinstance(event, ResultGenerated):
            self._result(event)
        elif isinstance(event, TaskFinished):
            self._task_finished(event)
        return self._take(now)

    # ------------------------------------------------------------------ time

    def tick(self, now: float) -> list[Action]:
        s = self.settings
        if self._active() is not None and self._outbox.idle(now):
            self._note_first_piece(now)
        if self._link is _Link.UP:
            self._check_liveness(now)
        if (
            self._link is _Link.UP
            and self._protocol.state is ClientState.STARTED
            and now >= self._sent_at + s.rollover_after
        ):
            log.debug("nothing sent for %.1f s: finishing the task (rollover)", s.rollover_after)
            self._finish_task(now)
        return self._take(now)

    def next_deadline(self) -> float | None:
        """When :meth:`tick` must run next, or None (nothing is timed)."""
        s = self.settings
        deadlines: list[float] = []
        idle = self._outbox.deadline()
        if idle is not None and self._active() is not None:
            deadlines.append(idle)
        if self._link is _Link.DOWN and self._retry_at is not None and self._needs_link():
            deadlines.append(self._retry_at)
        if self._link is _Link.UP:
            state = self._protocol.state
            if state is ClientState.STARTED:
                deadlines.append(self._sent_at + s.rollover_after)
            deadlines += self._liveness.deadlines(self._patience())
        if self._recheck_at is not None:
            deadlines.append(self._recheck_at)
        return min(deadlines, default=None)

    def stalled_unread(self, unread: bool, now: float) -> list[Action]:
        """The driver's answer to a suspected stall: is there data we have not read yet?"""
        if unread:
            self._liveness.heard(now)  # we are slow, not the server: give it time
        elif self._link is _Link.UP:
            self._fail(SynthesisTimeout("the server stopped answering (pings unanswered)"), now)
        return self._take(now)

    # ------------------------------------------------------------------ internals: text

    def _active(self) -> Turn | None:
        turn = self._turn
        return turn if turn is not None and not turn.done.is_set() else None

    def _queued(self, now: float) -> list[Action]:
        self._note_first_piece(now)
        return self._take(now)

    def _note_first_piece(self, now: float) -> None:
        turn = self._turn
        if turn is not None and turn.first_fragment_at is None:
            turn.first_fragment_at = now

    def _drop_turn_text(self) -> str:
        """Forget the turn's text that is not spoken; returns it."""
        unspoken = self._ledger.clear()  # the replay's pieces are still in the ledger
        self._replay.clear()
        return unspoken + self._outbox.reset()

    # ------------------------------------------------------------------ internals: tasks

    def _take(self, now: float) -> list[Action]:
        self.sooner = True
        if not self._closed:
            self._pump(now)
        self._liveness.owed(self._link is _Link.UP and self._owed(), now)
        return self._actions_only()

    def _actions_only(self) -> list[Action]:
        actions, self._actions = self._actions, []
        return actions

    def _needs_link(self) -> bool:
        """A connection is wanted: asked for, or a turn runs (opened at the turn's start, so the
        handshake overlaps the LLM's first token; the task starts with the first fragment)."""
        return self._want_link or self._active() is not None or not self._ledger.empty

    def _pump(self, now: float) -> None:
        """Do what the state allows: connect, start a task, send, finish, end the turn."""
        self._maybe_end_turn()
        if self._link is _Link.DOWN:
            if self._needs_link() and (self._retry_at is None or now >= self._retry_at):
                self._conn_ids += 1
                self._conn = self._conn_ids
                self._link = _Link.CONNECTING
                self._actions.append(Connect(self._conn))
            return
        if self._link is _Link.CONNECTING:
            return
        protocol = self._protocol
        if protocol.state is ClientState.IDLE and self._wants_task():
            self._start_task(now)
        if protocol.state is ClientState.STARTED:
            self._send_pieces(now)
        self._recheck_at = None
        if self._outbox.pieces and self._active() is not None and self._held_back():
            buffered, unspoken = self._buffered_audio(), self._ledger.unacked_billed
            self._recheck_at = now + self._pace.recheck_after(buffered, unspoken)
        self._maybe_end_turn()

    def _wants_task(self) -> bool:
        if self._replay or self._want_task:
            return True
        if self._active() is None:
            return False
        return bool(self._outbox.pieces) and not self._held_back()

    def _start_task(self, now: float) -> None:
        self._want_task = False
        self._task_turn = self._active()
        self._task_billed = 0
        self._sent_at = now
        self._send(self._protocol.run_task(self.parameters), now)

    def _send_pieces(self, now: float) -> None:
        while self._replay:
            piece = self._replay.popleft()
            self._write(piece, now)
        pieces = self._outbox.pieces
        while pieces and self._task_turn is self._active():
            piece = pieces[0]
            size = piece.billed
            if self._task_billed and self._task_billed + size > self.settings.max_task_characters:
                self._finish_task(now)  # size rollover; the piece opens the next task
                return
            if self._held_back():
                return
            pieces.popleft()
            self._ledger.sent(piece)
            self._write(piece, now)
            if self._task_turn is not None:
                self._task_turn.characters_sent += len(piece.text)
        if self._active() is not None and self._source_done and not pieces:
            self._finish_task(now)  # end of turn: the fragmenter was flushed by end_turn()

    def _write(self, piece: Piece, now: float) -> None:
        self._send(self._protocol.continue_task(piece.text), now)
        if piece.flush:
            self._send(self._protocol.flush(), now)
        self._task_billed += piece.billed
        self._sent_at = now

    def _send(self, frame: str, now: float) -> None:
        self._actions.append(Send(self._conn, frame))

    def _finish_task(self, now: float) -> None:
        if self._protocol.state is ClientState.STARTED:
            self._send(self._protocol.finish_task(), now)

    def _stop_task(self, now: float) -> None:
        """Cancel the running task (its audio is dropped from now on)."""
        state = self._protocol.state
        if self._link is _Link.UP and state is ClientState.STARTED:
            self._send(self._protocol.finish_task(cancel=True), now)
        elif self._link is not _Link.DOWN and state is not ClientState.IDLE:
            self._drop_link()  # cannot cancel a task that has not started: close instead

    def _maybe_end_turn(self) -> None:
        turn = self._active()
        if (
            turn is not None
            and self._source_done
            and not self._replay
            and self._outbox.empty
            and self._ledger.empty
            and not self._protocol.task_active
        ):
            turn.finish()
            self._actions.append(TurnEnded(turn))

    # ------------------------------------------------------------------ internals: events

    def _result(self, event: ResultGenerated) -> None:
        turn = self._task_turn
        if turn is None or turn is not self._active():
            return
        if event.type == "sentence-begin":
            start = self._ledger.sentence_begin()
            turn.open_sentence = OpenSentence(
                start,
                turn.characters_spoken,
                event.original_text or "",
                self._pace.seconds_per_character,
            )
        elif event.type == "sentence-end" or (event.type is None and event.original_text):
            turn.open_sentence = None
            ack = self._ledger.sentence_end(event.original_text, event.words)
            if ack is None:  # settled at task-finished
                log.debug("sentence-end text not at the head of the unspoken text")
            self._record(turn, ack)

    def _task_finished(self, event: TaskFinished) -> None:
        turn = self._task_turn
        self._task_turn = None
        if turn is None:
            return
        turn.billed_characters += self._protocol.characters
        if turn is not self._active():
            return
        turn.open_sentence = None  # the task is over: no sentence of it is still being spoken
        self._record(turn, self._ledger.task_finished(event.words))
        if not self._source_done or self._outbox.pieces:
            turn.rollovers += 1

    def _record(self, turn: Turn, ack: Acknowledgement | None) -> None:
        if ack is None:
            return
        if ack.text:
            turn.spoken.append(ack.text)
            turn.characters_spoken += len(ack.text)
            turn.sentences.append(ack.sentence)
            self._budget.progressed()
            self._pace.learn(count_characters(ack.text), ack.sentence.end - ack.sentence.start)
        if ack.words:
            turn.words.extend(ack.words)
            self._actions.append(WordsPlaced(turn, ack.words))

    # ------------------------------------------------------------------ internals: failures

    def _fail(self, error: VoiceBridgeError, now: float) -> None:
        """The connection or its task is gone: close it; replay within the turn's budget."""
        task_turn = self._task_turn
        if task_turn is not None:
            task_turn.billed_characters += self._protocol.characters
        self._task_turn = None
        self._drop_link()
        turn = self._active()
        if turn is None:
            self._ledger.clear()
            self._want_link = self._want_task = False
            log.info("connection lost between turns: %s", error)
            return
        replay = self._ledger.replay()
        if not retryable(error):
            self._end_turn_with(error, now)
            return
        delay = self._budget.failed(now)
        if delay is None:
            log.warning(
                "giving up the turn after %d failed attempts in %.1f s with nothing spoken: %s",
                self._budget.failures,
                self._budget.spent(now),
                error,
            )
            self._end_turn_with(error, now)
            return
        self._retry_at = now + delay
        self._replay = deque(replay)
        turn.reconnects += 1
        turn.replayed_characters += sum(p.billed for p in replay)
        log.warning("%s; retrying in %.1f s (attempt %d)", error, delay, self._budget.failures + 1)

    def _end_turn_with(self, error: VoiceBridgeError, now: float) -> None:
        turn = self._active()
        if turn is None:
            return
        error.unspoken_text = self._drop_turn_text()
        self._stop_task(now)
        turn.finish(error)
        self._actions.append(TurnEnded(turn))

    def _drop_link(self) -> None:
        if self._conn:
            self._actions.append(Close(self._conn))
        self._conn = 0
        self._link = _Link.DOWN
        self._protocol.fail()

    # ------------------------------------------------------------------ internals: timing

    def _owed(self) -> bool:
        """The server owes us an answer (task-started, audio, task-finished)."""
        state = self._protocol.state
        return state in (ClientState.STARTING, ClientState.FINISHING) or (
            state is ClientState.STARTED and not self._ledger.empty
        )

    def _patience(self) -> float:
        s = self.settings
        return (
            s.start_timeout if self._protocol.state is ClientState.STARTING else s.progress_timeout
        )

    def _check_liveness(self, now: float) -> None:
        verdict = self._liveness.check(now, self._patience())
        if verdict == "timeout":
            error = SynthesisTimeout(f"no progress from the server for {self._patience():g} s")
            self._fail(error, now)
        elif verdict == "suspect":
            self._actions.append(CheckStall(self._conn))
        elif verdict == "ping":
            self._actions.append(Ping(self._conn))

    def _held_back(self) -> bool:
        turn = self._active()
        if turn is None or not turn.characters_sent:
            return False  # the first words of a turn are never held
        return self._pace.held(self._buffered_audio(), self._ledger.unacked_billed)
