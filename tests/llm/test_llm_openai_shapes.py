"""Every OpenAI stream shape, read through the real openai client from the scripted server."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import openai
import pytest

from tests.llm.scripted_llm import CallTool, Fail, Pause, Refuse, Reply, ScriptedLLM, Step, say
from voicebridge.errors import SourceError
from voicebridge.llm import (
    EndOfTurn,
    StreamEvent,
    TextDelta,
    aiter_events,
    aiter_text,
    iter_events,
    iter_text,
)

TEXT = "Hello there. This is a test, with punctuation!"
MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]


def chat(client: openai.OpenAI, **kwargs: Any) -> Any:
    return client.chat.completions.create(model="m", messages=MESSAGES, stream=True, **kwargs)


def texts(events: list[StreamEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def ends(events: list[StreamEvent]) -> list[str]:
    return [e.reason for e in events if isinstance(e, EndOfTurn)]


async def collect(source: object) -> list[StreamEvent]:
    return [event async for event in aiter_events(source)]


def test_chat_completions_sync_with_usage_chunk(
    llm: ScriptedLLM, client: openai.OpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    llm.queue(Reply(say(TEXT)))
    with caplog.at_level(logging.WARNING):
        events = list(iter_events(chat(client, stream_options={"include_usage": True})))
    assert texts(events) == TEXT
    assert ends(events) == ["stop"]
    assert isinstance(events[-1], EndOfTurn)  # the usage chunk after it is read, not spoken
    assert all(e.text for e in events if isinstance(e, TextDelta))  # the role chunk's "" is not
    assert caplog.records == []  # usage chunk and content=None are known shapes
    llm.wait_streams(completed=1)


def test_chat_completions_async_stream_and_unawaited_create(
    llm: ScriptedLLM, aclient: openai.AsyncOpenAI
) -> None:
    async def main() -> tuple[list[StreamEvent], list[str]]:
        llm.queue(Reply(say(TEXT)), Reply(say(TEXT)))
        stream = await aclient.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        events = await collect(stream)
        coroutine = aclient.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        pieces = [piece async for piece in aiter_text(coroutine)]
        await aclient.close()
        return events, pieces

    events, pieces = asyncio.run(main())
    assert texts(events) == TEXT
    assert ends(events) == ["stop"]
    assert "".join(pieces) == TEXT


def test_tool_call_deltas_and_refusals_are_not_spoken(
    llm: ScriptedLLM, client: openai.OpenAI
) -> None:
    call = CallTool("weather", '{"city": "Hangzhou"}', pieces=4)
    reply: list[Step] = [*say("Let me check."), call]
    llm.queue(Reply(reply), Reply([Refuse("I cannot help with that.")]))
    events = list(iter_events(chat(client)))
    assert texts(events) == "Let me check."
    assert ends(events) == ["tool_calls"]
    refused = list(iter_events(chat(client)))
    assert refused == [EndOfTurn("stop")]


def test_text_arrives_while_the_llm_pauses(llm: ScriptedLLM, client: openai.OpenAI) -> None:
    llm.queue(Reply([*say("Before the pause."), Pause(0.5), *say(" After.")]))
    pieces = iter_text(chat(client))
    first = [next(pieces) for _ in range(3)]
    assert "".join(first) == "Before the pause."
    assert llm.streams_ended() == 0  # the server still streams: nothing was buffered
    assert "".join(pieces) == " After."


def test_chat_completions_stream_helper_sync(llm: ScriptedLLM, client: openai.OpenAI) -> None:
    llm.queue(Reply(say(TEXT)), Reply([*say(TEXT), CallTool("f", "{}")]))
    with client.chat.completions.stream(model="m", messages=MESSAGES) as stream:
        events = list(iter_events(stream))
    assert texts(events) == TEXT
    assert ends(events) == ["stop"]
    manager = client.chat.completions.stream(model="m", messages=MESSAGES)
    events = list(iter_events(manager))  # the manager itself is entered and exited
    assert texts(events) == TEXT
    assert ends(events) == ["tool_calls"]
    llm.wait_streams(completed=2)


def test_chat_completions_stream_helper_async(
    llm: ScriptedLLM, aclient: openai.AsyncOpenAI
) -> None:
    async def main() -> tuple[list[StreamEvent], list[StreamEvent]]:
        llm.queue(Reply(say(TEXT)), Reply(say(TEXT)))
        async with aclient.chat.completions.stream(model="m", messages=MESSAGES) as stream:
            entered = await collect(stream)
        manager = await collect(aclient.chat.completions.stream(model="m", messages=MESSAGES))
        await aclient.close()
        return entered, manager

    for events in asyncio.run(main()):
        assert texts(events) == TEXT
        assert ends(events) == ["stop"]


def test_responses_api_sync_raw_and_helper(llm: ScriptedLLM, client: openai.OpenAI) -> None:
    llm.queue(Reply([*say(TEXT), Refuse("no"), CallTool("f", "{}")]), Reply(say(TEXT)))
    events = list(iter_events(client.responses.create(model="m", input="hi", stream=True)))
    assert texts(events) == TEXT
    assert ends(events) == ["completed"]
    with client.responses.stream(model="m", input="hi") as stream:
        events = list(iter_events(stream))
    assert texts(events) == TEXT
    assert ends(events) == ["completed"]


def test_responses_api_async(llm: ScriptedLLM, aclient: openai.AsyncOpenAI) -> None:
    async def main() -> list[StreamEvent]:
        llm.queue(Reply(say(TEXT)))
        events = await collect(aclient.responses.create(model="m", input="hi", stream=True))
        await aclient.close()
        return events

    events = asyncio.run(main())
    assert texts(events) == TEXT
    assert ends(events) == ["completed"]


@pytest.mark.parametrize("event", ["response.failed", "error"])
def test_responses_failure_raises_source_error_after_the_text_before_it(
    llm: ScriptedLLM, client: openai.OpenAI, event: str
) -> None:
    llm.queue(Reply([*say("Partial answer."), Fail("The model crashed", event=event)]))
    got: list[str] = []
    with pytest.raises(SourceError, match=f"{event}: server_error: The model crashed"):
        got.extend(iter_text(client.responses.create(model="m", input="hi", stream=True)))
    assert "".join(got) == "Partial answer."


def test_responses_failure_async(llm: ScriptedLLM, aclient: openai.AsyncOpenAI) -> None:
    async def main() -> None:
        llm.queue(Reply([*say("Partial."), Fail("overloaded", code="rate_limit")]))
        try:
            await collect(aclient.responses.create(model="m", input="hi", stream=True))
        finally:
            await aclient.close()

    with pytest.raises(SourceError, match="rate_limit: overloaded"):
        asyncio.run(main())


def test_chat_error_body_keeps_the_openai_error(llm: ScriptedLLM, client: openai.OpenAI) -> None:
    llm.queue(Reply([*say("Partial."), Fail("quota exceeded")]))
    with pytest.raises(openai.APIError, match="quota exceeded"):
        list(iter_text(chat(client)))
