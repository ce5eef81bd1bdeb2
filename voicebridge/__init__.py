"""voicebridge: make an LLM speak while it is still writing (CosyVoice duplex streaming TTS)."""

from __future__ import annotations

from .bridge import TurnMetrics, VoiceBridge
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
from .session import SessionSettings

__version__ = "0.1.0"

__all__ = [
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
    "SpeechSynthesizer",
    "SynthesisTimeout",
    "TaskFailedError",
    "TransportError",
    "TurnMetrics",
    "VoiceBridge",
    "VoiceBridgeError",
    "__version__",
]
