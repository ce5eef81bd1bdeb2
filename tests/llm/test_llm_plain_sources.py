"""Plain text sources, bad sources, DashScope chunk shapes, and closing streams read partly."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from typing import Any

import openai
import pytest

from tests.llm.scripted_llm import Reply, ScriptedLLM, say
from voicebridge.llm import (
    EndOfTurn,
    StreamReader,
    TextDelta,
    aclose_source,
    aiter_text,
    close_source,
    iter_events,
    iter_text,
)

LONG = Reply(say("word " * 300), token_delay=0.01)


def test_str_and_iterables_of_str() -> None:
    assert list(iter_text("One whole answer.")) == ["One whole answer."]
    assert list(iter_text(["a", "", "b"])) == ["a", "b"]
    assert list(iter_text(piece for piece in ("x", "y"))) == ["x", "y"]
    assert list(iter_text("")) == []


def test_async_iterables_and_sync_iterables_in_async() -> None:
    async def pieces() -> AsyncIterator[str]:
        for piece in ("Hi", "", " there"):
            await asyncio.sleep(0)
            yield piece

    async def main() -> list[list[str]]:
        return [
            [p async for p in aiter_text(pieces())],
            [p async for p in aiter_text(["a", "b"])],
            [p async for p in aiter_text("whole")],
        ]

    assert asyncio.run(main()) == [["Hi", " there"], ["a", "b"], ["whole"]]


def test_none_and_unknown_items_are_skipped_with_one_warning_per_kind(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="voicebridge.llm"):
        pieces = list(iter_text(["a", None, 3, b"bytes", None, 4, "b"]))
    assert pieces == ["a", "bytes", "b"]  # bytes are UTF-8 text
    assert "None" not in "".join(pieces)
    assert [r.getMessage().split()[5] for r in caplog.records] == ["NoneType", "int"]


def test_unreadable_sources_raise_type_error_at_call_time() -> None:
    with pytest.raises(TypeError, match="cannot read text from int"):
        iter_text(42)
    complete = {"id": "chatcmpl-1", "choices": [{"message": {"content": "hi"}}]}
    with pytest.raises(TypeError, match=r"complete LLM response.*stream=True"):
        iter_text(complete)

    async def agen() -> AsyncGenerator[str, None]:
        yield "x"

    source = agen()
    with pytest.raises(TypeError, match="asynchronous: use aiter_text"):
        iter_text(source)
    with pytest.raises(TypeError, match="cannot read text from object"):
        aiter_text(object())
    asyncio.run(source.aclose())


def test_dashscope_compatible_mode_chunks_as_dicts() -> None:
    """Chunk shapes of Qwen through DashScope's compatible mode, as JSON-decoded dicts."""
    chunks: list[dict[str, Any]] = [
        {"choices": [{"delta": {"content": "", "role": "assistant"}, "index": 0}]},
        {"choices": [{"delta": {"reasoning_content": "thinking...", "content": None}, "index": 0}]},
        {"choices": [{"delta": {"content": "你好"}, "finish_reason": None, "index": 0}]},
        {"choices": [{"delta": {"content": "，世界。"}, "finish_reason": "stop", "index": 0}]},
        {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4}},
    ]
    assert list(iter_events(chunks)) == [
        TextDelta("你好"),
        TextDelta("，世界。"),
        EndOfTurn("stop"),
    ]


def test_reader_core_speaks_choice_zero_and_legacy_completions() -> None:
    reader = StreamReader()
    two_choices = {
        "choices": [
            {"index": 1, "delta": {"content": "other"}},
            {"index": 0, "delta": {"content": "first"}, "finish_reason": "length"},
        ]
    }
    assert reader.feed(two_choices) == [TextDelta("first"), EndOfTurn("length")]
    assert reader.feed({"choices": [{"index": 0, "text": "legacy"}]}) == [TextDelta("legacy")]
    incomplete = {
        "type": "response.incomplete",
        "response": {"incomplete_details": {"reason": "max_output_tokens"}},
    }
    assert reader.feed(incomplete) == [EndOfTurn("max_output_tokens")]
    assert reader.feed({"type": "response.reasoning_summary_text.delta", "delta": "x"}) == []
    assert reader.feed(EndOfTurn("stop")) == [EndOfTurn("stop")]  # events pass through
    assert reader.feed(TextDelta("x")) == [TextDelta("x")]
    assert reader.feed(TextDelta("")) == []


def test_generator_source_is_closed_when_reading_stops_early() -> None:
    closed: list[bool] = []

    def source() -> Iterator[str]:
        try:
            yield from ("a", "b", "c")
        finally:
            closed.append(True)

    pieces = iter_text(source())
    assert next(pieces) == "a"
    pieces.close()
    assert closed == [True]


def test_openai_stream_read_partly_is_closed(llm: ScriptedLLM, client: openai.OpenAI) -> None:
    llm.queue(LONG, LONG)
    pieces = iter_text(client.chat.completions.create(model="m", messages=[], stream=True))
    assert [next(pieces), next(pieces)] == ["word", " word"]
    pieces.close()
    llm.wait_streams(disconnects=1)
    stream = client.chat.completions.create(model="m", messages=[], stream=True)
    close_source(stream)  # never read at all
    close_source(stream)  # idempotent
    llm.wait_streams(disconnects=2)


def test_async_openai_stream_read_partly_is_closed(
    llm: ScriptedLLM, aclient: openai.AsyncOpenAI
) -> None:
    async def main() -> None:
        llm.queue(LONG, LONG, LONG)
        create = aclient.chat.completions.create
        pieces = aiter_text(await create(model="m", messages=[], stream=True))
        assert [await anext(pieces), await anext(pieces)] == ["word", " word"]
        await pieces.aclose()
        stream = await create(model="m", messages=[], stream=True)
        await aclose_source(stream)

        async def read_all() -> None:
            async for _ in aiter_text(create(model="m", messages=[], stream=True)):
                pass

        task = asyncio.create_task(read_all())  # a barge-in cancels the reading task
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await aclient.close()

    asyncio.run(main())
    llm.wait_streams(disconnects=3)
