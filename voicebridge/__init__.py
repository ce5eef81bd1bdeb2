"""voicebridge: make an LLM speak while it is still writing (CosyVoice duplex streaming TTS)."""

from __future__ import annotations

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

__version__ = "0.1.0"

__all__ = [
    "AudioError",
    "AuthenticationError",
    "ConfigurationError",
    "ConnectionLost",
    "HandshakeError",
    "LocalProtocolError",
    "ProtocolError",
    "RemoteProtocolError",
    "SourceError",
    "SynthesisTimeout",
    "TaskFailedError",
    "TransportError",
    "VoiceBridgeError",
    "__version__",
]
