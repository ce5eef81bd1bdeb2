"""The turn's retry budget: how many failures, for how long, and the backoff between them. Pure.

Progress (a sentence spoken) gives the budget back; failures with nothing spoken in between
spend it (docs in :class:`~voicebridge.session.settings.SessionSettings`).
"""

from __future__ import annotations

from .settings import SessionSettings

__all__ = ["RetryBudget"]


class RetryBudget:
    """Counts failures since text was last spoken; says how long to wait, or to give up."""

    def __init__(self, settings: SessionSettings) -> None:
        self._settings = settings
        self.failures = 0
        self._since: float | None = None
        self._ever_connected = False  # the session reached the service once

    def reset(self) -> None:
        """A new turn: a full budget."""
        self.failures, self._since = 0, None

    def connected(self) -> None:
        self._ever_connected = True

    def progressed(self) -> None:
        """Text was spoken: the budget starts over."""
        self.reset()

    def failed(self, now: float) -> float | None:
        """One more failure: seconds to wait before the next attempt, or None when spent."""
        s = self._settings
        self.failures += 1
        if self._since is None:
            self._since = now
        window = s.retry_window if self._ever_connected else s.first_connect_window
        if self.failures > s.max_retries or now - self._since > window:
            return None
        return float(min(s.backoff_initial * 2 ** (self.failures - 1), s.backoff_max))

    def spent(self, now: float) -> float:
        """Seconds since the first failure with nothing spoken since."""
        return 0.0 if self._since is None else now - self._since
