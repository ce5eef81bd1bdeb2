"""Audio fixtures: a private PulseAudio daemon with a null sink, for real PyAudio playback.

``pulse`` starts the daemon with ``.ci/pulse.sh`` (once per session), points ``PULSE_SERVER``
at it and keeps a low-latency ``parec`` reading the sink's monitor, because an idle null sink
stalls a new stream's first writes for about two seconds. Without pulseaudio, parec or PyAudio,
tests that need it fail when ``CI`` is set (the environment is part of CI) and skip elsewhere.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
RATE = 22050


def _on_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def unavailable(reason: str) -> NoReturn:
    if _on_ci():
        pytest.fail(f"audio test environment missing on CI: {reason}")
    pytest.skip(reason)


@dataclass(frozen=True)
class Pulse:
    """The running daemon: its socket address and its null sink (mono s16le at ``rate``)."""

    server: str
    sink: str
    rate: int

    def record(self, path: Path) -> subprocess.Popen[bytes]:
        """Start recording the sink's monitor as raw s16le mono into ``path``; stop with
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
    """Stop a recorder started by :meth:`Pulse.record`; the samples as float in [-1, 1]."""
    recorder.terminate()
    try:
        recorder.wait(5)
    except subprocess.TimeoutExpired:
        recorder.kill()
        recorder.wait(5)
    raw = path.read_bytes()
    return np.frombuffer(raw[: len(raw) // 2 * 2], dtype="<i2").astype(np.float64) / 32768


@pytest.fixture(scope="session")
def pulse() -> Iterator[Pulse]:
    missing = [tool for tool in ("pulseaudio", "pactl", "parec") if shutil.which(tool) is None]
    if importlib.util.find_spec("pyaudio") is None:
        missing.append("PyAudio (pip install 'voicebridge[audio]')")
    if missing:
        unavailable("no PulseAudio playback environment: missing " + ", ".join(missing))
    directory = Path(tempfile.mkdtemp(prefix="vb-pulse-"))  # short: a unix socket path
    script = str(REPO / ".ci" / "pulse.sh")
    try:
        started = subprocess.run(
            [script, "start", str(directory), str(RATE)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if started.returncode != 0:
            unavailable(f"PulseAudio did not start: {started.stderr.strip()}")
        pulse = Pulse(started.stdout.strip().split("=", 1)[1], "voicebridge_null", RATE)
        with pytest.MonkeyPatch.context() as env:
            env.setenv("PULSE_SERVER", pulse.server)
            keeper = pulse.record(Path(os.devnull))
            try:
                time.sleep(2.0)  # the monitor runs: the sink no longer stalls new streams
                yield pulse
            finally:
                stop_recording(keeper, Path(os.devnull))
    finally:
        subprocess.run([script, "stop", str(directory)], timeout=30, check=False)
        shutil.rmtree(directory, ignore_errors=True)
