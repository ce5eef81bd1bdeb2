"""The one exception tree of voicebridge.

::

    VoiceBridgeError
    ├── ConfigurationError          bad argument or setting, found before any I/O
    ├── ProtocolError
    │   ├── LocalProtocolError      we broke the protocol (e.g. text before task-started)
    │   ├── RemoteProtocolError     the peer sent something the protocol does not allow
    │   └── TaskRejected            (server side) a run-task or text the service refuses
    ├── TransportError              the WebSocket could not be opened or was lost
    │   ├── HandshakeError          the server refused the upgrade (``status`` holds the HTTP code)
    │   │   └── AuthenticationError 401/403: a missing, bad or expired key
    │   └── ConnectionLost          the connection closed while a task was running
    ├── TaskFailedError             the server sent task-failed (``code``, ``message``, ``task_id``)
    ├── SynthesisTimeout            a bounded wait ran out (also a :class:`TimeoutError`)
    ├── SourceError                 the LLM stream failed (e.g. ``response.failed``)
    └── AudioError                  no output device, PyAudio missing, a sink failed

No exception text ever contains an API key: keys are wrapped in :class:`voicebridge.config.ApiKey`,
whose ``str`` and ``repr`` are masked, and server-provided text is scrubbed of the key.
"""

from __future__ import annotations

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
    "TaskRejected",
    "TransportError",
    "VoiceBridgeError",
]

# Server error messages that mean "retrying with the same request will fail again".
_PERMANENT_CODES = frozenset({"InvalidParameter", "InvalidApiKey", "AccessDenied", "ModelNotFound"})
_TRANSIENT_MESSAGES = ("request timeout after", "rate limit exceeded", "internal", "timeout")


class VoiceBridgeError(Exception):
    """Base class of every error voicebridge raises on purpose.

    When it ends a turn, ``unspoken_text`` holds the turn's text that was not spoken (to retry
    it, or show it); its length is part of the message.
    """

    unspoken_text: str = ""

    def __str__(self) -> str:
        text = super().__str__()
        if self.unspoken_text:
            text += f" ({len(self.unspoken_text)} characters not spoken)"
        return text


class ConfigurationError(VoiceBridgeError, ValueError):
    """A bad argument or setting, found before any I/O."""


class ProtocolError(VoiceBridgeError):
    """A message that the CosyVoice duplex protocol does not allow."""


class LocalProtocolError(ProtocolError):
    """Our side tried to do something the protocol forbids in the current state."""


class RemoteProtocolError(ProtocolError):
    """The peer sent a malformed message, or one that is out of order."""


class TaskRejected(ProtocolError):
    """Server side: the client asked for something the service refuses; the local server turns
    it into task-failed with this ``code`` and ``message``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class TransportError(VoiceBridgeError):
    """The WebSocket could not be opened, or was lost."""


class HandshakeError(TransportError):
    """The server refused the WebSocket upgrade with an HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"handshake refused with HTTP {status}: {message}")
        self.status = status


class AuthenticationError(HandshakeError):
    """HTTP 401 or 403 at the handshake: the API key is missing, wrong or expired."""


class ConnectionLost(TransportError):
    """The connection closed (or stopped answering) while a task was running."""


class TaskFailedError(VoiceBridgeError):
    """The server ended a task with task-failed."""

    def __init__(self, code: str, message: str, task_id: str) -> None:
        super().__init__(f"task {task_id} failed: {code}: {message}")
        self.code = code
        self.message = message
        self.task_id = task_id

    @property
    def retryable(self) -> bool:
        """True when sending the same text on a new task may succeed (idle timeout, throttling)."""
        lowered = self.message.lower()
        if any(marker in lowered for marker in _TRANSIENT_MESSAGES):
            return True
        return self.code not in _PERMANENT_CODES and "418" not in self.message


class SynthesisTimeout(VoiceBridgeError, TimeoutError):
    """A bounded wait ran out (connect, task-started, task-finished, audio drain)."""


class SourceError(VoiceBridgeError):
    """The LLM stream reported a failure (an ``error`` or ``response.failed`` event)."""


class AudioError(VoiceBridgeError):
    """An audio sink failed: no output device, PyAudio missing, a file that cannot be written."""
