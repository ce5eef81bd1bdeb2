"""The session's rules, as numbers: timers in seconds, sizes in billed characters (CJK = 2)."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigurationError
from ..protocol import TASK_IDLE_TIMEOUT
from ..text.billing import MAX_TASK_CHARACTERS

__all__ = ["SessionSettings"]


@dataclass(frozen=True)
class SessionSettings:
    """How a session speaks, waits and recovers. Every rule is stated once, in the core.

    Speech starts early:
      ``flush_first_fragment``: the first fragment of a turn, and the first after a pause, is
      followed by a flush, so the service speaks that clause now instead of waiting for the end
      of its sentence (``benchmarks/first_audio.py`` measures what it buys).
      ``idle_flush_after``: when the source is quiet this long, held text is sent and flushed up
      to its last whole word; a word cut by the pause is flushed only at ``rollover_after``.

    The 23-second rule (docs/protocol.md): ``rollover_after`` without sending text, the task is
    finished; the next text opens a new task on the same connection. A task is also finished
    before its billed total would pass ``max_task_characters``.

    Backpressure: fragments wait (text side, never the receive thread) while the audio not yet
    played, plus the audio expected for the text not yet spoken, exceeds ``max_buffered_audio``
    seconds. ``audio_per_character`` is the first guess of seconds per billed character; each
    spoken sentence refines it (the engine's real pace).

    Recovery, a budget per turn: after a failure (dropped connection, malformed frame,
    retryable task-failed, stall) the session reconnects after a backoff (``backoff_initial``
    doubling to ``backoff_max``) and replays what was not spoken. It gives up, with an error
    carrying the unspoken text, after ``max_retries`` failures or ``retry_window`` seconds with no
    sentence spoken in between. The 30 s default outlasts a process restart (a few seconds) and a
    pod replaced behind a Kubernetes Service, whose default readiness probe (10 s period, 3
    failures) takes up to 30 s to route around a dead backend. Until a session's first connection
    succeeds, failures are retried for ``first_connect_window`` seconds only: a wrong URL, a
    closed port or a service that is down is reported at once, not after 30 s.

    Liveness, from progress rather than silence: while an answer is owed, ``probe_after`` quiet
    seconds send a WebSocket ping; the server counts as gone after ``stall_timeout`` quiet
    seconds only if no ping was answered and nothing waits unread on our socket (a loaded
    machine reads late; a dead server does not answer). A server that answers pings but sends
    no task-started within ``start_timeout``, or no audio within ``progress_timeout`` while
    audio is owed, is treated as failed too.
    """

    flush_first_fragment: bool = True
    idle_flush_after: float = 0.6
    rollover_after: float = 8.0
    max_task_characters: int = MAX_TASK_CHARACTERS - 10_000
    max_buffered_audio: float = 30.0
    audio_per_character: float = 0.07
    max_retries: int = 10
    retry_window: float = 30.0
    first_connect_window: float = 2.0
    backoff_initial: float = 0.2
    backoff_max: float = 5.0
    probe_after: float = 3.0
    stall_timeout: float = 10.0
    start_timeout: float = 10.0
    progress_timeout: float = 60.0

    def __post_init__(self) -> None:
        limit = TASK_IDLE_TIMEOUT - 3
        if not 0 < self.rollover_after <= limit:
            raise ConfigurationError(
                f"rollover_after must be between 0 and {limit:g} s "
                f"(the service fails a task after {TASK_IDLE_TIMEOUT:g} s without text)"
            )
        if not 0 < self.idle_flush_after <= self.rollover_after:
            raise ConfigurationError("idle_flush_after must be positive and <= rollover_after")
        if not 0 < self.max_task_characters <= MAX_TASK_CHARACTERS:
            raise ConfigurationError(f"max_task_characters must be 1-{MAX_TASK_CHARACTERS}")
        if self.max_retries < 0 or self.retry_window < 0 or self.first_connect_window < 0:
            raise ConfigurationError("max_retries and the retry windows must not be negative")
        if not 0 < self.backoff_initial <= self.backoff_max:
            raise ConfigurationError("need 0 < backoff_initial <= backoff_max")
        if not 0 < self.probe_after < self.stall_timeout:
            raise ConfigurationError("need 0 < probe_after < stall_timeout")
        if self.max_buffered_audio <= 0 or self.audio_per_character <= 0:
            raise ConfigurationError("max_buffered_audio and audio_per_character must be > 0")
        if self.start_timeout <= 0 or self.progress_timeout <= 0:
            raise ConfigurationError("start_timeout and progress_timeout must be positive")
