"""The service, emulated: the local server's sans-I/O machine (docs/protocol.md).

Pure: frames and the time in, actions out (events to send, sentences to synthesize, closes). The
I/O layer (:mod:`voicebridge.server.connection`) runs it; tests drive it in memory. What the real
service does is written in docs/protocol.md; where this machine guesses, it says so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import RemoteProtocolError, TaskRejected
from ..protocol import (
    DEFAULT_FORMAT,
    FORMATS,
    SAMPLE_RATES,
    Audio,
    ContinueTask,
    FinishTask,
    ResultGenerated,
    RunTask,
    ServerEvent,
    SynthesisParameters,
    TaskFailed,
    TaskFinished,
    TaskStarted,
    decode_client_message,
    new_task_id,
)
from ..text.billing import MAX_MESSAGE_CHARACTERS, MAX_TASK_CHARACTERS, count_characters

__all__ = [
    "CancelSynthesis",
    "CloseConnection",
    "ServerAction",
    "ServerLimits",
    "ServerProtocol",
    "Synthesize",
    "parameters_from_run_task",
    "split_sentences",
]

# Error texts of the real service (docs/protocol.md, "Known error messages").
MSG_IDLE_TIMEOUT = "request timeout after 23 seconds."
MSG_EMPTY_TEXT = "Please ensure input text is valid."
MSG_MODEL_MISSING = "Missing required parameter 'payload.model'! Please follow the protocol!"
MSG_VOICE_MISSING = "Request voice is invalid!"
MSG_VOICE_UNKNOWN = "[tts:]Engine return error code: 418"
MSG_INPUT_MISSING = "task can not be null"
CODE_INVALID_PARAMETER = "InvalidParameter"
CODE_CLIENT_ERROR = "CLIENT_ERROR"
CODE_INTERNAL_ERROR = "InternalError"


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
