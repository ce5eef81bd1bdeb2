"""Sans-I/O core of the CosyVoice duplex WebSocket protocol (see shared PROTOCOL.md).

Everything here is pure: messages in, messages out, no sockets, no threads, no clock (the server
machine takes ``now`` as an argument). The client (:mod:`voicebridge.client`) and the local server
(:mod:`voicebridge.server`) are thin I/O layers over the two state machines below.

Client task states (one task at a time per connection)::

    IDLE --run_task--> STARTING --task-started--> STARTED --finish_task--> FINISHING
      ^                                              |  continue_task*          |
      +------------------- task-finished ------------+-------------------------+
    any --task-failed--> FAILED (the server closes the connection)

Text frames carry JSON; binary frames carry audio for the current task.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from .errors import LocalProtocolError, RemoteProtocolError, TaskRejected
from .text.billing import MAX_MESSAGE_CHARACTERS, MAX_TASK_CHARACTERS, count_characters

__all__ = [
    "FORMATS",
    "SAMPLE_RATES",
    "Audio",
    "CancelSynthesis",
    "ClientMessage",
    "ClientProtocol",
    "ClientState",
    "CloseConnection",
    "ContinueTask",
    "FinishTask",
    "ResultGenerated",
    "RunTask",
    "ServerAction",
    "ServerEvent",
    "ServerLimits",
    "ServerProtocol",
    "SynthesisParameters",
    "Synthesize",
    "TaskFailed",
    "TaskFinished",
    "TaskStarted",
    "decode_client_message",
    "decode_server_event",
    "encode_client_message",
    "encode_server_event",
    "new_task_id",
    "split_sentences",
]

FORMATS = ("pcm", "wav", "mp3", "opus")
SAMPLE_RATES = (8000, 16000, 22050, 24000, 44100, 48000)
DEFAULT_FORMAT = "Default"  # the SDK's word for "the voice's own format and rate"

# Error texts of the real service (PROTOCOL.md, "Known error messages").
MSG_IDLE_TIMEOUT = "request timeout after 23 seconds."
MSG_EMPTY_TEXT = "Please ensure input text is valid."
MSG_MODEL_MISSING = "Missing required parameter 'payload.model'! Please follow the protocol!"
MSG_VOICE_MISSING = "Request voice is invalid!"
MSG_VOICE_UNKNOWN = "[tts:]Engine return error code: 418"
MSG_INPUT_MISSING = "task can not be null"
CODE_INVALID_PARAMETER = "InvalidParameter"
CODE_CLIENT_ERROR = "CLIENT_ERROR"
CODE_INTERNAL_ERROR = "InternalError"


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
    sample_rate: int = 22050
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


def _number(params: Mapping[str, Any], name: str, default: float, low: float, high: float) -> float:
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise TaskRejected(
            CODE_INVALID_PARAMETER, f"Parameter '{name}' must be a number from {low:g} to {high:g}."
        )
    return float(value)


def parameters_from_run_task(
    message: RunTask, *, default_sample_rate: int = 22050
) -> SynthesisParameters:
    """Validate a received run-task the way the service does; raises :class:`TaskRejected`."""
    if not message.has_input:
        raise TaskRejected(CODE_INVALID_PARAMETER, MSG_INPUT_MISSING)
    if not message.model:
        raise TaskRejected(CODE_INVALID_PARAMETER, MSG_MODEL_MISSING)
    params = message.parameters
    voice = params.get("voice")
    if not isinstance(voice, str) or not voice:
        raise TaskRejected(CODE_INVALID_PARAMETER, MSG_VOICE_MISSING)
    fmt = params.get("format", DEFAULT_FORMAT)
    fmt = fmt.lower() if isinstance(fmt, str) else fmt
    if fmt in (None, "", "default"):
        fmt = "mp3"
    if fmt not in FORMATS:
        raise TaskRejected(CODE_INVALID_PARAMETER, f"Parameter 'format' is invalid: {fmt!r}.")
    sample_rate = params.get("sample_rate", 0) or default_sample_rate
    if sample_rate not in SAMPLE_RATES:
        raise TaskRejected(
            CODE_INVALID_PARAMETER, f"Parameter 'sample_rate' is invalid: {sample_rate!r}."
        )
    known = {"text_type", "voice", "format", "sample_rate", "volume", "rate", "pitch"}
    return SynthesisParameters(
        model=message.model,
        voice=voice,
        format=str(fmt),
        sample_rate=int(sample_rate),
        volume=int(_number(params, "volume", 50, 0, 100)),
        rate=_number(params, "rate", 1.0, 0.5, 2.0),
        pitch=_number(params, "pitch", 1.0, 0.5, 2.0),
        extra={k: v for k, v in params.items() if k not in known},
    )


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
    parameter checks are left to :func:`parameters_from_run_task` (they become task-failed)."""
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


# --------------------------------------------------------------------------- client machine


class ClientState(Enum):
    IDLE = "idle"
    STARTING = "starting"
    STARTED = "started"
    FINISHING = "finishing"
    FAILED = "failed"


class ClientProtocol:
    """The client side of one connection: builds frames to send, checks frames received.

    Methods that send return the text frame to write; ``receive_*`` return the decoded event.
    ``characters`` is the last billed count seen in the current (or last) task.
    """

    def __init__(self) -> None:
        self.state = ClientState.IDLE
        self.task_id: str | None = None
        self.characters = 0
        self.request_uuid: str | None = None

    def run_task(self, parameters: SynthesisParameters, task_id: str | None = None) -> str:
        if self.state is not ClientState.IDLE:
            raise LocalProtocolError(f"cannot start a task while {self.state.value}")
        self.task_id = task_id or new_task_id()
        self.state = ClientState.STARTING
        self.characters = 0
        self.request_uuid = None
        return encode_client_message(RunTask.create(self.task_id, parameters))

    def continue_task(self, text: str) -> str:
        if not text:
            raise LocalProtocolError("continue-task needs non-empty text")
        return encode_client_message(ContinueTask(self._require_started("send text"), text))

    def flush(self) -> str:
        return encode_client_message(ContinueTask(self._require_started("flush"), "", flush=True))

    def finish_task(self, *, cancel: bool = False) -> str:
        task_id = self._require_started("finish the task")
        self.state = ClientState.FINISHING
        return encode_client_message(FinishTask(task_id, cancel=cancel))

    def _require_started(self, what: str) -> str:
        if self.state is not ClientState.STARTED or self.task_id is None:
            state = self.state.value
            raise LocalProtocolError(f"cannot {what} while {state} (wait for task-started)")
        return self.task_id

    def receive_text(self, text: str | bytes) -> ServerEvent:
        event = decode_server_event(text)
        assert not isinstance(event, Audio)
        if isinstance(event, TaskFailed) and not event.task_id and self.task_id:
            event = TaskFailed(self.task_id, event.code, event.message)
        if event.task_id != self.task_id:
            raise RemoteProtocolError(
                f"event {type(event).__name__} for task {event.task_id}, expected {self.task_id}"
            )
        if isinstance(event, TaskFailed):
            self.state = ClientState.FAILED
        elif isinstance(event, TaskStarted):
            self._expect((ClientState.STARTING,), "task-started")
            self.state = ClientState.STARTED
        elif isinstance(event, ResultGenerated):
            self._expect((ClientState.STARTED, ClientState.FINISHING), "result-generated")
            if event.characters is not None:
                self.characters = event.characters
        else:
            self._expect((ClientState.STARTED, ClientState.FINISHING), "task-finished")
            if event.characters is not None:
                self.characters = event.characters
            self.request_uuid = event.request_uuid
            self.state = ClientState.IDLE
        return event

    def receive_binary(self, data: bytes) -> Audio:
        self._expect((ClientState.STARTED, ClientState.FINISHING), "audio")
        return Audio(data)

    def _expect(self, states: tuple[ClientState, ...], what: str) -> None:
        if self.state not in states:
            raise RemoteProtocolError(f"{what} arrived while the client is {self.state.value}")


# --------------------------------------------------------------------------- server sentences

_SENTENCE_ENDS = frozenset("。！？!?；;\n")
_CLOSERS = frozenset("\"'”’」』）)]")


def split_sentences(text: str) -> tuple[list[str], str]:
    """Cut ``text`` into the complete sentences the service would synthesize now, and the tail it
    would hold back. A '.' ends a sentence only before white space (so 3.14 and e.g. stay whole);
    closing quotes and brackets stay with their sentence."""
    sentences: list[str] = []
    start = 0
    i = 0
    n = len(text)
    while i < n:
        char = text[i]
        end = char in _SENTENCE_ENDS or (char == "." and i + 1 < n and text[i + 1].isspace())
        if end:
            j = i + 1
            while j < n and (text[j] in _CLOSERS or text[j] in _SENTENCE_ENDS):
                j += 1
            while j < n and text[j].isspace() and text[j] != "\n":
                j += 1
            if text[start:j].strip():
                sentences.append(text[start:j])
                start = j
            i = j
            continue
        i += 1
    return sentences, text[start:]


# --------------------------------------------------------------------------- server machine


@dataclass(frozen=True)
class Synthesize:
    """Command to the server's I/O layer: synthesize sentence ``index`` of ``task_id``, then report
    back through :meth:`ServerProtocol.sentence_begin`, ``sentence_chunk`` and ``sentence_done``."""

    task_id: str
    index: int
    text: str
    parameters: SynthesisParameters


@dataclass(frozen=True)
class CancelSynthesis:
    """Command: drop queued and running synthesis of ``task_id``; its audio must not be sent."""

    task_id: str


@dataclass(frozen=True)
class CloseConnection:
    reason: str


ServerAction = ServerEvent | Synthesize | CancelSynthesis | CloseConnection


@dataclass(frozen=True)
class ServerLimits:
    """Service limits; counts are billed characters (CJK ideograph = 2), times are seconds."""

    idle_timeout: float = 23.0
    connection_idle_timeout: float = 60.0
    max_message_characters: int = MAX_MESSAGE_CHARACTERS
    max_task_characters: int = MAX_TASK_CHARACTERS
    idle_timeout_message: str = MSG_IDLE_TIMEOUT


@dataclass
class _ServerTask:
    task_id: str
    parameters: SynthesisParameters
    last_text_at: float
    pending: str = ""
    received_characters: int = 0
    billed: int = 0
    next_index: int = 0
    outstanding: set[int] = field(default_factory=set)
    finishing: bool = False


class ServerProtocol:
    """The service's side of one connection.

    Feed it frames with ``receive_text``/``receive_binary`` and the time with ``poll``; report
    synthesis progress with ``sentence_begin``/``sentence_chunk``/``sentence_done``. Each returns
    the actions for the I/O layer, in order: events to send, :class:`Synthesize` and
    :class:`CancelSynthesis` commands, and :class:`CloseConnection`. ``voice_check(model, voice)``
    says whether a voice exists for a model; ``formats`` lists the formats the engine can produce.
    """

    def __init__(
        self,
        *,
        now: float,
        limits: ServerLimits | None = None,
        voice_check: Callable[[str, str], bool] = lambda model, voice: True,
        formats: tuple[str, ...] = FORMATS,
        default_sample_rate: int = 22050,
    ) -> None:
        self.limits = limits or ServerLimits()
        self._voice_check = voice_check
        self._formats = formats
        self._default_sample_rate = default_sample_rate
        self._task: _ServerTask | None = None
        self._idle_since: float | None = now
        self.closed = False

    @property
    def task_id(self) -> str | None:
        return self._task.task_id if self._task else None

    def next_deadline(self) -> float | None:
        """When :meth:`poll` must next be called (a timer may fire then), or None."""
        if self.closed:
            return None
        task = self._task
        if task is not None and not task.finishing:
            return task.last_text_at + self.limits.idle_timeout
        if self._idle_since is not None:
            return self._idle_since + self.limits.connection_idle_timeout
        return None

    def poll(self, now: float) -> list[ServerAction]:
        deadline = self.next_deadline()
        if deadline is None or now < deadline:
            return []
        if self._task is not None:
            return self._fail(CODE_INVALID_PARAMETER, self.limits.idle_timeout_message)
        self.closed = True
        return [CloseConnection("connection idle")]

    def receive_binary(self, data: bytes, now: float) -> list[ServerAction]:
        if self.closed:
            return []
        return self._fail(CODE_CLIENT_ERROR, "binary frames are not accepted from the client")

    def receive_text(self, text: str | bytes, now: float) -> list[ServerAction]:
        if self.closed:
            return []
        try:
            message = decode_client_message(text)
        except RemoteProtocolError as exc:
            return self._fail(CODE_CLIENT_ERROR, str(exc))
        if isinstance(message, RunTask):
            return self._run_task(message, now)
        task = self._task
        if task is None or task.task_id != message.task_id:
            return self._fail(
                CODE_CLIENT_ERROR, f"task {message.task_id} is not running", message.task_id
            )
        if isinstance(message, ContinueTask):
            return self._continue_task(task, message, now)
        return self._finish_task(task, message, now)

    def _run_task(self, message: RunTask, now: float) -> list[ServerAction]:
        actions: list[ServerAction] = []
        if self._task is not None:  # a new run-task ends the running task and drops its audio
            actions.append(CancelSynthesis(self._task.task_id))
            self._task = None
        try:
            params = parameters_from_run_task(
                message, default_sample_rate=self._default_sample_rate
            )
            if params.format not in self._formats:
                raise TaskRejected(
                    CODE_INVALID_PARAMETER,
                    f"format {params.format} is not supported by this server "
                    f"(supported: {', '.join(self._formats)})",
                )
            if not self._voice_check(params.model, params.voice):
                raise TaskRejected(CODE_INVALID_PARAMETER, MSG_VOICE_UNKNOWN)
        except TaskRejected as exc:
            return actions + self._fail(exc.code, exc.message, message.task_id)
        self._task = _ServerTask(message.task_id, params, last_text_at=now)
        self._idle_since = None
        return [*actions, TaskStarted(message.task_id)]

    def _continue_task(
        self, task: _ServerTask, message: ContinueTask, now: float
    ) -> list[ServerAction]:
        if task.finishing:
            return self._fail(CODE_CLIENT_ERROR, "text arrived after finish-task", task.task_id)
        if message.flush:
            return self._emit(task, force=True)
        if not message.text:
            return self._fail(CODE_INVALID_PARAMETER, MSG_EMPTY_TEXT, task.task_id)
        size = count_characters(message.text)
        limit = self.limits.max_message_characters
        if size > limit:
            return self._fail(
                CODE_INVALID_PARAMETER,
                f"Text length {size} exceeds the limit of {limit} characters per request.",
                task.task_id,
            )
        total_limit = self.limits.max_task_characters
        if task.received_characters + size > total_limit:
            return self._fail(
                CODE_INVALID_PARAMETER,
                f"Total text length exceeds the limit of {total_limit} characters per task.",
                task.task_id,
            )
        task.received_characters += size
        task.last_text_at = now
        task.pending += message.text
        return self._emit(task, force=False)

    def _finish_task(
        self, task: _ServerTask, message: FinishTask, now: float
    ) -> list[ServerAction]:
        if message.cancel:
            self._task = None
            self._idle_since = now
            return [CancelSynthesis(task.task_id), TaskFinished(task.task_id, task.billed)]
        task.finishing = True
        actions = self._emit(task, force=True)
        return actions + self._maybe_finish(task, now)

    def _emit(self, task: _ServerTask, *, force: bool) -> list[ServerAction]:
        sentences, tail = split_sentences(task.pending)
        if force and tail.strip():
            sentences.append(tail)
            tail = ""
        task.pending = tail
        actions: list[ServerAction] = []
        for sentence in sentences:
            index = task.next_index
            task.next_index += 1
            task.outstanding.add(index)
            actions.append(Synthesize(task.task_id, index, sentence, task.parameters))
        return actions

    def sentence_begin(self, task_id: str, index: int, text: str) -> list[ServerAction]:
        """The sentence-begin event, sent before the sentence's first audio; empty if cancelled."""
        if self.task_id != task_id:
            return []
        return [ResultGenerated(task_id, "sentence-begin", index, original_text=text)]

    def sentence_chunk(self, task_id: str, index: int, chunk: bytes) -> list[ServerAction]:
        """A sentence-synthesis event and its binary frame; empty if the task was cancelled."""
        if self.task_id != task_id or not chunk:
            return []
        return [ResultGenerated(task_id, "sentence-synthesis", index), Audio(chunk)]

    def sentence_done(self, task_id: str, index: int, text: str, now: float) -> list[ServerAction]:
        """The sentence-end event (with the cumulative billed count), then task-finished if this
        was the last sentence after finish-task."""
        task = self._task
        if task is None or task.task_id != task_id or index not in task.outstanding:
            return []
        task.outstanding.discard(index)
        task.billed += count_characters(text)
        end = ResultGenerated(
            task_id, "sentence-end", index, original_text=text, characters=task.billed
        )
        return [end, *self._maybe_finish(task, now)]

    def synthesis_failed(self, task_id: str, message: str) -> list[ServerAction]:
        """The engine could not synthesize a sentence of ``task_id``: task-failed, then close."""
        if self.task_id != task_id:
            return []
        return self._fail(CODE_INTERNAL_ERROR, message, task_id)

    def _maybe_finish(self, task: _ServerTask, now: float) -> list[ServerAction]:
        if not task.finishing or task.outstanding:
            return []
        self._task = None
        self._idle_since = now
        return [TaskFinished(task.task_id, task.billed, request_uuid=new_task_id())]

    def _fail(self, code: str, message: str, task_id: str | None = None) -> list[ServerAction]:
        """task-failed, then close: the service closes the connection after a failure."""
        failed_id = task_id or self.task_id or ""
        actions: list[ServerAction] = []
        if self._task is not None:
            actions.append(CancelSynthesis(self._task.task_id))
        self._task = None
        self.closed = True
        return [*actions, TaskFailed(failed_id, code, message), CloseConnection(message)]
