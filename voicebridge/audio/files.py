"""File sinks: a WAV file, or raw PCM into a file object the caller owns."""

from __future__ import annotations

import contextlib
import os
import secrets
import struct
import weakref
from typing import BinaryIO

from ..errors import AudioError
from .format import PcmFormat

__all__ = ["PcmFileSink", "WavFileSink"]


class WavFileSink:
    """Writes every turn into one WAV file at ``path``; a failed run never leaves a broken file.

    Audio goes first into a hidden file beside ``path`` (``.<name>.<random>.part``). The sink
    learns how a turn ended from the pipeline's calls (see ``sink.py``): ``drain()`` means the
    turn's audio was all written, ``abort()`` means it was cut short (barge-in or failure), and
    ``close()`` without a ``drain()`` since the last audio means the run ended without finishing.

    * ``drain()`` marks the audio so far complete, writes the header for it, and (the first
      time there is audio) renames the hidden file onto ``path``. The file at ``path`` is a
      valid WAV of every completed turn from then on, even if the process dies later.
    * ``close()`` cuts off audio written after the last completed turn (a turn aborted at the
      end). If no turn was ever completed, it deletes the hidden file, so a failed run leaves
      no file at ``path``, or keeps the one that was there before.

    Audio of an interrupted turn that a later completed turn follows stays in the file (it was
    heard). A sink dropped without ``close()`` deletes its hidden file when it is collected or
    at exit. Threads: ``write``/``drain`` on the dispatcher; ``abort`` (any thread) does nothing.
    """

    shares_dispatcher = True  # writes go to the page cache: they never wait long

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._fmt: PcmFormat | None = None
        self._file: BinaryIO | None = None
        self._part = ""  # the hidden file, until the first completed turn publishes it
        self._written = 0  # data bytes in the file
        self._complete = 0  # data bytes of completed turns
        self._discard: weakref.finalize[[BinaryIO, str], WavFileSink] | None = None

    def start(self, fmt: PcmFormat) -> None:
        self.close()  # a sink started again begins a new file
        folder, name = os.path.split(os.path.abspath(self.path))
        if os.path.isdir(self.path):
            raise AudioError(f"cannot write WAV file {self.path!r}: it is a directory")
        self._part = os.path.join(folder, f".{name}.{secrets.token_hex(4)}.part")
        try:
            self._file = open(self._part, "xb")  # noqa: SIM115 (stays open until close())
            self._file.write(_header(fmt, 0))
        except OSError as exc:
            raise AudioError(f"cannot write WAV file {self.path!r}: {exc.strerror}") from exc
        self._fmt, self._written, self._complete = fmt, 0, 0
        self._discard = weakref.finalize(self, _remove, self._file, self._part)

    def write(self, chunk: bytes) -> None:
        if self._file is None:
            raise AudioError(f"WAV sink {self.path!r} written before start() or after close()")
        try:
            self._file.write(chunk)
        except OSError as exc:
            raise AudioError(f"cannot write WAV file {self.path!r}: {exc.strerror}") from exc
        self._written += len(chunk)

    def drain(self) -> None:
        """End of a completed turn: its audio becomes part of the file at ``path``."""
        if self._file is None or self._fmt is None:
            return
        self._complete = self._written
        try:
            self._patch_header(self._file)
            if self._part and self._complete:  # publish (closed first, for Windows' sake)
                self._file.close()
                os.replace(self._part, self.path)
                self._part = ""
                self._file = open(self.path, "r+b")  # noqa: SIM115 (stays open until close())
                self._file.seek(0, os.SEEK_END)
                if self._discard is not None:
                    self._discard.detach()
                    self._discard = None
        except OSError as exc:
            raise AudioError(f"cannot write WAV file {self.path!r}: {exc.strerror}") from exc

    def abort(self) -> None:
        pass  # what counts is whether a drain() follows before close()

    def close(self) -> None:
        """Keep the completed turns (cut off the rest), or, with none, remove every trace."""
        file, self._file = self._file, None
        if file is None:
            return
        if self._discard is not None:
            self._discard.detach()
            self._discard = None
        if self._part:
            _remove(file, self._part)
            self._part = ""
            return
        try:
            try:
                if self._written > self._complete:
                    self._patch_header(file)
                    file.truncate(_HEADER.size + self._complete)
            finally:
                file.close()
        except OSError as exc:
            raise AudioError(f"cannot finish WAV file {self.path!r}: {exc.strerror}") from exc

    def _patch_header(self, file: BinaryIO) -> None:
        """Header for the completed audio; the file position stays at its end."""
        assert self._fmt is not None
        file.seek(0)
        file.write(_header(self._fmt, self._complete))
        file.seek(0, os.SEEK_END)
        file.flush()


# RIFF header of a PCM WAV: "RIFF" size "WAVE", a 16-byte "fmt " chunk, then "data" size.
_HEADER = struct.Struct("<4sI4s4sIHHIIHH4sI")


def _header(fmt: PcmFormat, data_bytes: int) -> bytes:
    return _HEADER.pack(
        b"RIFF",
        _HEADER.size - 8 + data_bytes,
        b"WAVE",
        b"fmt ",
        16,
        1,  # PCM
        fmt.channels,
        fmt.sample_rate,
        fmt.bytes_per_second,
        fmt.frame_size,
        8 * fmt.sample_width,
        b"data",
        data_bytes,
    )


def _remove(file: BinaryIO, part: str) -> None:
    """Close and delete an unpublished hidden file (also the finalizer of a dropped sink)."""
    with contextlib.suppress(OSError):
        file.close()
    with contextlib.suppress(OSError):
        os.remove(part)


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
