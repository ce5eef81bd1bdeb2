"""Progress on a terminal: one status line redrawn in place while work runs, gone when it ends.

Plain ``\\r`` and spaces, no library: one line of text needs no layout engine (``rich``), and the
line shows several counters and an ETA that comes from the audio, not one counter's bar
(``tqdm``). Overwriting with spaces rather than an erase-line escape works on every terminal,
``TERM=dumb`` included. The line is drawn only when its stream is a terminal; anywhere else
nothing is drawn, so logs stay clean, and the caller prints its one-line summary as usual.

Threads: :class:`StatusLine` redraws from its own thread (``voicebridge-status``), a few times a
second; ``render`` runs there and must only read state that any thread may read (such as
:attr:`voicebridge.bridge.VoiceBridge.progress`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TextIO

from .turn import TurnProgress

__all__ = ["StatusLine", "describe_speaking", "eta_seconds"]

_JOIN = 2.0  # seconds to wait for the status thread at the end (it sleeps at most `interval`)


class StatusLine:
    """``with StatusLine(stream, render):`` redraws ``render()`` on ``stream`` every ``interval``
    seconds, and erases it on the way out (an exception included). ``enabled`` defaults to
    whether ``stream`` is a terminal; disabled, it draws nothing and starts no thread."""

    def __init__(
        self,
        stream: TextIO,
        render: Callable[[], str],
        *,
        interval: float = 0.25,
        enabled: bool | None = None,
    ) -> None:
        self._stream = stream
        self._render = render
        self._interval = interval
        self.enabled = _is_terminal(stream) if enabled is None else enabled
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._drawn = 0  # characters on the line now

    def __enter__(self) -> StatusLine:
        if self.enabled:
            self._thread = threading.Thread(
                target=self._run, name="voicebridge-status", daemon=True
            )
            self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(_JOIN)
            self._thread = None
        if self._drawn:
            self._write("\r" + " " * self._drawn + "\r")
            self._drawn = 0

    def _run(self) -> None:
        while True:
            try:
                line = self._render()
            except Exception as exc:  # a status line never stops the work it describes
                line = f"({type(exc).__name__} in the status line)"
            if self._stop.is_set():
                return
            self._draw(line)
            if self._stop.wait(self._interval):
                return

    def _draw(self, line: str) -> None:
        line = line[: _columns(self._stream) - 1]
        self._write("\r" + line + " " * max(0, self._drawn - len(line)))
        self._drawn = len(line)

    def _write(self, text: str) -> None:
        try:
            self._stream.write(text)
            self._stream.flush()
        except (OSError, ValueError):  # the terminal went away: nothing left to show
            self._stop.set()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _columns(stream: TextIO) -> int:
    """The terminal's width (80 when it cannot be read); the line is cut to fit, since a line
    that wraps cannot be redrawn in place."""
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError):
        columns = 0
    return max(columns, 20) if columns else 80  # 0: a terminal that does not say


# --------------------------------------------------------------------------- what speak shows


def eta_seconds(
    progress: TurnProgress, total: int | None, unplayed: float | None = None
) -> float | None:
    """Seconds until the turn is done, or None before there is anything to go by.

    ``total``: characters of the whole text (None when unknown: nothing to estimate).
    ``unplayed``: seconds of audio received and not yet played, when the audio is played in
    real time; then the end is when the rest of the audio has been played, if that is later
    than when the rest of the text has been synthesized.
    """
    spoken = progress.characters_spoken
    if total is None or spoken <= 0 or progress.elapsed <= 0:
        return None
    left = max(total - spoken, 0)
    eta = left * progress.elapsed / spoken
    if unplayed is not None:
        eta = max(eta, unplayed + left * progress.audio_seconds / spoken)
    return eta


def describe_speaking(
    progress: TurnProgress | None, total: int | None, unplayed: float | None = None
) -> str:
    """The status line of a ``speak`` turn: characters sent and spoken (out of ``total`` when
    known), seconds of audio, real-time factor (seconds of work per second of audio) and ETA."""
    if progress is None:
        return "speaking: starting"
    of_total = f"/{total:,}" if total is not None else ""
    parts = [f"sent {progress.characters_sent:,}{of_total} chars"]
    spoken = f"spoken {progress.characters_spoken:,}"
    if total:
        spoken += f" ({min(progress.characters_spoken / total, 1.0):.0%})"
    parts += [spoken, f"{progress.audio_seconds:.1f} s of audio"]
    if progress.audio_seconds > 0:
        parts.append(f"RTF {progress.elapsed / progress.audio_seconds:.2f}")
    eta = eta_seconds(progress, total, unplayed)
    if eta is not None:
        parts.append(f"ETA {_clock(eta)}")
    return "speaking: " + " · ".join(parts)


def _clock(seconds: float) -> str:
    whole = round(seconds)
    minutes, secs = divmod(whole, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
