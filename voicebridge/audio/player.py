"""PyAudioSink: a speaker, driven by its own player thread (PyAudio blocking writes).

Threads: ``write``/``drain`` come from the pipeline's dispatcher, ``abort``/``pause``/``resume``
from any thread; only the player thread touches the PortAudio stream after ``start()``.
The dispatcher hands chunks over through an in-memory buffer of at most ``max_buffer_seconds``;
when it is full, ``write`` waits (the pipeline's queue grows instead, never the receive thread).

A *run* is the stretch from the first write after start/drain/abort to the next drain or abort:
the stream is started at its first write and stopped at its end, after trailing silence worth
the output latency so that the last word is heard. In the middle of a run, when the buffer is
empty and the device holds only one period more, the player writes periods of silence itself (the
device does not underflow: the gap is clean); when audio resumes after such a gap, that gap counts
as one underrun. Silence at the end of a run, before its drain, is not a gap between sounds.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from typing import Any

from ..errors import AudioError, ConfigurationError
from .devices import OutputDevice, open_pyaudio, quiet_stderr, resolve_output_device
from .format import PcmFormat

__all__ = ["PyAudioSink"]

logger = logging.getLogger(__name__)

_IDLE_WAIT = 1.0  # seconds between re-checks of an idle player (any change also notifies)


class _Action(enum.Enum):
    PLAY = "play"  # write the taken data
    SILENCE = "silence"  # starvation: write one period of silence
    FINISH = "finish"  # drain: trailing silence, stop the stream, report drained
    STOP = "stop"  # abort or pause: stop the stream now
    CLOSE = "close"


class PyAudioSink:
    """Plays the audio on an output device (``device``: index, name, or ``None`` = default).

    ``frames_per_buffer`` is the device period; ``max_buffer_seconds`` bounds the audio held
    here; ``stall_timeout`` is how long ``drain`` waits without any playback progress before
    failing with :class:`AudioError` (a stalled device).
    """

    def __init__(
        self,
        device: int | str | None = None,
        *,
        frames_per_buffer: int = 1024,
        max_buffer_seconds: float = 2.0,
        stall_timeout: float = 5.0,
    ) -> None:
        if frames_per_buffer <= 0:
            raise ConfigurationError("frames_per_buffer must be positive")
        if max_buffer_seconds <= 0 or stall_timeout <= 0:
            raise ConfigurationError("max_buffer_seconds and stall_timeout must be positive")
        self.device = device
        self.frames_per_buffer = frames_per_buffer
        self.max_buffer_seconds = max_buffer_seconds
        self.stall_timeout = stall_timeout
        self.output_device: OutputDevice | None = None  # resolved by start()
        self.output_latency = 0.0  # seconds, as PortAudio reports it for the open stream
        self.device_buffer_frames = 0  # frames the device buffer holds (set by start())
        self.run_started_at: float | None = None  # monotonic time the stream last (re)started
        self._fmt = PcmFormat(16000)  # replaced by start()
        self._pa: Any = None
        self._stream: Any = None
        self._cond = threading.Condition()
        self._buf = bytearray()
        self._max_bytes = 0
        self._abort_gen = 0
        self._stop_requested = False
        self._drain_requested = False
        self._paused = False
        self._closing = False
        self._error: AudioError | None = None
        self._underruns = 0
        self._starving = False
        self._running = False  # the stream is started (changed by the player thread only)
        self._pending_frames = 0  # in the device buffer after the last write...
        self._pending_at = 0.0  # ...measured at this monotonic time
        self._thread: threading.Thread | None = None

    # -- Sink protocol ---------------------------------------------------------------------------

    def start(self, fmt: PcmFormat) -> None:
        """Open the device at ``fmt``'s rate and start the player thread (caller's thread)."""
        pa = open_pyaudio()
        try:
            self.output_device = resolve_output_device(pa, self.device)
            with quiet_stderr():
                stream = pa.open(
                    format=pa.get_format_from_width(
                        fmt.sample_width, unsigned=fmt.sample_width == 1
                    ),
                    channels=fmt.channels,
                    rate=fmt.sample_rate,
                    output=True,
                    output_device_index=self.output_device.index,
                    frames_per_buffer=self.frames_per_buffer,
                    start=False,
                )
        except AudioError:
            pa.terminate()
            raise
        except Exception as exc:  # PortAudio refused the format or the device
            pa.terminate()
            name = self.output_device.name if self.output_device else self.device
            raise AudioError(
                f"cannot open output device {name!r} for {fmt.channels} channel(s) at "
                f"{fmt.sample_rate} Hz: {exc}"
            ) from None
        self._pa, self._stream, self._fmt = pa, stream, fmt
        self.device_buffer_frames = max(int(stream.get_write_available()), self.frames_per_buffer)
        self.output_latency = float(stream.get_output_latency())
        self._max_bytes = max(int(self.max_buffer_seconds * fmt.sample_rate), 1) * fmt.frame_size
        self._thread = threading.Thread(target=self._run, name="voicebridge-player", daemon=True)
        self._thread.start()

    def write(self, chunk: bytes) -> None:
        """Buffer ``chunk`` for the player; waits while the buffer is full (until abort/close)."""
        if self._stream is None:
            raise AudioError("PyAudioSink written before start() or after close()")
        with self._cond:
            gen = self._abort_gen
            while len(self._buf) >= self._max_bytes and gen == self._abort_gen:
                if self._closing or self._error is not None:
                    break
                self._cond.wait(_IDLE_WAIT)
            if self._error is not None:
                raise self._error
            if gen != self._abort_gen or self._closing:
                return  # aborted while waiting: this chunk belongs to the dropped audio
            self._buf += chunk
            self._cond.notify_all()

    def drain(self) -> None:
        """Block until everything written was played, plus trailing silence, and the stream stopped.

        Returns early on abort. Time spent paused does not count; ``stall_timeout`` seconds
        without progress raise :class:`AudioError`.
        """
        with self._cond:
            gen = self._abort_gen
            self._drain_requested = True
            self._cond.notify_all()
            progress_at, left = time.monotonic(), len(self._buf)
            while self._drain_requested and gen == self._abort_gen and not self._closing:
                if self._error is not None:
                    raise self._error
                self._cond.wait(0.1)
                now = time.monotonic()
                if self._paused or len(self._buf) < left:
                    progress_at, left = now, len(self._buf)
                elif now - progress_at > self.stall_timeout + self.output_latency:
                    self._drain_requested = False
                    raise AudioError(
                        f"playback stalled: no progress for {self.stall_timeout:.1f} s"
                    )
            if self._error is not None:
                raise self._error

    def abort(self) -> None:
        """Drop the buffered audio; the device stops within one device buffer."""
        with self._cond:
            self._abort_gen += 1
            self._buf.clear()
            self._drain_requested = False
            self._stop_requested = True
            self._cond.notify_all()

    def close(self) -> None:
        """Stop the player thread (joined) and release the device."""
        with self._cond:
            self._closing = True
            self._buf.clear()
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(self.stall_timeout)
            if self._thread.is_alive():
                raise AudioError(f"the player thread did not stop within {self.stall_timeout} s")
            self._thread = None
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        if self._pa is not None:
            self._pa.terminate()
            self._pa = None

    # -- controls and figures --------------------------------------------------------------------

    def pause(self) -> None:
        """Stop the device (within one device buffer) and keep the buffered audio."""
        with self._cond:
            self._paused = True
            self._cond.notify_all()

    def resume(self) -> None:
        with self._cond:
            self._paused = False
            self._cond.notify_all()

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def underruns(self) -> int:
        """Gaps the player filled with silence between two pieces of audio (cumulative)."""
        return self._underruns

    @property
    def buffered_seconds(self) -> float:
        """Audio written here and not yet heard: this buffer plus the device buffer."""
        return self._fmt.seconds(len(self._buf)) + self._device_pending_seconds()

    def _device_pending_seconds(self) -> float:
        if not self._running:
            return 0.0
        played = time.monotonic() - self._pending_at
        return max(0.0, self._pending_frames / self._fmt.sample_rate - played)

    # -- player thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    action, data = self._next_action()
                if action is _Action.CLOSE:
                    return
                try:
                    self._perform(action, data)
                except Exception as exc:  # the device went away, PortAudio failed: end the thread
                    with self._cond:
                        self._error = AudioError(f"audio output failed: {exc}")
                        self._buf.clear()
                        self._cond.notify_all()
                    return
        finally:
            self._stop_stream()

    def _next_action(self) -> tuple[_Action, bytes]:
        """Wait (lock held) until there is something to do; take the data to play."""
        period = self.frames_per_buffer * self._fmt.frame_size
        while True:
            if self._closing:
                return _Action.CLOSE, b""
            if self._stop_requested or (self._paused and self._running):
                self._stop_requested = False
                if self._running:
                    return _Action.STOP, b""
            if not self._paused:
                size = min(len(self._buf), period) // self._fmt.frame_size * self._fmt.frame_size
                if size:
                    data = bytes(self._buf[:size])
                    del self._buf[:size]
                    if self._starving:  # audio resumes after a gap: that was an underrun
                        self._starving = False
                        self._underruns += 1
                    self._cond.notify_all()  # a writer may be waiting for room
                    return _Action.PLAY, data
                if self._drain_requested:
                    self._buf.clear()  # at most a partial frame
                    if self._running:
                        return _Action.FINISH, b""
                    self._drain_requested = False
                    self._cond.notify_all()
                    continue
                if self._running:
                    period_seconds = self.frames_per_buffer / self._fmt.sample_rate
                    until_dry = self._device_pending_seconds() - period_seconds
                    if until_dry <= 0:
                        self._starving = True
                        return _Action.SILENCE, b""
                    self._cond.wait(until_dry)
                    continue
            self._cond.wait(_IDLE_WAIT)

    def _perform(self, action: _Action, data: bytes) -> None:
        stream = self._stream
        if action is _Action.STOP:
            self._stop_stream()
        elif action is _Action.FINISH:
            trailing = int(self.output_latency * self._fmt.sample_rate) + self.frames_per_buffer
            self._write(stream, bytes(trailing * self._fmt.frame_size))
            self._stop_stream()
            with self._cond:
                self._drain_requested = False
                self._cond.notify_all()
        elif action is _Action.SILENCE:
            self._write(stream, bytes(self.frames_per_buffer * self._fmt.frame_size))
        else:
            if not self._running:
                stream.start_stream()
                self._running = True
                self.run_started_at = time.monotonic()
            self._write(stream, data)

    def _write(self, stream: Any, data: bytes) -> None:
        stream.write(data, exception_on_underflow=False)
        self._pending_frames = self.device_buffer_frames - int(stream.get_write_available())
        self._pending_at = time.monotonic()

    def _stop_stream(self) -> None:
        self._starving = False
        if self._running and self._stream is not None:
            self._running = False
            try:
                self._stream.stop_stream()
            except OSError as exc:
                logger.warning("stopping the output stream failed: %s", exc)
