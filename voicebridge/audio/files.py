"""File sinks: a WAV file, or raw PCM into a file object the caller owns."""

from __future__ import annotations

import os
import wave
from typing import BinaryIO

from ..errors import AudioError
from .format import PcmFormat

__all__ = ["PcmFileSink", "WavFileSink"]


class WavFileSink:
    """Writes every turn into one WAV file (turns appended), finalised by ``close()``.

    The header is rewritten on each write, so the file is a valid WAV after every drained turn,
    even if the process dies before ``close()``.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._file: BinaryIO | None = None
        self._wav: wave.Wave_write | None = None

    def start(self, fmt: PcmFormat) -> None:
        try:
            self._file = open(self.path, "wb")  # noqa: SIM115 (stays open until close())
        except OSError as exc:
            raise AudioError(f"cannot write WAV file {self.path!r}: {exc.strerror}") from exc
        wav = wave.open(self._file, "wb")  # noqa: SIM115
        wav.setnchannels(fmt.channels)
        wav.setsampwidth(fmt.sample_width)
        wav.setframerate(fmt.sample_rate)
        self._wav = wav

    def write(self, chunk: bytes) -> None:
        if self._wav is None:
            raise AudioError(f"WAV sink {self.path!r} written before start() or after close()")
        try:
            self._wav.writeframes(chunk)
        except OSError as exc:
            raise AudioError(f"cannot write WAV file {self.path!r}: {exc.strerror}") from exc

    def drain(self) -> None:
        pass  # writeframes() already patched the header and handed the data to the OS

    def abort(self) -> None:
        pass  # audio of an interrupted turn that reached the file stays in it

    def close(self) -> None:
        wav, file, self._wav, self._file = self._wav, self._file, None, None
        try:
            if wav is not None:
                wav.close()
        except OSError as exc:
            raise AudioError(f"cannot finish WAV file {self.path!r}: {exc.strerror}") from exc
        finally:
            if file is not None:
                file.close()


class PcmFileSink:
    """Writes raw PCM (no header) into ``fileobj``; flushes it at the end of each turn.

    ``close()`` does not close ``fileobj``: the caller opened it, the caller closes it.
    """

    def __init__(self, fileobj: BinaryIO) -> None:
        self._file = fileobj

    def start(self, fmt: PcmFormat) -> None:
        pass

    def write(self, chunk: bytes) -> None:
        try:
            self._file.write(chunk)
        except (OSError, ValueError) as exc:
            raise AudioError(f"cannot write raw PCM: {exc}") from exc

    def drain(self) -> None:
        try:
            self._file.flush()
        except (OSError, ValueError) as exc:
            raise AudioError(f"cannot flush raw PCM: {exc}") from exc

    def abort(self) -> None:
        pass

    def close(self) -> None:
        pass
