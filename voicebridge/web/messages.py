"""The demo page's WebSocket protocol, sans-I/O: what the page may send, what the server sends.

Page -> server, JSON text frames (one object each):

- ``{"type": "say", "text": "...", "voice": "loongabby_v2", "rate": 1.0}``: start a turn
  (``voice`` and ``rate`` optional; ``rate`` is the speech rate, 0.5-2.0);
- ``{"type": "played", "turn": 3, "seconds": 2.5, "underruns": 0, "finished": false}``: playback
  progress, a few times a second while a turn plays (``underruns``: new gaps since the last
  report), and once with ``finished`` true when its last sample has played. The turn lasts until
  then (the bridge drains into the page as into a speaker);
- ``{"type": "interrupt", "turn": 3, "heard": 1.25}``: Stop. ``heard`` is how many seconds of the
  turn's audio the listener heard; the history keeps the reply only that far (to the word).

Server -> page, JSON text frames: ``ready`` (settings, voices), ``turn`` (a turn started),
``text`` (a piece of the reply, as the LLM writes it), ``word`` (a word's time on the turn's audio
timeline and its ``span`` in the reply as written), ``audio_end`` (the turn has ``samples``
samples in all: play the last ones without waiting for more), ``done`` (metrics, the reply as the
history keeps it), ``error`` (``source``: input, llm, speech, server).

Server -> page, binary frames: audio. An 8-byte header, ``turn`` then the turn's sample index of
the first sample (both uint32, little-endian), then 16-bit little-endian mono PCM at the
``sample_rate`` of ``ready``. A turn's frames arrive in order and without gaps.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from typing import Any

from ..errors import RemoteProtocolError

__all__ = [
    "AUDIO_HEADER",
    "FloodGuard",
    "Interrupt",
    "Played",
    "Say",
    "WebLimits",
    "audio_frame",
    "encode",
    "parse_message",
]

AUDIO_HEADER = struct.Struct("<II")  # turn, first sample index
MIN_RATE, MAX_RATE = 0.5, 2.0  # CosyVoice speech_rate range


@dataclass(frozen=True)
class WebLimits:
    """Bounds of one server: sessions at once, message sizes, message rate, history length."""

    max_sessions: int = 8
    max_text_chars: int = 2000  # one typed message
    max_message_bytes: int = 16 * 1024  # larger frames get an error message, the session goes on
    max_frame_bytes: int = 1024 * 1024  # larger frames close the connection (1009)
    messages_per_second: float = 20.0
    message_burst: int = 40
    max_history_turns: int = 20  # turns sent back to the LLM as context


@dataclass(frozen=True)
class Say:
    """Start a turn with ``text``; ``voice`` / ``rate`` None keep the session's current ones."""

    text: str
    voice: str | None = None
    rate: float | None = None


@dataclass(frozen=True)
class Interrupt:
    """Stop ``turn`` (None: the latest); ``heard`` seconds of its audio were played (None:
    unknown)."""

    turn: int | None = None
    heard: float | None = None


@dataclass(frozen=True)
class Played:
    """Playback progress of ``turn``: ``seconds`` played, ``underruns`` new gaps, ``finished``."""

    turn: int
    seconds: float
    underruns: int = 0
    finished: bool = False


ClientMessage = Say | Interrupt | Played


def parse_message(frame: str | bytes, limits: WebLimits) -> ClientMessage:
    """One frame from the page. Raises :class:`RemoteProtocolError` with a one-line reason."""
    if isinstance(frame, bytes):
        raise RemoteProtocolError("binary messages are not accepted: send JSON text")
    size = len(frame.encode("utf-8", "surrogatepass"))
    if size > limits.max_message_bytes:
        raise RemoteProtocolError(
            f"message too long: {size} bytes (at most {limits.max_message_bytes})"
        )
    try:
        data = json.loads(frame)
    except ValueError as exc:
        raise RemoteProtocolError(f"malformed JSON: {exc}") from None
    if not isinstance(data, dict):
        raise RemoteProtocolError("a message must be a JSON object with a 'type'")
    kind = data.get("type")
    if kind == "say":
        return _say(data, limits)
    if kind == "interrupt":
        return Interrupt(_optional_turn(data), _optional_number(data, "heard", 0.0, math.inf))
    if kind == "played":
        return _played(data)
    raise RemoteProtocolError(
        f"unknown message type {kind!r} (expected 'say', 'interrupt' or 'played')"
    )


def _say(data: dict[str, Any], limits: WebLimits) -> Say:
    text = data.get("text")
    if not isinstance(text, str) or not text.strip():
        raise RemoteProtocolError("'say' needs a non-empty 'text' string")
    if len(text) > limits.max_text_chars:
        raise RemoteProtocolError(
            f"text too long: {len(text)} characters (at most {limits.max_text_chars})"
        )
    voice = data.get("voice")
    if voice is not None and not isinstance(voice, str):
        raise RemoteProtocolError("'voice' must be a string")
    rate = _optional_number(data, "rate", MIN_RATE, MAX_RATE)
    return Say(text.strip(), voice, rate)


def _played(data: dict[str, Any]) -> Played:
    turn = _optional_turn(data)
    seconds = _optional_number(data, "seconds", 0.0, math.inf)
    if turn is None or seconds is None:
        raise RemoteProtocolError("'played' needs 'turn' and 'seconds'")
    underruns = data.get("underruns", 0)
    if isinstance(underruns, bool) or not isinstance(underruns, int) or underruns < 0:
        raise RemoteProtocolError("'underruns' must be a non-negative integer")
    finished = data.get("finished", False)
    if not isinstance(finished, bool):
        raise RemoteProtocolError("'finished' must be true or false")
    return Played(turn, seconds, underruns, finished)


def _optional_turn(data: dict[str, Any]) -> int | None:
    turn = data.get("turn")
    if turn is None:
        return None
    if isinstance(turn, bool) or not isinstance(turn, int) or turn < 1:
        raise RemoteProtocolError("'turn' must be a positive integer")
    return turn


def _optional_number(data: dict[str, Any], key: str, low: float, high: float) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise RemoteProtocolError(f"'{key}' must be a number")
    if not low <= value <= high:
        raise RemoteProtocolError(f"'{key}' must be between {low:g} and {high:g}")
    return float(value)


def encode(kind: str, **fields: object) -> str:
    """A server message: ``{"type": kind, **fields}`` as compact JSON."""
    return json.dumps({"type": kind, **fields}, ensure_ascii=False, separators=(",", ":"))


def audio_frame(turn: int, first_sample: int, pcm: bytes) -> bytes:
    """A binary audio frame: header (turn, first sample index) + 16-bit PCM."""
    return AUDIO_HEADER.pack(turn, first_sample) + pcm


class FloodGuard:
    """A token bucket over incoming messages (``rate`` per second, ``burst`` at once).

    :meth:`admit` says whether a message may be handled and, for a dropped one, whether the page
    should be told (at most once per second, so a flood is not answered with a flood).
    """

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._at: float | None = None
        self._noticed_at = -math.inf
        self.dropped = 0

    def admit(self, now: float) -> tuple[bool, bool]:
        """(handle it, tell the page it was dropped); ``now`` in seconds (monotonic)."""
        if self._at is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True, False
        self.dropped += 1
        if now - self._noticed_at >= 1.0:
            self._noticed_at = now
            return False, True
        return False, False
