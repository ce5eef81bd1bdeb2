"""Is the service alive and working? Judged from progress, not from wall-clock silence alone. Pure.

While an answer is owed (task-started, audio, task-finished), silence is measured from the last
frame or from when the answer became owed, whichever is later. After ``probe_after`` quiet
seconds a ping asks "alive?"; after ``stall_timeout`` the driver checks whether data waits unread
on our own socket (a loaded machine reads late: not the server's fault) before the connection
counts as gone. Separately, no progress for the patience of the current step (``start_timeout``
before task-started, ``progress_timeout`` after) fails the task, pings answered or not.
"""

from __future__ import annotations

from typing import Literal

from .settings import SessionSettings

__all__ = ["Liveness", "Verdict"]

Verdict = Literal["ping", "suspect", "timeout"]


class Liveness:
    """The quiet and progress clocks of the current connection."""

    def __init__(self, settings: SessionSettings) -> None:
        self._settings = settings
        self.heard_at = 0.0  # last frame of any kind, or when an answer became owed
        self.progress_at = 0.0  # last task event or audio, or when an answer became owed
        self._pinged = False
        self._owed = False

    def restart(self, now: float) -> None:
        """A new connection."""
        self.heard_at = self.progress_at = now
        self._pinged = self._owed = False

    def heard(self, now: float) -> None:
        """Any frame (a pong included): the peer is alive."""
        self.heard_at = now
        self._pinged = False

    def progressed(self, now: float) -> None:
        """A task event or audio: the peer is working."""
        self.heard(now)
        self.progress_at = now

    def owed(self, owed: bool, now: float) -> None:
        """Whether an answer is owed, after each input; silence counts from when it became so."""
        if owed and not self._owed:
            self.progressed(now)
        self._owed = owed

    def deadlines(self, patience: float) -> list[float]:
        if not self._owed:
            return []
        s = self._settings
        quiet = s.stall_timeout if self._pinged else s.probe_after
        return [self.heard_at + quiet, self.progress_at + patience]

    def check(self, now: float, patience: float) -> Verdict | None:
        """What the time says: ping, suspect a stall (check unread data), or give up."""
        if not self._owed:
            return None
        s = self._settings
        if now >= self.progress_at + patience:
            return "timeout"
        if self._pinged and now >= self.heard_at + s.stall_timeout:
            return "suspect"
        if not self._pinged and now >= self.heard_at + s.probe_after:
            self._pinged = True
            return "ping"
        return None
