"""Streams from LangChain, LangGraph and AutoGen, read with the frameworks' real classes: their
own fake chat models (``GenericFakeChatModel`` from langchain-core, ``ReplayChatCompletionClient``
from autogen-ext) drive the frameworks' real streaming machinery, and the bridge speaks the result
through the real local server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.messages import ModelClientStreamingChunkEvent, TextMessage
from autogen_ext.models.replay import ReplayChatCompletionClient
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage
from langgraph.graph import START, MessagesState, StateGraph

from voicebridge.audio import NullSink
from voicebridge.bridge import VoiceBridge
from voicebridge.llm import EndOfTurn, TextDelta, aiter_events, iter_events, iter_text
from voicebridge.server import ServerThread

REPLY = "It is sunny in Hangzhou. Take a hat, and some water."


def spoken(server: ServerThread) -> str:
    return "".join(t.text for t in server.transcripts)


def fake_model(*replies: str) -> GenericFakeChatModel:
    """langchain-core's fake chat model: streams each reply in word-sized chunks."""
    return GenericFakeChatModel(messages=iter([AIMessage(content=r) for r in replies]))


# ---------------------------------------------------------------------- LangChain


def test_langchain_chunks_from_a_chat_model_stream_are_spoken(tone_server: ServerThread) -> None:
    chunks = list(fake_model(REPLY).stream("What is the weather?"))
    assert all(isinstance(c, AIMessageChunk) for c in chunks) and len(chunks) > 5
    assert "".join(iter_text(iter(chunks))) == REPLY
    with VoiceBridge(url=tone_server.url, sinks=[NullSink()]) as bridge:
        metrics = bridge.speak(fake_model(REPLY).stream("What is the weather?"))
    assert spoken(tone_server) == REPLY
    assert metrics.audio_seconds > 0


def test_langchain_async_stream(tone_server: ServerThread) -> None:
    async def main() -> None:
        with VoiceBridge(url=tone_server.url, sinks=[NullSink()]) as bridge:
            await bridge.aspeak(fake_model(REPLY).astream("What is the weather?"))

    asyncio.run(main())
    assert spoken(tone_server) == REPLY


def test_langchain_content_blocks_speak_only_their_text() -> None:
    chunks = [
        AIMessageChunk(content=[{"type": "thinking", "thinking": "The user wants weather."}]),
        AIMessageChunk(content=[{"type": "text", "text": "It is sunny", "index": 1}]),
        AIMessageChunk(content=[{"type": "text", "text": " today.", "index": 1}, "!"]),
        AIMessageChunk(
            content=[{"type": "tool_use", "id": "t1", "name": "weather", "input": {}}],
            response_metadata={"stop_reason": "tool_use"},
        ),
        AIMessageChunk(content="", response_metadata={"finish_reason": "stop"}),
    ]
    assert list(iter_events(iter(chunks))) == [
        TextDelta("It is sunny"),
        TextDelta(" today.!"),
        EndOfTurn("tool_use"),
        EndOfTurn("stop"),
    ]


def test_langchain_messages_as_dicts_and_other_roles() -> None:
    items: list[Any] = [
        {"type": "AIMessageChunk", "content": "Hello", "response_metadata": {}},
        HumanMessage(content="not spoken: the user said it"),
        ToolMessage(content="not spoken: a tool's output", tool_call_id="t1"),
        AIMessage(content=" there."),
    ]
    assert "".join(iter_text(iter(items))) == "Hello there."


# ---------------------------------------------------------------------- LangGraph


def weather_graph() -> Any:
    """An agent that talks, calls a tool (whose output must never be spoken), and answers."""
    model = fake_model("Let me check the weather. ", REPLY)

    def agent(state: MessagesState) -> dict[str, list[Any]]:
        return {"messages": [model.invoke(state["messages"])]}

    def tool(state: MessagesState) -> dict[str, list[Any]]:
        return {"messages": [ToolMessage(content='{"sky": "SUNNY", "temp": 31}', tool_call_id="w")]}

    graph = StateGraph(MessagesState)
    graph.add_node("agent", agent)
    graph.add_node("tool", tool)
    graph.add_node("answer", agent)
    graph.add_edge(START, "agent")
    graph.add_edge("agent", "tool")
    graph.add_edge("tool", "answer")
    return graph.compile()


def question() -> dict[str, list[Any]]:
    return {"messages": [HumanMessage(content="What is the weather?")]}


def test_langgraph_messages_mode_speaks_the_ai_tokens_only(tone_server: ServerThread) -> None:
    items = list(weather_graph().stream(question(), stream_mode="messages"))
    assert all(isinstance(i, tuple) and isinstance(i[1], dict) for i in items)
    assert any(isinstance(i[0], ToolMessage) for i in items)  # the tool's output is in the stream
    with VoiceBridge(url=tone_server.url, sinks=[NullSink()]) as bridge:
        bridge.speak(weather_graph().stream(question(), stream_mode="messages"))
    said = spoken(tone_server)
    assert said == "Let me check the weather. " + REPLY
    assert "SUNNY" not in said


def test_langgraph_several_stream_modes_async(tone_server: ServerThread) -> None:
    async def main() -> list[str]:
        stream = weather_graph().astream(question(), stream_mode=["messages", "updates"])
        return [e.text async for e in aiter_events(stream) if isinstance(e, TextDelta)]

    assert "".join(asyncio.run(main())) == "Let me check the weather. " + REPLY


# ---------------------------------------------------------------------- AutoGen


@pytest.fixture
def autogen_agent() -> Iterator[AssistantAgent]:
    client = ReplayChatCompletionClient([REPLY])
    yield AssistantAgent("assistant", model_client=client, model_client_stream=True)


def test_autogen_streaming_chunks_are_spoken_once(
    tone_server: ServerThread, autogen_agent: AssistantAgent
) -> None:
    async def main() -> list[object]:
        items = []
        with VoiceBridge(url=tone_server.url, sinks=[NullSink()]) as bridge:

            async def recorded() -> Any:
                async for item in autogen_agent.run_stream(task="What is the weather?"):
                    items.append(item)
                    yield item

            await bridge.aspeak(recorded())
        return items

    items = asyncio.run(main())
    assert sum(isinstance(i, ModelClientStreamingChunkEvent) for i in items) > 5
    assert [i.content for i in items if isinstance(i, TextMessage)] == [
        "What is the weather?",  # the user's task: not spoken
        REPLY,  # the whole reply again after its chunks: not spoken twice
    ]
    assert spoken(tone_server) == REPLY


def test_autogen_task_result_ends_the_turn(autogen_agent: AssistantAgent) -> None:
    async def main() -> list[object]:
        return [e async for e in aiter_events(autogen_agent.run_stream(task="Hi"))]

    events = asyncio.run(main())
    assert events[-1] == EndOfTurn("stop")
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == REPLY
