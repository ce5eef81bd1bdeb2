"""Fixtures of the web demo tests: the scripted LLM (tests/llm/scripted_llm.py), a real
:class:`~voicebridge.web.WebServer` on 127.0.0.1:0 with the embedded speech server, and a page
stand-in that speaks the page's WebSocket protocol (for the tests that need no browser). The
stand-in is a fake player: it reports each turn played to its end as soon as it has the audio."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.llm.scripted_llm import ScriptedLLM
from voicebridge.chat import LLMEndpoint
from voicebridge.voices import MODEL_VOICES
from voicebridge.web import SessionConfig, WebServer
from voicebridge.web.messages import AUDIO_HEADER

BRIDGE_THREADS = ("voicebridge-receive", "voicebridge-session", "voicebridge-audio-dispatcher")


@pytest.fixture
def llm() -> Iterator[ScriptedLLM]:
    with ScriptedLLM() as server:
        yield server


def bridge_threads() -> list[str]:
    """Threads that a VoiceBridge starts (each session's bridge has its own)."""
    return [t.name for t in threading.enumerate() if t.name in BRIDGE_THREADS]


@contextlib.asynccontextmanager
async def web_server(
    llm: ScriptedLLM, *, engine: str | None = "tone", **config: Any
) -> AsyncIterator[WebServer]:
    """A WebServer on a free loopback port, the LLM scripted, speech embedded (``engine``)."""
    endpoint = LLMEndpoint("scripted LLM", "scripted", base_url=llm.base_url, api_key="sk-test")
    config.setdefault("voices", MODEL_VOICES["cosyvoice-v2"])
    config.setdefault("voice", "loongabby_v2")
    async with WebServer(
        SessionConfig(llm=endpoint, **config), port=0, embedded_engine=engine
    ) as server:
        yield server


@dataclass
class TurnSeen:
    """What a page stand-in received for one turn."""

    text: str = ""
    audio: bytearray = field(default_factory=bytearray)
    words: list[dict[str, Any]] = field(default_factory=list)
    done: dict[str, Any] | None = None


class Page:
    """A page stand-in: sends JSON (or raw frames), collects every message by turn, and (with
    ``plays``) reports a turn played once its ``audio_end`` has come."""

    def __init__(self, ws: ClientConnection, *, plays: bool = True) -> None:
        self.ws = ws
        self.plays = plays
        self.messages: list[dict[str, Any]] = []
        self.turns: dict[int, TurnSeen] = {}

    async def send(self, **message: Any) -> None:
        await self.ws.send(json.dumps(message))

    async def receive(self, timeout: float = 20.0) -> dict[str, Any] | None:
        """The next message (None for an audio frame, which is filed under its turn)."""
        frame = await asyncio.wait_for(self.ws.recv(), timeout)
        if isinstance(frame, bytes):
            turn, first = AUDIO_HEADER.unpack(frame[: AUDIO_HEADER.size])
            seen = self.turns.setdefault(turn, TurnSeen())
            assert first == len(seen.audio) // 2, "audio frames in order, without gaps"
            seen.audio += frame[AUDIO_HEADER.size :]
            return None
        message: dict[str, Any] = json.loads(frame)
        self.messages.append(message)
        turn = message.get("turn")
        if isinstance(turn, int):
            seen = self.turns.setdefault(turn, TurnSeen())
            if message["type"] == "text":
                seen.text += message["text"]
            elif message["type"] == "word":
                seen.words.append(message)
            elif message["type"] == "done":
                seen.done = message
            elif message["type"] == "audio_end" and self.plays:
                seconds = message["samples"] / 22050
                await self.send(type="played", turn=turn, seconds=seconds, finished=True)
        return message

    async def until(self, kind: str, timeout: float = 20.0, **fields: Any) -> dict[str, Any]:
        """Receive until a message of ``kind`` (with these field values) arrives."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            message = await self.receive(max(0.0, deadline - loop.time()))
            if (
                message is not None
                and message["type"] == kind
                and all(message.get(k) == v for k, v in fields.items())
            ):
                return message

    async def turn(self, text: str, **options: Any) -> TurnSeen:
        """Say ``text`` and receive until its turn is done."""
        await self.send(type="say", text=text, **options)
        number = (await self.until("turn"))["turn"]
        await self.until("done", turn=number)
        return self.turns[number]


@contextlib.asynccontextmanager
async def open_page(
    server: WebServer, *, plays: bool = True, **options: Any
) -> AsyncIterator[Page]:
    """A connected page stand-in, after the server's ``ready``."""
    url = server.url.replace("http://", "ws://") + "ws"
    async with connect(url, **options) as ws:
        page = Page(ws, plays=plays)
        await page.until("ready")
        yield page
