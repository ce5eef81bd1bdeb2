"""voicebridge: make an LLM speak while it is still writing (CosyVoice duplex streaming TTS)."""

from __future__ import annotations

from .bridge import VoiceBridge
from .client import AudioFormat, ResultCallback, SpeechSynthesizer
from .errors import (
    AudioError,
    AuthenticationError,
    ConfigurationError,
    ConnectionLost,
    HandshakeError,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
    SourceError,
    SynthesisTimeout,
    TaskFailedError,
    TransportError,
    VoiceBridgeError,
)
from .events import SpeechEvent
from .session import SessionSettings
from .turn import AudioChunk, TurnMetrics, TurnProgress, Word

__version__ = "0.1.0"

__all__ = [
    "AudioChunk",
    "AudioError",
    "AudioFormat",
    "AuthenticationError",
    "ConfigurationError",
    "ConnectionLost",
    "HandshakeError",
    "LocalProtocolError",
    "ProtocolError",
    "RemoteProtocolError",
    "ResultCallback",
    "SessionSettings",
    "SourceError",
    "SpeechEvent",
    "SpeechSynthesizer",
    "SynthesisTimeout",
    "TaskFailedError",
    "TransportError",
    "TurnMetrics",
    "TurnProgress",
    "VoiceBridge",
    "VoiceBridgeError",
    "Word",
    "__version__",
]
