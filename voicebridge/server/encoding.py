"""From the engine's 16-bit mono PCM to what a task asked for: sample rate and container.

One :class:`TaskEncoder` per task, fed the task's chunks in order: audio of a task is one stream,
so the resampler keeps its phase across chunks and sentences, and a wav header goes on the first
frame of the task only (later frames are raw continuation, as the service streams them). mp3 comes
from the ``lameenc`` wheel (a dependency); each sentence is then a complete mp3 stream of its own.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

__all__ = ["SERVER_FORMATS", "Resampler", "TaskEncoder", "wav_header"]

_MP3_KBPS = 48  # valid for every MPEG sample rate the service offers (8 to 48 kHz)

SERVER_FORMATS = ("pcm", "wav", "mp3")
"""The formats this server produces; the others (opus) are answered with task-failed."""

_STREAM_SIZE = 0xFFFFFFFF  # RIFF/data size of a wav stream whose length is not known yet


def wav_header(sample_rate: int) -> bytes:
    """A 44-byte header for 16-bit mono PCM of unknown length."""
    return b"".join(
        (
            b"RIFF",
            struct.pack("<I", _STREAM_SIZE),
            b"WAVEfmt ",
            struct.pack("<IHHIIHH", 16, 1, 1, sample_rate, sample_rate * 2, 2, 16),
            b"data",
            struct.pack("<I", _STREAM_SIZE),
        )
    )


class Resampler:
    """Streaming linear-interpolation resampler for 16-bit little-endian mono PCM.

    Output sample ``k`` is the input interpolated at time ``k * src / dst`` (in input samples),
    computed from absolute indices, so any cutting of the input into chunks gives the same bytes
    as one call with all of it: no clicks or drift at chunk and sentence boundaries.
    """

    def __init__(self, src_rate: int, dst_rate: int) -> None:
        self._src = src_rate
        self._dst = dst_rate
        self._produced = 0  # output samples so far
        self._base = 0  # absolute input index of self._carry[0]
        self._carry = np.zeros(0, dtype=np.float64)  # input still needed for the next output

    def process(self, pcm: bytes) -> bytes:
        if self._src == self._dst:
            return pcm
        samples = np.concatenate((self._carry, np.frombuffer(pcm, dtype="<i2")))
        last = self._base + len(samples) - 1  # absolute index of the newest input sample
        end = last * self._dst // self._src + 1  # outputs whose time is <= last
        if end <= self._produced:
            self._carry = samples
            return b""
        times = np.arange(self._produced, end) * self._src / self._dst
        out = np.interp(times, self._base + np.arange(len(samples)), samples)
        self._produced = end
        keep = min(end * self._src // self._dst, last)  # left neighbour of the next output
        self._carry = samples[keep - self._base :]
        self._base = keep
        return bytes(np.round(out).astype("<i2").tobytes())


class TaskEncoder:
    """Turns engine PCM into frames of ``fmt`` (one of SERVER_FORMATS) at ``dst_rate``. Frames
    may be empty (a tiny chunk, or mp3 still filling a frame)."""

    def __init__(self, fmt: str, dst_rate: int) -> None:
        if fmt not in SERVER_FORMATS:
            raise ValueError(f"unsupported format {fmt!r}")
        self._rate = dst_rate
        self._resampler = Resampler(dst_rate, dst_rate)
        self._source_rate = dst_rate
        self._header = wav_header(dst_rate) if fmt == "wav" else b""
        self._mp3: Any = _mp3_encoder(dst_rate) if fmt == "mp3" else None

    def encode(self, pcm: bytes, src_rate: int) -> bytes:
        """The frame for one engine chunk of PCM at ``src_rate`` (a task's engine rate changes
        only when a sentence goes to another engine; the resampler then starts afresh)."""
        if src_rate != self._source_rate:
            self._resampler = Resampler(src_rate, self._rate)
            self._source_rate = src_rate
        data = self._resampler.process(pcm)
        if self._mp3 is not None:
            return bytes(self._mp3.encode(data)) if data else b""
        if data and self._header:
            data, self._header = self._header + data, b""
        return data

    def end_sentence(self) -> bytes:
        """What the container still holds when a sentence ends (mp3: its last frames)."""
        if self._mp3 is None:
            return b""
        tail = bytes(self._mp3.flush())
        self._mp3 = _mp3_encoder(self._rate)
        return tail


def _mp3_encoder(sample_rate: int) -> Any:
    import lameenc  # type: ignore[import-untyped,import-not-found,unused-ignore]

    encoder = lameenc.Encoder()
    encoder.set_bit_rate(_MP3_KBPS)
    encoder.set_in_sample_rate(sample_rate)
    encoder.set_channels(1)
    encoder.set_quality(7)  # fast
    return encoder
