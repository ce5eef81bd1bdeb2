"""PyAudio, imported lazily, and its output devices.

PyAudio is an optional dependency (``pip install 'voicebridge[audio]'``); without it, or without
an output device, everything here raises :class:`AudioError` with a one-line message.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import AudioError

__all__ = [
    "OutputDevice",
    "list_output_devices",
    "open_pyaudio",
    "quiet_stderr",
    "resolve_output_device",
]


@dataclass(frozen=True)
class OutputDevice:
    index: int
    name: str
    max_output_channels: int
    default_sample_rate: float
    host_api: str
    is_default: bool

    def __str__(self) -> str:
        """One line for ``voicebridge devices``: index, name, host API, channels, rate."""
        mark = "  (default)" if self.is_default else ""
        return (
            f"{self.index:3d}  {self.name}  [{self.host_api}, {self.max_output_channels} ch, "
            f"{self.default_sample_rate:g} Hz]{mark}"
        )


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Silence fd 2 while PortAudio probes its back ends (ALSA and JACK print pages of noise)."""
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 at all
        yield
        return
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def open_pyaudio() -> Any:
    """Import PyAudio and return a new ``pyaudio.PyAudio()``; the caller must ``terminate()`` it."""
    try:
        import pyaudio
    except ImportError:
        raise AudioError(
            "PyAudio is not installed: pip install 'voicebridge[audio]' (needs PortAudio)"
        ) from None
    with quiet_stderr():
        try:
            return pyaudio.PyAudio()
        except Exception as exc:  # PortAudio could not initialise
            raise AudioError(f"PortAudio could not start: {exc}") from None


def _output_devices(pa: Any) -> list[OutputDevice]:
    try:
        default_index = int(pa.get_default_output_device_info()["index"])
    except (OSError, ValueError):  # "No Default Output Device Available"
        default_index = -1
    devices = []
    for index in range(pa.get_device_count()):
        info = pa.get_device_info_by_index(index)
        if int(info["maxOutputChannels"]) <= 0:
            continue
        host_api = pa.get_host_api_info_by_index(info["hostApi"])["name"]
        devices.append(
            OutputDevice(
                index=index,
                name=str(info["name"]),
                max_output_channels=int(info["maxOutputChannels"]),
                default_sample_rate=float(info["defaultSampleRate"]),
                host_api=str(host_api),
                is_default=index == default_index,
            )
        )
    return devices


def list_output_devices() -> list[OutputDevice]:
    """The output devices PortAudio sees (empty when there are none)."""
    pa = open_pyaudio()
    try:
        return _output_devices(pa)
    finally:
        pa.terminate()


def resolve_output_device(pa: Any, device: int | str | None) -> OutputDevice:
    """Find ``device``: ``None`` = the default, an ``int`` = an index, a ``str`` = a name.

    A name matches exactly first, then as a unique case-insensitive substring.
    """
    devices = _output_devices(pa)
    if not devices:
        raise AudioError("no audio output device found")
    if device is None:
        for candidate in devices:
            if candidate.is_default:
                return candidate
        return devices[0]
    if isinstance(device, int):
        for candidate in devices:
            if candidate.index == device:
                return candidate
        raise AudioError(f"no output device with index {device} (see `voicebridge devices`)")
    exact = [d for d in devices if d.name == device]
    if exact:
        return exact[0]
    partial = [d for d in devices if device.lower() in d.name.lower()]
    if len(partial) == 1:
        return partial[0]
    names = ", ".join(repr(d.name) for d in partial or devices)
    reason = "several output devices match" if partial else "no output device matches"
    raise AudioError(f"{reason} {device!r} (candidates: {names})")
