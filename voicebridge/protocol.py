"""Sans-I/O core of the CosyVoice duplex WebSocket protocol (docs/protocol.md).

Everything here is pure: messages in, messages out, no sockets, no threads, no clock. The client
(:mod:`voicebridge.client`) is a thin I/O layer over :class:`ClientProtocol`; the local server's
machine, which emulates the service, lives in :mod:`voicebridge.server.service` and shares the
messages and the codec defined here.

Client task states (one task at a time per connection)::

    IDLE --run_task--> STARTING --task-started--> STARTED --finish_task--> FINISHING
      ^                                          continue_task*, flush*          |
      +------------------------------ task-finished ---------------------------+
    any --task-failed or fail()--> FAILED (the service closes the connection)

The moves are one table, ``_TRANSITIONS``.

Text frames carry JSON; binary frames carry audio for the current task.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from .errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "ACTIVE_STATES",
    "BIT_RATE_RANGE",
    "CONNECTION_IDLE_TIMEOUT",
    "DEFAULT_SAMPLE_RATE",
    "FORMATS",
    "LANGUAGE_HINTS",
    "MAX_INSTRUCTION_CHARACTERS",
    "PITCH_RANGE",
    "RATE_RANGE",
    "SAMPLE_RATES",
    "SEED_RANGE",
    "TASK_IDLE_TIMEOUT",
    "VOLUME_RANGE",
    "Audio",
    "ClientMessage",
    "ClientProtocol",
    "ClientState",
    "ContinueTask",
    "FinishTask",
    "ResultGenerated",
    "RunTask",
    "ServerEvent",
    "SynthesisParameters",
    "TaskFailed",
    "TaskFinished",
    "TaskStarted",
    "decode_client_message",
    "decode_server_event",
    "encode_client_message",
    "encode_server_event",
    "is_synthesis_notice",
    "new_task_id",
]

FORMATS = ("pcm", "wav", "mp3", "opus")
SAMPLE_RATES = (8000, 16000, 22050, 24000, 44100, 48000)
DEFAULT_SAMPLE_RATE = 22050  # most voices' own rate
DEFAULT_FORMAT = "Default"  # the SDK's word for "the voice's own format and rate"
TASK_IDLE_TIMEOUT = 23.0
"""Seconds without text (or finish-task) after which the service fails a task (docs/protocol.md)."""
CONNECTION_IDLE_TIMEOUT = 60.0
"""Seconds a connection may stay without a task before the service closes it."""
VOLUME_RANGE = (0, 100)
RATE_RANGE = PITCH_RANGE = (0.5, 2.0)
SEED_RANGE = (0, 65535)
BIT_RATE_RANGE = (6, 510)  # kbps, opus only
MAX_INSTRUCTION_CHARACTERS = 128  # issue 12's figure; the service pages give fixed phrases only
LANGUAGE_HINTS = ("zh", "en", "ja", "ko", "fr", "de", "es", "it", "ru", "pt", "th")
"""Languages ``language_hints`` may name: zh, en, fr, de, ja, ko and ru are in the SDK pages; es,
it, pt and th in newer service pages. The service reads the first element only."""


def new_task_id() -> str:
    """A fresh task id: 32 lowercase hex digits, like the SDK's."""
    return uuid.uuid4().hex


# --------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class SynthesisParameters:
    """What a run-task asks for. ``format="Default"`` with ``sample_rate=0`` means "voice default".

    ``rate`` and ``pitch`` are factors (0.5-2.0), ``volume`` is 0-100; ``extra`` carries the
    optional parameters unchanged (``seed``, ``language_hints``, ``word_timestamp_enabled``...).
    """

    model: str
    voice: str
    format: str = "pcm"
    sample_rate: int = DEFAULT_SAMPLE_RATE
    volume: int = 50
    rate: float = 1.0
    pitch: float = 1.0
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_payload(self) -> dict[str, Any]:
        """The ``payload.parameters`` object of a run-task."""
        params: dict[str, Any] = {
            "text_type": "PlainText",
            "voice": self.voice,
            "format": self.format,
            "sample_rate": self.sample_rate,
            "volume": self.volume,
            "rate": self.rate,
            "pitch": self.pitch,
        }
        params.update(self.extra)
        return params


# --------------------------------------------------------------------------- client messages


@dataclass(frozen=True)
class RunTask:
    """Start a task. ``parameters`` is the raw ``payload.parameters`` object."""

    task_id: str
    model: str | None
    parameters: Mapping[str, Any]
    has_input: bool = True

    @classmethod
    def create(cls, task_id: str, parameters: SynthesisParameters) -> RunTask:
        return cls(task_id, parameters.model, parameters.to_payload())


@dataclass(frozen=True)
class ContinueTask:
    """Send text. ``flush`` (an SDK extra) asks the server to synthesize the pending tail now."""

    task_id: str
    text: str
    flush: bool = False


@dataclass(frozen=True)
class FinishTask:
    """End the task after the text sent so far; ``cancel`` drops what is not synthesized yet."""

    task_id: str
    cancel: bool = False


ClientMessage = RunTask | ContinueTask | FinishTask


def _header(action: str, task_id: str) -> dict[str, str]:
    return {"action": action, "task_id": task_id, "streaming": "duplex"}


def encode_client_message(message: ClientMessage) -> str:
    """The JSON text frame for a client message, as the official SDK writes it."""
    payload: dict[str, Any]
    if isinstance(message, RunTask):
        payload = {
            "task_group": "audio",
            "task": "tts",
            "function": "SpeechSynthesizer",
            "model": message.model,
            "parameters": dict(message.parameters),
            "input": {},
        }
        header = _header("run-task", message.task_id)
    elif isinstance(message, ContinueTask):
        payload = {"input": {"flush": True} if message.flush else {"text": message.text}}
        header = _header("continue-task", message.task_id)
    else:
        payload = {"input": {"directive": "cancel"} if message.cancel else {}}
        header = _header("finish-task", message.task_id)
    return json.dumps({"header": header, "payload": payload}, ensure_ascii=False)


def _load_object(text: str | bytes, who: str) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        obj = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RemoteProtocolError(f"{who} sent a text frame that is not JSON: {exc}") from None
    except RecursionError:
        raise RemoteProtocolError(f"{who} sent JSON nested too deeply") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("header"), dict):
        raise RemoteProtocolError(f"{who} sent a JSON message without a 'header' object")
    payload = obj.get("payload", {})
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        raise RemoteProtocolError(f"{who} sent a 'payload' that is not an object")
    return obj["header"], payload


def _task_id(header: Mapping[str, Any], who: str) -> str:
    task_id = header.get("task_id")
    if not isinstance(task_id, str) or not task_id:
        raise RemoteProtocolError(f"{who} sent a message without a task_id")
    return task_id


def decode_client_message(text: str | bytes) -> ClientMessage:
    """Parse a client text frame. Structure errors raise :class:`RemoteProtocolError`;
    parameter checks are left to the server machine (:mod:`voicebridge.server.service`), where
    they become task-failed."""
    header, payload = _load_object(text, "the client")
    action = header.get("action")
    task_id = _task_id(header, "the client")
    raw_input = payload.get("input")
    input_obj = raw_input if isinstance(raw_input, dict) else {}
    if action == "run-task":
        model = payload.get("model")
        params = payload.get("parameters")
        return RunTask(
            task_id=task_id,
            model=model if isinstance(model, str) else None,
            parameters=params if isinstance(params, dict) else {},
            has_input=isinstance(raw_input, dict),
        )
    if action == "continue-task":
        text_value = input_obj.get("text", "")
        if not isinstance(text_value, str):
            raise RemoteProtocolError("continue-task 'payload.input.text' must be a string")
        return ContinueTask(task_id, text_value, flush=input_obj.get("flush") is True)
    if action == "finish-task":
        return FinishTask(task_id, cancel=input_obj.get("directive") == "cancel")
    raise RemoteProtocolError(f"unknown action {action!r}")


# --------------------------------------------------------------------------- server events


@dataclass(frozen=True)
class TaskStarted:
    task_id: str


@dataclass(frozen=True)
class ResultGenerated:
    """A result-generated event. ``type`` is sentence-begin, sentence-synthesis, sentence-end, or
    None (older models send none); ``characters`` is the cumulative billed count when present."""

    task_id: str
    type: str | None
    index: int | None = None
    original_text: str | None = None
    words: tuple[Mapping[str, Any], ...] = ()
    characters: int | None = None


@dataclass(frozen=True)
class TaskFinished:
    task_id: str
    characters: int | None = None
    request_uuid: str | None = None
    words: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class TaskFailed:
    task_id: str
    code: str
    message: str


@dataclass(frozen=True)
class Audio:
    """One binary frame of audio; it belongs to the task that is running when it arrives."""

    data: bytes


ServerEvent = TaskStarted | ResultGenerated | TaskFinished | TaskFailed | Audio


def encode_server_event(event: ServerEvent) -> str | bytes:
    """The frame for a server event: JSON text, or the raw bytes of an :class:`Audio`."""
    if isinstance(event, Audio):
        return event.data
    header: dict[str, Any] = {"task_id": event.task_id, "attributes": {}}
    payload: dict[str, Any] = {}
    if isinstance(event, TaskStarted):
        header["event"] = "task-started"
    elif isinstance(event, ResultGenerated):
        header["event"] = "result-generated"
        sentence: dict[str, Any] = {"words": list(event.words)}
        if event.index is not None:
            sentence["index"] = event.index
        output: dict[str, Any] = {"sentence": sentence}
        if event.type is not None:
            output["type"] = event.type
        if event.original_text is not None:
            output["original_text"] = event.original_text
        payload["output"] = output
        if event.characters is not None:
            payload["usage"] = {"characters": event.characters}
    elif isinstance(event, TaskFinished):
        header["event"] = "task-finished"
        if event.request_uuid:
            header["attributes"] = {"request_uuid": event.request_uuid}
        payload["output"] = {"sentence": {"words": list(event.words)}}
        if event.characters is not None:
            payload["usage"] = {"characters": event.characters}
    else:
        header["event"] = "task-failed"
        header["error_code"] = event.code
        header["error_message"] = event.message
    return json.dumps({"header": header, "payload": payload}, ensure_ascii=False)


def _usage_characters(payload: Mapping[str, Any]) -> int | None:
    usage = payload.get("usage")
    value = usage.get("characters") if isinstance(usage, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _words(sentence: Any) -> tuple[Mapping[str, Any], ...]:
    words = sentence.get("words") if isinstance(sentence, dict) else None
    return tuple(w for w in words if isinstance(w, dict)) if isinstance(words, list) else ()


def decode_server_event(text: str | bytes) -> ServerEvent:
    """Parse a server text frame, tolerating missing optional fields (older models omit them)."""
    header, payload = _load_object(text, "the server")
    event = header.get("event")
    if event == "task-failed":  # a failure counts even when the server names no task
        return TaskFailed(
            task_id=str(header.get("task_id") or ""),
            code=str(header.get("error_code") or "UnknownError"),
            message=str(header.get("error_message") or ""),
        )
    task_id = _task_id(header, "the server")
    if event == "task-started":
        return TaskStarted(task_id)
    if event == "result-generated":
        output = payload.get("output")
        output = output if isinstance(output, dict) else {}
        sentence = output.get("sentence")
        index = sentence.get("index") if isinstance(sentence, dict) else None
        original = output.get("original_text")
        kind = output.get("type")
        return ResultGenerated(
            task_id=task_id,
            type=kind if isinstance(kind, str) else None,
            index=index if isinstance(index, int) and not isinstance(index, bool) else None,
            original_text=original if isinstance(original, str) else None,
            words=_words(sentence),
            characters=_usage_characters(payload),
        )
    if event == "task-finished":
        attributes = header.get("attributes")
        uuid_value = attributes.get("request_uuid") if isinstance(attributes, dict) else None
        output = payload.get("output")
        sentence = output.get("sentence") if isinstance(output, dict) else None
        return TaskFinished(
            task_id=task_id,
            characters=_usage_characters(payload),
            request_uuid=uuid_value if isinstance(uuid_value, str) else None,
            words=_words(sentence),
        )
    raise RemoteProtocolError(f"unknown server event {event!r}")


def is_synthesis_notice(text: str) -> bool:
    """True for a sentence-synthesis event, told without decoding the JSON: one comes before
    every audio frame, and it says nothing the audio does not. A frame that names another event
    or carries text is never taken for one (decode it in full)."""
    return (
        "sentence-synthesis" in text
        and "original_text" not in text
        and "task-" not in text
        and "sentence-end" not in text
        and "sentence-begin" not in text
    )


# --------------------------------------------------------------------------- client machine


class ClientState(Enum):
    IDLE = "idle"
    STARTING = "starting"
    STARTED = "started"
    FINISHING = "finishing"
    FAILED = "failed"


_S = ClientState
# Every legal move of the client machine, in one table (h11's style): (state, what) -> next state.
# "what" is an action we send or an event we receive. task-failed and fail() lead to FAILED from
# any state; a move not listed is a LocalProtocolError (ours) or a RemoteProtocolError (theirs).
_TRANSITIONS: dict[tuple[ClientState, str], ClientState] = {
    (_S.IDLE, "run-task"): _S.STARTING,
    (_S.STARTING, "task-started"): _S.STARTED,
    (_S.STARTED, "continue-task"): _S.STARTED,
    (_S.STARTED, "flush"): _S.STARTED,
    (_S.STARTED, "finish-task"): _S.FINISHING,
    (_S.STARTED, "result-generated"): _S.STARTED,
    (_S.FINISHING, "result-generated"): _S.FINISHING,
    (_S.STARTED, "audio"): _S.STARTED,
    (_S.FINISHING, "audio"): _S.FINISHING,
    (_S.FINISHING, "task-finished"): _S.IDLE,
}
ACTIVE_STATES = frozenset({_S.STARTING, _S.STARTED, _S.FINISHING})
"""States in which a task is running on the connection."""


class ClientProtocol:
    """The client side of one connection: builds frames to send, checks frames received.

    Methods that send return the text frame to write; ``receive_*`` return the decoded event.
    ``characters`` is the last billed count seen in the current (or last) task. The I/O layer
    calls :meth:`fail` when the connection breaks; after task-failed or :meth:`fail` the machine
    is FAILED for good (the service closes the connection after a failure: use a new one).
    """

    def __init__(self) -> None:
        self.state = ClientState.IDLE
        self.task_id: str | None = None
        self.characters = 0
        self.request_uuid: str | None = None

    @property
    def task_active(self) -> bool:
        return self.state in ACTIVE_STATES

    def run_task(self, parameters: SynthesisParameters, task_id: str | None = None) -> str:
        self._send("run-task")
        self.task_id = task_id or new_task_id()
        self.characters = 0
        self.request_uuid = None
        return encode_client_message(RunTask.create(self.task_id, parameters))

    def continue_task(self, text: str) -> str:
        if not text:
            raise LocalProtocolError("continue-task needs non-empty text")
        return encode_client_message(ContinueTask(self._send("continue-task"), text))

    def flush(self) -> str:
        return encode_client_message(ContinueTask(self._send("flush"), "", flush=True))

    def finish_task(self, *, cancel: bool = False) -> str:
        return encode_client_message(FinishTask(self._send("finish-task"), cancel=cancel))

    def fail(self) -> None:
        """The connection broke (or sent garbage): no further frame belongs to this machine."""
        self.state = ClientState.FAILED

    def receive_text(self, text: str | bytes) -> ServerEvent:
        event = decode_server_event(text)
        assert not isinstance(event, Audio)
        if isinstance(event, TaskFailed):
            if not event.task_id and self.task_id:
                event = TaskFailed(self.task_id, event.code, event.message)
            self._check_task(event.task_id, "task-failed")
            self.state = ClientState.FAILED
            return event
        what = {TaskStarted: "task-started", ResultGenerated: "result-generated"}.get(
            type(event), "task-finished"
        )
        self._check_task(event.task_id, what)
        self._receive(what)
        if isinstance(event, ResultGenerated | TaskFinished) and event.characters is not None:
            self.characters = event.characters
        if isinstance(event, TaskFinished):
            self.request_uuid = event.request_uuid
        return event

    def receive_binary(self, data: bytes) -> Audio:
        self._receive("audio")
        return Audio(data)

    def _send(self, what: str) -> str:
        """Move for an action we send; the task id it belongs to (LocalProtocolError if illegal)."""
        next_state = _TRANSITIONS.get((self.state, what))
        if next_state is None:
            hint = " (wait for task-started)" if self.state is ClientState.STARTING else ""
            raise LocalProtocolError(f"cannot send {what} while {self.state.value}{hint}")
        self.state = next_state
        return self.task_id or ""

    def _receive(self, what: str) -> None:
        next_state = _TRANSITIONS.get((self.state, what))
        if next_state is None:
            raise RemoteProtocolError(f"{what} arrived while the client is {self.state.value}")
        self.state = next_state

    def _check_task(self, task_id: str, what: str) -> None:
        if task_id != self.task_id:
            raise RemoteProtocolError(f"{what} for task {task_id}, expected {self.task_id}")
