"""Duplex CosyVoice client with the official SDK's surface, for code written against the SDK.

``SpeechSynthesizer`` keeps one WebSocket open across tasks (connection reuse) and opens a new one
when the server has closed it (60-second idle close, task-failed). Threads:

- the caller's thread runs ``streaming_call`` / ``streaming_complete`` / ``streaming_cancel``;
- one receive thread per connection (:mod:`voicebridge.connection`) decodes frames and runs the
  :class:`ResultCallback` methods. Callbacks must return quickly: they run on the thread that
  reads the socket.

All protocol rules live in :class:`voicebridge.protocol.ClientProtocol`; this module only moves
frames and waits, every wait bounded. (:class:`~voicebridge.bridge.VoiceBridge` does not use this
class: its session drives the same connection and protocol machine without blocking waits.)
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from enum import Enum
from typing import Any

from .config import ApiKey, resolve_api_key, resolve_url
from .connection import Connection, open_connection
from .errors import (
    ConfigurationError,
    ConnectionLost,
    SynthesisTimeout,
    TaskFailedError,
    VoiceBridgeError,
)
from .protocol import (
    ClientProtocol,
    ClientState,
    ServerEvent,
    SynthesisParameters,
    TaskFailed,
    TaskFinished,
    TaskStarted,
)

__all__ = ["AudioFormat", "ResultCallback", "SpeechSynthesizer"]

log = logging.getLogger("voicebridge.client")


class AudioFormat(Enum):
    """Output format and sample rate, named as in the SDK. ``DEFAULT`` lets the voice choose."""

    DEFAULT = ("Default", 0)
    PCM_8000HZ_MONO_16BIT = ("pcm", 8000)
    PCM_16000HZ_MONO_16BIT = ("pcm", 16000)
    PCM_22050HZ_MONO_16BIT = ("pcm", 22050)
    PCM_24000HZ_MONO_16BIT = ("pcm", 24000)
    PCM_44100HZ_MONO_16BIT = ("pcm", 44100)
    PCM_48000HZ_MONO_16BIT = ("pcm", 48000)
    WAV_8000HZ_MONO_16BIT = ("wav", 8000)
    WAV_16000HZ_MONO_16BIT = ("wav", 16000)
    WAV_22050HZ_MONO_16BIT = ("wav", 22050)
    WAV_24000HZ_MONO_16BIT = ("wav", 24000)
    WAV_44100HZ_MONO_16BIT = ("wav", 44100)
    WAV_48000HZ_MONO_16BIT = ("wav", 48000)
    MP3_22050HZ_MONO_256KBPS = ("mp3", 22050)
    MP3_24000HZ_MONO_256KBPS = ("mp3", 24000)
    MP3_44100HZ_MONO_256KBPS = ("mp3", 44100)
    MP3_48000HZ_MONO_256KBPS = ("mp3", 48000)
    OGG_OPUS_16KHZ_MONO_32KBPS = ("opus", 16000)
    OGG_OPUS_24KHZ_MONO_32KBPS = ("opus", 24000)
    OGG_OPUS_48KHZ_MONO_32KBPS = ("opus", 48000)

    @property
    def format(self) -> str:
        return self.value[0]

    @property
    def sample_rate(self) -> int:
        return self.value[1]


class ResultCallback:
    """Override what you need. Every method runs on the connection's receive thread."""

    def on_open(self) -> None:
        """The WebSocket is open."""

    def on_event(self, message: str) -> None:
        """A JSON text frame from the server, as received."""

    def on_result(self, event: ServerEvent) -> None:
        """The same frame, decoded (a voicebridge addition: no JSON parsing needed)."""

    def on_data(self, data: bytes) -> None:
        """A binary frame of audio."""

    def on_complete(self) -> None:
        """task-finished arrived: all audio of the task was delivered."""

    def on_error(self, message: str) -> None:
        """The task failed or the connection broke; ``message`` says why."""

    def on_close(self) -> None:
        """The WebSocket closed."""


class SpeechSynthesizer:
    """Streaming speech synthesis over one reusable WebSocket, like the SDK's class of that name.

    ``api_key`` and ``url`` default to ``DASHSCOPE_API_KEY`` and ``DASHSCOPE_WEBSOCKET_BASE_URL``.
    Timeouts are in seconds except where the SDK's own names say milliseconds.
    """

    def __init__(
        self,
        model: str,
        voice: str,
        format: AudioFormat = AudioFormat.DEFAULT,
        volume: int = 50,
        speech_rate: float = 1.0,
        pitch_rate: float = 1.0,
        headers: Mapping[str, str] | None = None,
        callback: ResultCallback | None = None,
        workspace: str | None = None,
        url: str | None = None,
        additional_params: Mapping[str, Any] | None = None,
        *,
        api_key: str | ApiKey | None = None,
        connect_timeout: float = 5.0,
        start_timeout: float = 10.0,
    ) -> None:
        # Rebound at once: no plain-text key stays in this frame (traceback locals).
        api_key = resolve_api_key(api_key)
        if not model or not voice:
            raise ConfigurationError("model and voice are required")
        self.parameters = SynthesisParameters(
            model=model,
            voice=voice,
            format=format.format,
            sample_rate=format.sample_rate,
            volume=volume,
            rate=speech_rate,
            pitch=pitch_rate,
            extra=dict(additional_params or {}),
        )
        self.url = resolve_url(url)
        self._api_key = api_key
        self._headers = dict(headers or {})
        if workspace:
            self._headers["X-DashScope-WorkSpace"] = workspace
        self._callback = callback or ResultCallback()
        self._collect_audio = callback is None  # call() returns the audio only without a callback
        self.connect_timeout = connect_timeout
        self.start_timeout = start_timeout
        self._protocol = ClientProtocol()
        self._connection: Connection | None = None
        self._started = threading.Event()
        self._done = threading.Event()
        self._error: VoiceBridgeError | None = None
        self._audio: list[bytes] | None = None
        self._first_text_at: float | None = None
        self._first_package_delay: float | None = None
        self._last_request_id: str | None = None
        self._last_response: str | None = None

    def __repr__(self) -> str:
        if not hasattr(self, "url"):  # __init__ is still running (traceback locals)
            return "SpeechSynthesizer(<not constructed>)"
        p = self.parameters
        return f"SpeechSynthesizer(model={p.model!r}, voice={p.voice!r}, url={self.url!r})"

    # ------------------------------------------------------------------ connection

    @property
    def connected(self) -> bool:
        return self._connection is not None and not self._connection.closed.is_set()

    @property
    def task_id(self) -> str | None:
        return self._protocol.task_id

    @property
    def task_active(self) -> bool:
        return self._protocol.task_active

    @property
    def error(self) -> VoiceBridgeError | None:
        """Why the current or last task failed (task-failed, lost connection, bad frame)."""
        return self._error

    @property
    def characters(self) -> int:
        """Billed characters of the current or last task (the last ``usage.characters`` seen)."""
        return self._protocol.characters

    def connect(self) -> None:
        """Open the WebSocket now (pre-connect), unless one is open already."""
        if self.connected:
            return
        if self._connection is not None:
            self._connection.close()
        self._connection = open_connection(
            self.url,
            self,
            api_key=self._api_key,
            headers=self._headers,
            timeout=self.connect_timeout,
        )
        self._protocol = ClientProtocol()
        self._callback.on_open()

    def close(self) -> None:
        """Close the WebSocket (stops synthesis at once) and join its receive thread."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def __enter__(self) -> SpeechSynthesizer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ tasks

    def start(self, task_id: str | None = None) -> str:
        """Send run-task and wait for task-started (``start_timeout``); returns the task id.
        Reuses the open connection, or opens one."""
        if self.task_active:
            raise ConfigurationError("a task is already running on this synthesizer")
        if self._protocol.state is ClientState.FAILED:
            self.close()  # the server closes the connection after task-failed
        self.connect()
        assert self._connection is not None
        self._started.clear()
        self._done.clear()
        self._error = None
        self._first_package_delay = None
        frame = self._protocol.run_task(self.parameters, task_id)
        self._send(frame)
        self._wait(self._started, self.start_timeout, "task-started")
        assert self._protocol.task_id is not None
        return self._protocol.task_id

    def streaming_call(self, text: str) -> None:
        """Send a piece of text; the first call starts the task. Empty text is ignored."""
        if not isinstance(text, str):
            raise TypeError(f"streaming_call takes str, not {type(text).__name__}")
        if not text:
            return
        if self._error is not None:
            raise self._error
        if not self.task_active:
            self._first_text_at = time.monotonic()  # the SDK counts the connect and task start
            self.start()
        self._send(self._protocol.continue_task(text))

    def streaming_flush(self) -> None:
        """Ask the server to synthesize the text it is holding back (an SDK extra)."""
        if self._protocol.state is ClientState.STARTED:
            self._send(self._protocol.flush())

    def streaming_complete(self, complete_timeout_millis: int = 600_000) -> None:
        """Send finish-task and block until task-finished; raises on task-failed or timeout.
        Does nothing if no task is running."""
        if self._protocol.state is ClientState.STARTED:
            self._send(self._protocol.finish_task())
        if self._error is not None:
            raise self._error
        if self._protocol.state is ClientState.FINISHING:
            self._wait(self._done, complete_timeout_millis / 1000, "task-finished")

    def streaming_cancel(self, timeout: float = 5.0) -> None:
        """Cancel the task: the server drops pending text and answers task-finished at once.
        A task that has not started yet is abandoned by closing the connection."""
        if self._protocol.state is ClientState.STARTED:
            self._send(self._protocol.finish_task(cancel=True))
            self._wait(self._done, timeout, "task-finished after cancel")
        elif self._protocol.state is ClientState.STARTING:
            self.close()

    def call(self, text: str, timeout_millis: int | None = None) -> bytes | None:
        """Synthesize ``text`` in one task; returns the audio when no callback was given."""
        self._audio = [] if self._collect_audio else None
        try:
            self.streaming_call(text)
            self.streaming_complete(timeout_millis or 600_000)
            return b"".join(self._audio) if self._audio is not None else None
        finally:
            self._audio = None

    def get_last_request_id(self) -> str | None:
        return self._last_request_id

    def get_first_package_delay(self) -> float:
        """Milliseconds from the first text of the last task to its first audio (-1 if none)."""
        return -1.0 if self._first_package_delay is None else self._first_package_delay * 1000

    def get_response(self) -> str | None:
        """The last JSON message received (a task-failed message says why)."""
        return self._last_response

    # ------------------------------------------------------------------ internals

    def _send(self, frame: str) -> None:
        if self._connection is None:
            raise ConnectionLost("not connected")
        log.debug("send %s", frame[:200])
        self._connection.send(frame)

    def _wait(self, event: threading.Event, timeout: float, what: str) -> None:
        if not event.wait(timeout):
            self.close()
            raise SynthesisTimeout(f"no {what} within {timeout:g} s; connection closed")
        if self._error is not None:
            raise self._error

    # ------------------------------------------------------------------ receive thread

    def on_text(self, connection: Connection, text: str) -> None:
        """One JSON frame (ConnectionListener)."""
        if connection is not self._connection:
            return
        log.debug("recv %s", text[:200])
        self._last_response = text
        try:
            event = self._protocol.receive_text(text)
        except VoiceBridgeError as exc:
            self._fail(exc)
            connection.close()
            return
        self._callback.on_event(text)
        self._callback.on_result(event)
        if isinstance(event, TaskStarted):
            self._started.set()
        elif isinstance(event, TaskFinished):
            self._last_request_id = event.request_uuid or event.task_id
            self._callback.on_complete()
            self._done.set()
        elif isinstance(event, TaskFailed):
            self._last_request_id = event.task_id
            self._fail(TaskFailedError(event.code, event.message, event.task_id))

    def on_binary(self, connection: Connection, data: bytes) -> None:
        """One audio frame (ConnectionListener)."""
        if connection is not self._connection:
            return
        try:
            audio = self._protocol.receive_binary(data)
        except VoiceBridgeError as exc:
            self._fail(exc)
            connection.close()
            return
        if self._first_package_delay is None and self._first_text_at is not None:
            self._first_package_delay = time.monotonic() - self._first_text_at
        if self._audio is not None:
            self._audio.append(audio.data)
        self._callback.on_data(audio.data)

    def on_control(self, connection: Connection) -> None:
        """A ping or pong (ConnectionListener): nothing to do."""

    def on_closed(self, connection: Connection, error: VoiceBridgeError | None) -> None:
        """The socket is gone (ConnectionListener, last call)."""
        if connection is self._connection and self._error is None:
            if self.task_active:
                self._fail(error or ConnectionLost("the connection closed during a task"))
            elif error is not None and not isinstance(error, ConnectionLost):
                self._fail(error)
        self._callback.on_close()

    def _fail(self, error: VoiceBridgeError) -> None:
        self._error = error
        self._protocol.fail()
        self._callback.on_error(str(error))
        self._started.set()
        self._done.set()
