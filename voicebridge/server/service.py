"""The service, emulated: the local server's sans-I/O machine (docs/protocol.md).

Pure: frames and the time in, actions out (events to send, sentences to synthesize, closes,
injected faults). The I/O layer (:mod:`voicebridge.server.connection`) runs it; tests drive it in
memory. What the real service does is written in docs/protocol.md; where this machine guesses,
it says so there ("Local server notes").
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import RemoteProtocolError, TaskRejected
from ..protocol import (
    CONNECTION_IDLE_TIMEOUT,
    FORMATS,
    TASK_IDLE_TIMEOUT,
    Audio,
    ContinueTask,
    FinishTask,
    ResultGenerated,
    RunTask,
    ServerEvent,
    TaskFailed,
    TaskFinished,
    TaskStarted,
    decode_client_message,
    new_task_id,
)
from ..text.billing import MAX_MESSAGE_CHARACTERS, MAX_TASK_CHARACTERS, count_characters
from .engines import SpeechRequest
from .faults import FaultKind, FaultPlan, FaultPoint, FaultState
from .sentences import split_sentences
from .speech_text import SpeechText, prepare_speech
from .task_options import (
    CODE_CLIENT_ERROR,
    CODE_INTERNAL_ERROR,
    CODE_INVALID_PARAMETER,
    MSG_EMPTY_TEXT,
    MSG_IDLE_TIMEOUT,
    MSG_VOICE_UNKNOWN,
    TaskOptions,
    task_options,
)
from .words import SentenceAudio, WordReporting, sentence_words, word_entries

__all__ = [
    "MSG_VOICE_UNKNOWN",
    "CancelSynthesis",
    "CloseConnection",
    "DropConnection",
    "ServerAction",
    "ServerLimits",
    "ServerProtocol",
    "StopAnswering",
    "Synthesize",
]


@dataclass(frozen=True)
class Synthesize:
    """Command: synthesize sentence ``index`` of ``task_id`` (``text`` as the client sent it,
    ``request`` what the engine speaks), then report back through
    :meth:`ServerProtocol.sentence_begin`, ``sentence_chunk`` and ``sentence_done``."""

    task_id: str
    index: int
    text: str
    request: SpeechRequest
    format: str


@dataclass(frozen=True)
class CancelSynthesis:
    """Command: drop queued and running synthesis of ``task_id``; its audio must not be sent."""

    task_id: str


@dataclass(frozen=True)
class CloseConnection:
    """Command: close the WebSocket after what is queued (the service closes after a failure)."""

    reason: str


@dataclass(frozen=True)
class DropConnection:
    """Injected fault: abort the TCP connection after what is queued (no close frame)."""


@dataclass(frozen=True)
class StopAnswering:
    """Injected fault: send nothing more, keep the socket open, read and ignore."""


ServerAction = (
    ServerEvent | Synthesize | CancelSynthesis | CloseConnection | DropConnection | StopAnswering
)


@dataclass(frozen=True)
class ServerLimits:
    """Service limits; counts are billed characters (CJK ideograph = 2), times are seconds.
    ``max_sentence_characters`` is where this server cuts a sentence that has no end."""

    idle_timeout: float = TASK_IDLE_TIMEOUT
    connection_idle_timeout: float = CONNECTION_IDLE_TIMEOUT
    max_message_characters: int = MAX_MESSAGE_CHARACTERS
    max_task_characters: int = MAX_TASK_CHARACTERS
    max_sentence_characters: int = 200
    idle_timeout_message: str = MSG_IDLE_TIMEOUT


@dataclass
class _ServerTask:
    task_id: str
    options: TaskOptions
    last_text_at: float
    pending: str = ""
    received_characters: int = 0
    billed: int = 0
    next_index: int = 0
    outstanding: dict[int, SpeechText] = field(default_factory=dict)
    finishing: bool = False
    audio_ms: int = 0  # audio of the sentences done so far (for WordReporting "task")
    words: list[dict[str, Any]] = field(default_factory=list)


def _any_voice(model: str, voice: str) -> str | None:
    return "cmn"


_REMEMBERED_TASK_IDS = 1024  # per connection, to refuse a task_id used again


class ServerProtocol:
    """The service's side of one connection.

    Feed it frames with ``receive_text``/``receive_binary`` and the time with ``poll``; report
    synthesis with ``sentence_begin``/``sentence_chunk``/``sentence_done``. Each returns the
    actions for the I/O layer, in order. ``voice_language(model, voice)`` names the espeak-ng
    language of a voice, or None when the voice does not exist; ``formats`` lists the formats the
    engine's audio can be sent in; ``faults`` injects failures (tests), ``words`` places the word
    timestamps.
    """

    def __init__(
        self,
        *,
        now: float,
        limits: ServerLimits | None = None,
        voice_language: Callable[[str, str], str | None] = _any_voice,
        formats: tuple[str, ...] = FORMATS,
        default_sample_rate: int = 22050,
        faults: FaultPlan | None = None,
        words: WordReporting | None = None,
    ) -> None:
        self.limits = limits or ServerLimits()
        self._voice_language = voice_language
        self._formats = formats
        self._default_sample_rate = default_sample_rate
        self._faults = FaultState(faults or FaultPlan())
        self._words = words or WordReporting()
        self._task: _ServerTask | None = None
        self._idle_since: float | None = now
        self._used_ids: deque[str] = deque(maxlen=_REMEMBERED_TASK_IDS)
        self.closed = False  # the connection is to be closed: nothing more in or out
        self.silent = False  # a stop-answering fault fired: nothing more out, socket stays

    @property
    def task_id(self) -> str | None:
        return self._task.task_id if self._task else None

    def next_deadline(self) -> float | None:
        """When :meth:`poll` must next be called (a timer may fire then), or None."""
        if self.closed or self.silent:
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
        if self.closed or self.silent:
            return []
        return self._fail(CODE_CLIENT_ERROR, "binary frames are not accepted from the client")

    def receive_text(self, text: str | bytes, now: float) -> list[ServerAction]:
        if self.closed or self.silent:
            return []
        try:
            message = decode_client_message(text)
        except RemoteProtocolError as exc:
            return self._fail(CODE_CLIENT_ERROR, str(exc))
        except RecursionError:  # JSON nested deeper than the parser goes
            return self._fail(CODE_CLIENT_ERROR, "the client sent JSON nested too deeply")
        if isinstance(message, RunTask):
            return self._run_task(message, now)
        task = self._task
        if task is None or task.task_id != message.task_id:
            return self._fail(
                CODE_CLIENT_ERROR, f"task {message.task_id} is not running", message.task_id
            )
        if isinstance(message, ContinueTask):
            if message.text and (fault := self._faults.observe(FaultPoint.TEXT)):
                return self._inject(fault, task.task_id)
            return self._continue_task(task, message, now)
        return self._finish_task(task, message, now)

    def _run_task(self, message: RunTask, now: float) -> list[ServerAction]:
        actions: list[ServerAction] = []
        if message.task_id in self._used_ids:  # docs/protocol.md: every task needs a new id
            return self._fail(
                CODE_CLIENT_ERROR,
                f"task_id {message.task_id} was already used on this connection; "
                "each run-task needs a new task_id",
                message.task_id,
            )
        self._used_ids.append(message.task_id)
        if self._task is not None:  # a new run-task ends the running task and drops its audio
            actions.append(CancelSynthesis(self._task.task_id))
            self._task = None
        try:
            options = task_options(
                message, self._voice_language, default_sample_rate=self._default_sample_rate
            )
            if options.parameters.format not in self._formats:
                raise TaskRejected(
                    CODE_INVALID_PARAMETER,
                    f"format {options.parameters.format} is not supported by this server's "
                    f"engine (supported: {', '.join(self._formats)})",
                )
        except TaskRejected as exc:
            return actions + self._fail(exc.code, exc.message, message.task_id)
        if fault := self._faults.observe(FaultPoint.TASK_STARTED):
            return actions + self._inject(fault, message.task_id)
        self._task = _ServerTask(message.task_id, options, last_text_at=now)
        self._idle_since = None
        return [*actions, TaskStarted(message.task_id)]

    def _continue_task(
        self, task: _ServerTask, message: ContinueTask, now: float
    ) -> list[ServerAction]:
        if task.finishing:
            return self._fail(CODE_CLIENT_ERROR, "text arrived after finish-task", task.task_id)
        if not message.text and not message.flush:
            return self._fail(CODE_INVALID_PARAMETER, MSG_EMPTY_TEXT, task.task_id)
        if message.text:
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
            task.last_text_at = now  # only text resets the idle timer; a bare flush does not
            task.pending += message.text
        return self._emit(task, force=message.flush)

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
        """Synthesize the complete sentences held (and with ``force`` the tail too: flush)."""
        sentences, tail = split_sentences(task.pending, self.limits.max_sentence_characters)
        if force and tail.strip():
            sentences.append(tail)
            tail = ""
        task.pending = tail
        options = task.options
        params = options.parameters
        actions: list[ServerAction] = []
        for sentence in sentences:
            index = task.next_index
            task.next_index += 1
            speech = prepare_speech(sentence, options.replacements, options.markdown_filter)
            task.outstanding[index] = speech
            request = SpeechRequest(speech.text, options.language, params.rate, params.pitch,
                                    params.volume, params.sample_rate)  # fmt: skip
            actions.append(Synthesize(task.task_id, index, sentence, request, params.format))
        return actions

    def sentence_begin(self, task_id: str, index: int, text: str) -> list[ServerAction]:
        """The sentence-begin event, sent before the sentence's first audio; empty if cancelled."""
        if self.task_id != task_id or self.silent:
            return []
        return [ResultGenerated(task_id, "sentence-begin", index, original_text=text)]

    def sentence_chunk(self, task_id: str, index: int, chunk: bytes) -> list[ServerAction]:
        """A sentence-synthesis event and its binary frame; empty if the task was cancelled."""
        if self.task_id != task_id or not chunk or self.silent:
            return []
        actions: list[ServerAction] = [ResultGenerated(task_id, "sentence-synthesis", index),
                                       Audio(chunk)]  # fmt: skip
        if fault := self._faults.observe(FaultPoint.AUDIO):
            actions += self._inject(fault, task_id)
        return actions

    def sentence_done(
        self, task_id: str, index: int, text: str, now: float, audio: SentenceAudio | None = None
    ) -> list[ServerAction]:
        """The sentence-end event (cumulative billed count, words when asked), then task-finished
        if this was the last sentence after finish-task."""
        task = self._task
        if task is None or task.task_id != task_id or index not in task.outstanding:
            return []
        speech = task.outstanding.pop(index)
        task.billed += count_characters(text)
        words = self._sentence_words(task, text, speech, audio)
        end = ResultGenerated(task_id, "sentence-end", index, original_text=text,
                              words=words, characters=task.billed)  # fmt: skip
        actions: list[ServerAction] = [end]
        if fault := self._faults.observe(FaultPoint.SENTENCE_END):
            return actions + self._inject(fault, task_id)
        return actions + self._maybe_finish(task, now)

    def _sentence_words(
        self, task: _ServerTask, text: str, speech: SpeechText, audio: SentenceAudio | None
    ) -> tuple[dict[str, Any], ...]:
        if audio is None:
            return ()
        origin = task.audio_ms if self._words.time_origin == "task" else 0
        task.audio_ms += audio.samples * 1000 // audio.sample_rate
        if not task.options.word_timestamps:
            return ()
        timings = sentence_words(speech, audio.anchors, audio.samples)
        words = word_entries(text, timings, audio.sample_rate, origin)
        if self._words.in_task_finished:
            task.words += words
        return tuple(words)

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
        if fault := self._faults.observe(FaultPoint.TASK_FINISHED):
            return self._inject(fault, task.task_id)
        return [TaskFinished(task.task_id, task.billed, request_uuid=new_task_id(),
                             words=tuple(task.words))]  # fmt: skip

    def _inject(self, kind: FaultKind, task_id: str) -> list[ServerAction]:
        """A fault of the plan fires now."""
        if kind is FaultKind.FAIL:
            plan = self._faults.plan
            return self._fail(plan.fail_code, plan.fail_message, task_id)
        actions = self._cancel_all()
        if kind is FaultKind.DROP:
            self.closed = True
            return [*actions, DropConnection()]
        self.silent = True
        return [*actions, StopAnswering()]

    def _cancel_all(self) -> list[ServerAction]:
        task, self._task = self._task, None
        return [CancelSynthesis(task.task_id)] if task is not None else []

    def _fail(self, code: str, message: str, task_id: str | None = None) -> list[ServerAction]:
        """task-failed, then close: the service closes the connection after a failure."""
        failed_id = task_id or self.task_id or ""
        actions = self._cancel_all()
        self.closed = True
        return [*actions, TaskFailed(failed_id, code, message), CloseConnection(message)]
