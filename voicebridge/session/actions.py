"""What the session core asks of its driver (sans-I/O outputs); which errors a retry can fix."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import (
    ConnectionLost,
    HandshakeError,
    RemoteProtocolError,
    SynthesisTimeout,
    TaskFailedError,
    TransportError,
    VoiceBridgeError,
)
from ..turn import Turn, Word

__all__ = [
    "IO_ACTIONS",
    "Action",
    "CheckStall",
    "Close",
    "Connect",
    "Ping",
    "Send",
    "TurnEnded",
    "WordsPlaced",
    "retryable",
]


@dataclass(frozen=True)
class Connect:
    """Open connection ``conn``; report ``connected`` or ``connect_failed``."""

    conn: int


@dataclass(frozen=True)
class Send:
    """Write a text frame on ``conn``; report ``send_failed`` if it cannot be written."""

    conn: int
    frame: str


@dataclass(frozen=True)
class Ping:
    conn: int


@dataclass(frozen=True)
class CheckStall:
    """The server looks gone: tell ``stalled_unread`` whether data waits unread on ``conn``
    (then we are slow, not the server)."""

    conn: int


@dataclass(frozen=True)
class Close:
    """Close ``conn`` (stops the service's synthesis at once)."""

    conn: int


@dataclass(frozen=True)
class WordsPlaced:
    """Word timings of ``turn`` became known (hand them to the audio path, in order)."""

    turn: Turn
    words: tuple[Word, ...]


@dataclass(frozen=True)
class TurnEnded:
    """``turn`` is over: :attr:`Turn.error` tells how."""

    turn: Turn


Action = Connect | Send | Ping | CheckStall | Close | WordsPlaced | TurnEnded
IO_ACTIONS = (Connect, Send, Ping, CheckStall, Close)
"""The actions the driver thread performs; the others run on the thread that produced them."""


def retryable(error: VoiceBridgeError) -> bool:
    """Whether the same text may succeed on a new connection."""
    if isinstance(error, TaskFailedError):
        return error.retryable
    if isinstance(error, HandshakeError):
        return error.status >= 500 or error.status == 429
    return isinstance(
        error, ConnectionLost | SynthesisTimeout | TransportError | RemoteProtocolError
    )
