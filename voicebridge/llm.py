"""Text out of LLM streams, read by duck typing (openai is never imported here).

Shapes read, from objects (openai's pydantic models) or plain dicts alike:

- Chat Completions chunks (``Stream``/``AsyncStream`` of ``ChatCompletionChunk``; DashScope's
  OpenAI-compatible mode sends the same): text is ``choices[0].delta.content``; a non-null
  ``finish_reason`` ends the turn. Empty ``choices`` (the usage chunk), ``content=None``, tool-call
  deltas, ``refusal`` and ``reasoning_content`` are not spoken. Only choice 0 is spoken (``n>1``).
- Legacy Completions chunks: text is ``choices[0].text``.
- ``client.chat.completions.stream(...)`` events: ``content.delta`` is text, the finish reason of a
  ``chunk`` event ends the turn. The stream manager itself is accepted and entered.
- Responses API events: ``response.output_text.delta`` is text, ``response.completed`` and
  ``response.incomplete`` end the turn, ``error`` and ``response.failed`` raise
  :class:`~voicebridge.errors.SourceError`. Every other event type is not spoken.
- Agent frameworks (see :func:`_agent_framework_events`): LangChain message chunks
  (``AIMessageChunk``; ``content`` a string or a list of content blocks, whose ``text`` blocks are
  spoken; a ``finish_reason``/``stop_reason`` in ``response_metadata`` ends the turn), LangGraph
  ``stream_mode="messages"`` items ``(chunk, metadata)`` (also as ``("messages", (chunk,
  metadata))`` when several modes are streamed; only AI messages are spoken, never tool output),
  and AutoGen's ``ModelClientStreamingChunkEvent`` (its ``content``; the complete ``TextMessage``
  that follows the chunks is not spoken again; the closing ``TaskResult`` ends the turn).
- A ``str`` (one piece), iterables and async iterables of ``str``, and of this module's own
  :class:`TextDelta` / :class:`EndOfTurn` events (so a wrapper that shows or logs the text can
  pass the events on). ``bytes`` items are UTF-8 (a character may be split between items);
  bytes that are not UTF-8 become U+FFFD, with a warning.
- Any other item is skipped with a warning, once per kind (type) of item, naming it.

End of turn is surfaced by :func:`iter_events` / :func:`aiter_events` as an :class:`EndOfTurn`
event (flush now: the text of this turn is complete); reading goes on after it, so a trailing
usage chunk is still consumed. :func:`iter_text` / :func:`aiter_text` yield the text alone.

Every iterator returned here closes its source when it is closed early or finishes, so a
stream the caller stops reading (barge-in) releases its HTTP connection.
"""

from __future__ import annotations

import codecs
import contextlib
import inspect
import logging
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    Awaitable,
    Generator,
    Iterable,
    Mapping,
    Sequence,
)
from dataclasses import dataclass
from typing import Any, TypeAlias, cast

from .errors import SourceError

__all__ = [
    "EndOfTurn",
    "StreamEvent",
    "StreamReader",
    "TextDelta",
    "aclose_source",
    "aiter_events",
    "aiter_text",
    "close_source",
    "iter_events",
    "iter_text",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TextDelta:
    """A non-empty piece of text to speak."""

    text: str


@dataclass(frozen=True)
class EndOfTurn:
    """The LLM finished its turn: ``reason`` is the finish reason as sent (``"stop"``,
    ``"length"``, ``"tool_calls"``, ``"completed"``, ``"max_output_tokens"``, ...)."""

    reason: str


StreamEvent: TypeAlias = TextDelta | EndOfTurn

_TEXT_EVENTS = frozenset({"response.output_text.delta", "content.delta"})
_ERROR_EVENTS = frozenset({"error", "response.failed"})


def _field(obj: object, name: str) -> object:
    """``obj.name`` or ``obj[name]`` for mappings; None when absent."""
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _str_field(obj: object, name: str) -> str | None:
    value = _field(obj, name)
    return value if isinstance(value, str) else None


class StreamReader:
    """I/O-free core shared by the sync and async readers: one stream item in, events out.

    Use one reader per stream: it holds a character split between ``bytes`` items, and
    remembers which kinds of items it already warned about. Call :meth:`finish` at the end.
    """

    def __init__(self) -> None:
        self._warned: set[str] = set()  # kinds of items already named in a warning
        self._utf8 = codecs.getincrementaldecoder("utf-8")("replace")

    def feed(self, item: object) -> list[StreamEvent]:
        """Events for one stream item; raises SourceError for ``error``/``response.failed``."""
        if isinstance(item, str):
            return [TextDelta(item)] if item else []
        if isinstance(item, bytes | bytearray):
            return self._decoded(bytes(item), final=False)
        if isinstance(item, TextDelta | EndOfTurn):  # a wrapper that already read its stream
            return [item] if not isinstance(item, TextDelta) or item.text else []
        framework_events = _agent_framework_events(item)
        if framework_events is not None:
            return framework_events
        kind = _str_field(item, "type")
        if kind is not None:
            return self._typed_event(kind, item)
        choices = _field(item, "choices")
        if isinstance(choices, Sequence) and not isinstance(choices, str):
            return _choices_events(choices)
        self._warn_once(
            type(item).__name__,
            "LLM stream item of type %s is neither text nor a known OpenAI shape; "
            "skipping such items",
        )
        return []

    def finish(self) -> list[StreamEvent]:
        """The stream ended: a character left incomplete by the last ``bytes`` item."""
        return self._decoded(b"", final=True)

    def _decoded(self, data: bytes, *, final: bool) -> list[StreamEvent]:
        text = self._utf8.decode(data, final)
        if "\ufffd" in text and b"\xef\xbf\xbd" not in data:
            self._warn_once(
                "bytes", "LLM stream items of type %s that are not valid UTF-8: each "
                "undecodable byte sequence is replaced by U+FFFD"
            )  # fmt: skip
        return [TextDelta(text)] if text else []

    def _warn_once(self, kind: str, message: str) -> None:
        """Log ``message % kind`` the first time ``kind`` comes up."""
        if kind not in self._warned:
            self._warned.add(kind)
            logger.warning(message, kind)

    def _typed_event(self, kind: str, item: object) -> list[StreamEvent]:
        if kind in _TEXT_EVENTS:
            delta = _str_field(item, "delta")
            return [TextDelta(delta)] if delta else []
        if kind == "chunk":  # chat.completions.stream(): text comes from content.delta
            chunk_choices = _field(_field(item, "chunk"), "choices")
            if not isinstance(chunk_choices, Sequence):
                return []
            return [e for e in _choices_events(chunk_choices) if isinstance(e, EndOfTurn)]
        if kind == "response.completed":
            return [EndOfTurn("completed")]
        if kind == "response.incomplete":
            details = _field(_field(item, "response"), "incomplete_details")
            return [EndOfTurn(_str_field(details, "reason") or "incomplete")]
        if kind in _ERROR_EVENTS:
            raise _source_error(kind, item)
        return []


_AI_MESSAGES = frozenset({"AIMessageChunk", "ai"})  # LangChain message types spoken
_AUTOGEN_CHUNK = "ModelClientStreamingChunkEvent"
_OTHER_MESSAGES = frozenset(  # LangChain message types never spoken
    ("HumanMessageChunk", "human", "SystemMessageChunk", "system", "ToolMessageChunk", "tool",
     "FunctionMessageChunk", "function", "ChatMessageChunk", "chat")
)  # fmt: skip


def _agent_framework_events(item: object) -> list[StreamEvent] | None:
    """Events of a LangChain, LangGraph or AutoGen stream item; None for any other item."""
    if isinstance(item, tuple) and len(item) == 2:  # LangGraph
        first, second = item
        if first == "messages":  # several stream modes: ("messages", (chunk, metadata))
            return _agent_framework_events(second) or []
        if isinstance(first, str):  # another mode's item, ("updates", {...}): nothing to say
            return []
        if isinstance(second, Mapping):  # stream_mode="messages": (chunk, metadata)
            return _agent_framework_events(first) or []
        return None
    if type(item).__name__ == "TaskResult":  # AutoGen's run_stream() ends with it
        return [EndOfTurn(_str_field(item, "stop_reason") or "stop")]
    kind = _str_field(item, "type")
    if kind == _AUTOGEN_CHUNK:
        content = _str_field(item, "content")
        return [TextDelta(content)] if content else []
    if kind in _OTHER_MESSAGES:
        return []  # the user's words, a system prompt, a tool's output
    if kind not in _AI_MESSAGES:
        return None
    events: list[StreamEvent] = []
    text = _content_text(_field(item, "content"))
    if text:
        events.append(TextDelta(text))
    metadata = _field(item, "response_metadata")
    reason = _str_field(metadata, "finish_reason") or _str_field(metadata, "stop_reason")
    if reason:
        events.append(EndOfTurn(reason))
    return events


def _content_text(content: object) -> str:
    """LangChain message content: a string, or a list of content blocks of which the ``text``
    blocks (and bare strings) are spoken; reasoning, tool-use and image blocks are not."""
    if isinstance(content, str):
        return content
    if not isinstance(content, Sequence):
        return ""
    pieces = []
    for block in content:
        if isinstance(block, str):
            pieces.append(block)
        elif _str_field(block, "type") == "text":
            pieces.append(_str_field(block, "text") or "")
    return "".join(pieces)


def _choices_events(choices: Sequence[object]) -> list[StreamEvent]:
    events: list[StreamEvent] = []
    for choice in choices:
        if _field(choice, "index") not in (0, None):
            continue
        delta = _field(choice, "delta")
        text = _str_field(delta, "content") if delta is not None else _str_field(choice, "text")
        if text:
            events.append(TextDelta(text))
        reason = _str_field(choice, "finish_reason")
        if reason:
            events.append(EndOfTurn(reason))
    return events


def _source_error(kind: str, item: object) -> SourceError:
    error = _field(_field(item, "response"), "error") if kind == "response.failed" else item
    code = _str_field(error, "code") or "unknown"
    message = _str_field(error, "message") or "no message"
    return SourceError(f"LLM stream reported {kind}: {code}: {message}")


def _reject(source: object) -> None:
    """Raise TypeError when ``source`` cannot be a stream (a complete response, say)."""
    if _field(source, "choices") is not None or _field(source, "output") is not None:
        raise TypeError(
            f"{type(source).__name__} is a complete LLM response, not a stream: "
            "request it with stream=True"
        )


def _not_readable(source: object, hint: str) -> TypeError:
    return TypeError(
        f"cannot read text from {type(source).__name__}: expected an LLM stream, a str or an "
        f"iterable of str{hint}"
    )


def iter_events(source: object) -> Generator[StreamEvent, None, None]:
    """Events of a sync stream; TypeError (raised now, not at first ``next``) if unreadable."""
    return _events_of(source)


def _events_of(source: object) -> Generator[StreamEvent, None, None]:
    if isinstance(source, str):
        return _events([source])
    _reject(source)
    if isinstance(source, Iterable):
        return _events(source)
    if isinstance(source, contextlib.AbstractContextManager):
        return _events_of_manager(source)
    if isinstance(source, AsyncIterable | contextlib.AbstractAsyncContextManager | Awaitable):
        raise _not_readable(source, " (this one is asynchronous: use aiter_text or aspeak)")
    raise _not_readable(source, "")


def _events(source: Iterable[object]) -> Generator[StreamEvent, None, None]:
    reader = StreamReader()
    try:
        for item in source:
            yield from reader.feed(item)
        yield from reader.finish()
    finally:
        close_source(source)


def _events_of_manager(
    manager: contextlib.AbstractContextManager[object],
) -> Generator[StreamEvent, None, None]:
    with manager as stream:
        yield from _events_of(stream)


def iter_text(source: object) -> Generator[str, None, None]:
    """Non-empty text pieces of a sync stream (see the module docstring for the shapes).

    Raises SourceError when the stream reports a failure, TypeError now if ``source`` cannot be
    read. Closing the returned iterator closes the source.
    """
    return _only_text(_events_of(source))


def _only_text(events: Generator[StreamEvent, None, None]) -> Generator[str, None, None]:
    with contextlib.closing(events):
        for event in events:
            if isinstance(event, TextDelta):
                yield event.text


def close_source(source: object) -> None:
    """Close a sync source read only partly (openai ``Stream``, helper stream, generator).

    Idempotent; a no-op for sources without ``close`` (lists, str). Call it from the thread that
    reads: a read blocked in another thread is not woken by it (httpx does not interrupt reads).
    """
    close = getattr(source, "close", None)
    if callable(close) and not inspect.iscoroutinefunction(close):
        close()


def aiter_events(source: object) -> AsyncGenerator[StreamEvent, None]:
    """Events of an async (or sync) stream; also accepts an awaitable that returns one, as
    ``AsyncOpenAI().chat.completions.create(..., stream=True)`` does. TypeError now if unreadable.

    A sync iterable is read on the event loop: fine for in-memory text, not for network streams.
    """
    return _aevents_of(source)


def _aevents_of(source: object) -> AsyncGenerator[StreamEvent, None]:
    if isinstance(source, str):
        return _aevents([source])
    _reject(source)
    if isinstance(source, AsyncIterable | Iterable):
        return _aevents(source)
    if isinstance(source, contextlib.AbstractAsyncContextManager):
        return _aevents_of_manager(source)
    if isinstance(source, Awaitable):
        return _aevents_of_awaitable(source)
    raise _not_readable(source, "")


async def _aevents(
    source: AsyncIterable[object] | Iterable[object],
) -> AsyncGenerator[StreamEvent, None]:
    reader = StreamReader()
    try:
        if isinstance(source, AsyncIterable):
            async for item in source:
                for event in reader.feed(item):
                    yield event
        else:
            for item in source:
                for event in reader.feed(item):
                    yield event
        for event in reader.finish():
            yield event
    finally:
        await aclose_source(source)


async def _aevents_of_manager(
    manager: contextlib.AbstractAsyncContextManager[object],
) -> AsyncGenerator[StreamEvent, None]:
    async with manager as stream, contextlib.aclosing(_aevents_of(stream)) as events:
        async for event in events:
            yield event


async def _aevents_of_awaitable(
    awaitable: Awaitable[object],
) -> AsyncGenerator[StreamEvent, None]:
    stream = await awaitable
    async with contextlib.aclosing(_aevents_of(stream)) as events:
        async for event in events:
            yield event


def aiter_text(source: object) -> AsyncGenerator[str, None]:
    """Non-empty text pieces of an async or sync stream (see :func:`aiter_events`)."""
    return _aonly_text(_aevents_of(source))


async def _aonly_text(events: AsyncGenerator[StreamEvent, None]) -> AsyncGenerator[str, None]:
    async with contextlib.aclosing(events):
        async for event in events:
            if isinstance(event, TextDelta):
                yield event.text


async def aclose_source(source: object) -> None:
    """Close an async or sync source read only partly (``aclose`` first, else ``close``)."""
    close: Any = getattr(source, "aclose", None)
    if not callable(close):
        close = getattr(source, "close", None)
    if callable(close):
        result = close()
        if inspect.isawaitable(result):
            await cast(Awaitable[object], result)
