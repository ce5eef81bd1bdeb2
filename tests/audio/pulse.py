"""A private PulseAudio daemon with a null sink, for real playback (tests and benchmarks).

:func:`private_pulse` starts the daemon with ``.ci/pulse.sh``, sets ``PULSE_SERVER`` for this
process (restored on exit) and keeps a low-latency ``parec`` reading the sink's monitor, because
an idle null sink stalls a new stream's first writes for about two seconds.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
RATE = 22050


class PulseUnavailable(Exception):
    """pulseaudio, parec or PyAudio is missing, or the daemon did not start (the reason)."""


@dataclass(frozen=True)
class Pulse:
    """The running daemon: its socket address and its null sink (mono s16le at ``rate``)."""

    server: str
    sink: str
    rate: int

    def record(self, path: Path) -> subprocess.Popen[bytes]:
        """Record the sink's monitor as raw s16le mono into ``path``; stop with
        :func:`stop_recording`."""
        with open(path, "wb") as out:
            return subprocess.Popen(
                [
                    "parec",
                    f"--device={self.sink}.monitor",
                    "--format=s16le",
                    f"--rate={self.rate}",
                    "--channels=1",
                    "--latency-msec=10",
                    "--raw",
                ],
                stdout=out,
                stderr=subprocess.DEVNULL,
            )


def stop_recording(recorder: subprocess.Popen[bytes], path: Path) -> np.ndarray:
    """Stop a recorder started by :meth:`Pulse.record`; the samples as floats in [-1, 1]."""
    recorder.terminate()
    try:
        recorder.wait(5)
    except subprocess.TimeoutExpired:
        recorder.kill()
        recorder.wait(5)
    raw = path.read_bytes()
    return np.frombuffer(raw[: len(raw) // 2 * 2], dtype="<i2").astype(np.float64) / 32768


@contextlib.contextmanager
def private_pulse(rate: int = RATE) -> Iterator[Pulse]:
    """Run a daemon for the duration of the block; raises :class:`PulseUnavailable`."""
    missing = [tool for tool in ("pulseaudio", "pactl", "parec") if shutil.which(tool) is None]
    if importlib.util.find_spec("pyaudio") is None:
        missing.append("PyAudio (pip install 'voicebridge[audio]')")
    if missing:
        raise PulseUnavailable("no PulseAudio playback environment: missing " + ", ".join(missing))
    directory = Path(tempfile.mkdtemp(prefix="vb-pulse-"))  # short: a unix socket path
    script = str(REPO / ".ci" / "pulse.sh")
    saved = os.environ.get("PULSE_SERVER")
    try:
        started = subprocess.run(
            [script, "start", str(directory), str(rate)], capture_output=True, text=True, timeout=30
        )
        if started.returncode != 0:
            raise PulseUnavailable(f"PulseAudio did not start: {started.stderr.strip()}")
        pulse = Pulse(started.stdout.strip().split("=", 1)[1], "voicebridge_null", rate)
        os.environ["PULSE_SERVER"] = pulse.server
        keeper = pulse.record(Path(os.devnull))
        try:
            time.sleep(2.0)  # the monitor runs: the sink no longer stalls new streams
            yield pulse
        finally:
            stop_recording(keeper, Path(os.devnull))
    finally:
        if saved is None:
            os.environ.pop("PULSE_SERVER", None)
        else:
            os.environ["PULSE_SERVER"] = saved
        subprocess.run([script, "stop", str(directory)], timeout=30, check=False)
        shutil.rmtree(directory, ignore_errors=True)
