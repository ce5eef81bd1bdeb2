"""The text engine: "audio" that encodes the text it was given, for exact lost/repeated counts.

Decoding what a client received (:func:`decode_text_audio`) gives back the text a listener would
have heard. The rule, at the byte level so that any cut decodes sensibly:

- Each character of a sentence becomes one *block* of ``frames_per_character`` frames; a frame is
  8 bytes (4 samples of 16-bit PCM). Every frame carries the character's code point; the first
  frame of a block is a *start* frame, the others are *continuation* frames.
- Byte 0 of a frame has its top bit set (``0x80``, plus ``0x40`` on a start frame); the 7 other
  bytes have it clear and carry the code point three times over (21 bits in 3 bytes of 7 bits,
  then the same bytes XOR 0x55, XOR 0x2A, and a sum) so that a damaged frame is never read as a
  character. A decoder resynchronises on the next byte with the top bit set.
- **A character is heard when its start frame arrived whole.** Continuation frames only say that
  the character went on; continuation frames without their start frame (the start was lost) are
  counted in :attr:`DecodedText.orphans`, damaged or misaligned bytes in ``invalid_bytes`` (an
  incomplete frame at the very end, where the audio was cut off, is not damage).

So audio cut anywhere and continued from the same byte (a correctly trimmed replay) decodes to
each character once; a replay trimmed too little by whole frames repeats characters (their start
frames come again), one trimmed too much loses characters, and one trimmed inside a frame shows
as invalid bytes at the seam. The audio is a pure function of the sentence and
the rate: replaying a sentence gives byte-identical audio. A sentence of n characters lasts
``n * frames_per_character * 4`` samples; volume and pitch are ignored (they would damage the
code), ``rate`` divides the number of frames. The engine produces the sample rate the task asked
for, so no resampler touches the bytes; only pcm and wav (no mp3) are offered.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from .engines import SpeechItem, SpeechRequest, SpeechStream

__all__ = ["DecodedText", "TextEngine", "decode_text_audio", "encode_character"]

FRAME_BYTES = 8
_START, _LEAD = 0x40, 0x80


def encode_character(char: str, start: bool) -> bytes:
    """One 8-byte frame of ``char`` (a start frame when ``start``)."""
    code = ord(char)
    a, b, c = (code >> 14) & 0x7F, (code >> 7) & 0x7F, code & 0x7F
    lead = _LEAD | (_START if start else 0)
    return bytes((lead, a, b, c, a ^ 0x55, b ^ 0x2A, c ^ 0x55, (a + b + c) & 0x7F))


def _decode_frame(frame: bytes) -> tuple[str, bool] | None:
    """The character and start flag of a valid frame, else None."""
    lead, a, b, c, a2, b2, c2, total = frame
    if lead & 0xBF != _LEAD or (a | b | c | a2 | b2 | c2 | total) & 0x80:
        return None
    if (a2, b2, c2, total) != (a ^ 0x55, b ^ 0x2A, c ^ 0x55, (a + b + c) & 0x7F):
        return None
    code = (a << 14) | (b << 7) | c
    if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return None
    return chr(code), bool(lead & _START)


@dataclass(frozen=True)
class DecodedText:
    """``text``: the characters whose start frame arrived, in order; ``orphans``: characters
    heard only from their continuation frames; ``invalid_bytes``: bytes of no valid frame."""

    text: str
    orphans: int = 0
    invalid_bytes: int = 0


def decode_text_audio(data: bytes) -> DecodedText:
    """Decode audio of the text engine (raw PCM bytes as a client received them, any cuts)."""
    chars: list[str] = []
    orphans = invalid = 0
    current: str | None = None  # the character whose frames are running
    i = 0
    while i + FRAME_BYTES <= len(data):
        decoded = _decode_frame(data[i : i + FRAME_BYTES]) if data[i] & _LEAD else None
        if decoded is None:
            invalid += 1
            current = None
            i += 1
            continue
        char, start = decoded
        if start:
            chars.append(char)
        elif char != current:
            orphans += 1
        current = char
        i += FRAME_BYTES
    return DecodedText("".join(chars), orphans, invalid)  # a cut last frame is no damage


class TextEngine:
    """Engine ``"text"``: see the module docstring for the encoding and the decoding rule."""

    formats = ("pcm", "wav")

    def __init__(self, *, seconds_per_character: float = 0.05, chunk_seconds: float = 0.1) -> None:
        self.seconds_per_character = seconds_per_character
        self.chunk_seconds = chunk_seconds

    def frames_per_character(self, sample_rate: int, rate: float = 1.0) -> int:
        return max(1, round(sample_rate * self.seconds_per_character / rate / 4))

    def synthesize(self, request: SpeechRequest) -> SpeechStream:
        return SpeechStream(request.sample_rate, self._items(request))

    def _items(self, request: SpeechRequest) -> Iterator[SpeechItem]:
        frames = self.frames_per_character(request.sample_rate, request.rate)
        chunk_frames = max(1, int(request.sample_rate * self.chunk_seconds / 4))
        pending: list[bytes] = []
        for char in request.text:
            start = encode_character(char, True)
            rest = encode_character(char, False)
            pending.append(start + rest * (frames - 1))
            if len(pending) * frames >= chunk_frames:
                yield b"".join(pending)
                pending = []
        if pending:
            yield b"".join(pending)

    def close(self) -> None:
        """Nothing to release."""
