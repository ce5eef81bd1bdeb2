"""The page's player as the bridge sees it: a sink that knows how much audio is still unplayed.

The audio itself reaches the page through ``astream_events``; this sink only keeps count, so that
the bridge treats the browser like a speaker: ``buffered_seconds`` (audio handed over and not yet
played by the page) feeds the bridge's text-side backpressure and, at an interrupt, tells it
how much was heard (``TurnMetrics.heard_text``); ``drain`` returns when the page says the turn
has played to its end, so a turn lasts as long as its playback. When the turn's audio has all
been handed over, ``drain`` first calls ``on_drain(samples)`` (the page learns the turn's length
and plays its last chunk without waiting for more).

Threads: ``write``/``drain`` run on the bridge's dispatcher thread; :meth:`begin_turn` and
:meth:`report` on the server's event loop; ``abort`` on any thread. One lock guards the counts.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ..audio import PcmFormat
from ..errors import AudioError

__all__ = ["PageSink"]


class PageSink:
    """Counts one turn's audio: written (bytes handed to the page) against played (reported).

    ``drain`` fails with :class:`AudioError` when the page reports no progress for
    ``stall_timeout`` seconds while audio is unplayed (a page that stopped playing or reporting).
    """

    def __init__(self, on_drain: Callable[[int], None], stall_timeout: float = 10.0) -> None:
        self.on_drain = on_drain
        self.stall_timeout = stall_timeout
        self._fmt = PcmFormat(22050)  # replaced by start()
        self._changed = threading.Condition()
        self._written = 0  # bytes of the current turn
        self._played = 0.0  # seconds of the current turn the page played
        self._finished = False  # the page played the turn to its end
        self._aborted = False
        self._underruns = 0  # cumulative, all turns

    def begin_turn(self) -> None:
        """A new turn starts (before its first chunk)."""
        with self._changed:
            self._written = 0
            self._played = 0.0
            self._finished = False
            self._aborted = False

    def report(self, played: float, *, finished: bool = False, underruns: int = 0) -> None:
        """The page played ``played`` seconds of the current turn (``finished``: all of it) and
        had ``underruns`` more gaps since its last report."""
        with self._changed:
            self._played = max(self._played, played)
            self._finished = self._finished or finished
            self._underruns += underruns
            self._changed.notify_all()

    def stopped_at(self, heard: float) -> None:
        """Stop: the listener heard ``heard`` seconds of the current turn; the rest is unplayed
        (call before the bridge's interrupt, which reads :attr:`buffered_seconds`)."""
        with self._changed:
            self._played = heard

    # -- Sink protocol -------------------------------------------------------------------------

    def start(self, fmt: PcmFormat) -> None:
        self._fmt = fmt

    def write(self, chunk: bytes) -> None:
        with self._changed:
            self._written += len(chunk)

    def drain(self) -> None:
        """Until the page reports the turn played to its end (or an abort)."""
        with self._changed:
            samples = self._written // 2
        if samples == 0:
            return
        self.on_drain(samples)
        with self._changed:
            last = (self._played, time.monotonic())
            while not (self._finished or self._aborted):
                self._changed.wait(0.25)
                if self._played != last[0]:
                    last = (self._played, time.monotonic())
                elif time.monotonic() - last[1] > self.stall_timeout:
                    raise AudioError(
                        f"the page reported no playback for {self.stall_timeout:g} s "
                        f"({self._unplayed():.1f} s of audio unplayed)"
                    )

    def abort(self) -> None:
        with self._changed:
            self._aborted = True
            self._changed.notify_all()

    def close(self) -> None:
        self.abort()

    # -- MeteredSink ---------------------------------------------------------------------------

    @property
    def buffered_seconds(self) -> float:
        """Audio of the current turn handed to the page and not yet played there."""
        with self._changed:
            return self._unplayed()

    @property
    def underruns(self) -> int:
        return self._underruns

    def _unplayed(self) -> float:
        if self._finished:
            return 0.0
        return max(0.0, self._fmt.seconds(self._written) - self._played)
