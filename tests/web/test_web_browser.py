"""The demo page in a real headless Chromium (Debian's ``chromium``, driven by Playwright's Python
package with ``executable_path``): a real WebServer with the embedded espeak-ng speech and the
scripted LLM. Typed message -> streamed text; the samples the AudioWorklet played are the samples
the server sent; Stop cuts the audio within one worklet buffer; a turn after the Stop; the
history keeps the stopped reply as heard; an LLM failure is shown.

The page runs under its own Content-Security-Policy (no bypass): the test reads the page's state
with ``page.evaluate`` (DevTools, not ``eval``), and any console error fails it.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, WebSocket, async_playwright

from tests.llm.scripted_llm import Fail, Pause, Reply, ScriptedLLM, say
from tests.web.conftest import bridge_threads, web_server
from voicebridge.web.messages import AUDIO_HEADER

CHROMIUM = "/usr/bin/chromium"  # Debian's package: `apt-get install chromium`
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
]
RATE = 22050
PREBUFFER = round(0.1 * RATE)  # app.js PREBUFFER_SECONDS: the worklet's jitter buffer
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "web-demo.png"

FIRST = (
    "Paris is the capital of France. It sits on the Seine, and about two million people "
    "live in the city itself."
)
LONG = (
    "The Seine flows for about 775 kilometres, from Burgundy to the English Channel. In Paris "
    "it is crossed by 37 bridges, and its banks are a World Heritage Site. Boat tours run all "
    "year, and in summer a stretch of the quay becomes a beach."
)
MORE = " Nobody hears this part: the LLM writes it after the Stop."
THIRD = "Yes, I am still here."

TURN_STATE = """(n) => {
  const t = window.voicebridgeDemo.turns.get(n);
  if (!t) return null;
  return {
    text: t.text, reply: t.elements.reply.textContent, received: t.received, played: t.played,
    playedHash: t.playedHash, finished: t.finished, stopped: t.stopped, stop: t.stop,
    done: t.done, expected: t.expected, words: t.words, highlights: t.highlights,
    metrics: t.elements.metrics.textContent, bot: t.elements.bot.textContent,
  };
}"""


def fnv1a(pcm: bytes) -> int:
    """The worklet's hash (player.js): FNV-1a over 16-bit samples."""
    value = 0x811C9DC5
    for i in range(0, len(pcm), 2):
        value = ((value ^ (pcm[i] | pcm[i + 1] << 8)) * 0x01000193) & 0xFFFFFFFF
    return value


class Wire:
    """Every frame the server sent to the page, as Chromium saw it."""

    def __init__(self) -> None:
        self.frames: list[str | bytes] = []

    def attach(self, socket: WebSocket) -> None:
        socket.on("framereceived", lambda payload: self.frames.append(payload))

    def audio(self, turn: int) -> bytes:
        pcm = bytearray()
        for frame in self.frames:
            if isinstance(frame, bytes) and AUDIO_HEADER.unpack_from(frame)[0] == turn:
                assert AUDIO_HEADER.unpack_from(frame)[1] == len(pcm) // 2  # in order, no gaps
                pcm += frame[AUDIO_HEADER.size :]
        return bytes(pcm)

    def index(self, predicate: Any) -> list[int]:
        return [i for i, frame in enumerate(self.frames) if predicate(frame)]


async def until(page: Page, expression: str, arg: Any = None, timeout: float = 30.0) -> Any:
    """Poll ``expression`` (a JS function of ``arg``) until it returns something truthy."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await page.evaluate(expression, arg)
        if value:
            return value
        if loop.time() > deadline:
            raise TimeoutError(f"{expression} stayed falsy for {timeout} s")
        await asyncio.sleep(0.03)


async def state(page: Page, turn: int) -> dict[str, Any]:
    result: dict[str, Any] = await page.evaluate(TURN_STATE, turn)
    return result


async def send(page: Page, text: str) -> None:
    await page.fill("#message", text)
    await page.click("#send")


def test_the_demo_page_in_chromium(llm: ScriptedLLM, tmp_path: Path) -> None:
    assert shutil.which(CHROMIUM), f"{CHROMIUM} is missing: apt-get install chromium"
    llm.queue(
        Reply(say(FIRST), token_delay=0.04),
        Reply([*say(LONG), Pause(3.0), *say(MORE)], token_delay=0.005),  # Stop in the pause
        Reply(say(THIRD), token_delay=0.01),
        Reply([*say("Let me"), Fail("the model is overloaded")]),
    )
    asyncio.run(asyncio.wait_for(drive(llm, tmp_path), 150))
    assert bridge_threads() == []  # the closed tab's bridge was closed, its threads joined


async def drive(llm: ScriptedLLM, tmp_path: Path) -> None:
    wire = Wire()
    problems: list[str] = []
    async with web_server(llm, engine="espeak") as server, async_playwright() as playwright:
        browser = await playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),  # a fresh --user-data-dir
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 900, "height": 820},
            device_scale_factor=1,
        )
        try:
            page = await browser.new_page()
            page.on("websocket", wire.attach)
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.on(
                "console",
                lambda m: problems.append(f"console: {m.text}") if m.type == "error" else None,
            )
            await page.goto(server.url)
            await until(page, "() => !document.getElementById('send').disabled")
            await first_turn(page, wire, tmp_path)
            await stopped_turn(page, wire, llm, tmp_path)
            await turn_after_stop(page, wire, llm)
            await llm_failure(page)
            assert problems == []
            assert server.sessions == 1
        finally:
            await browser.close()
        for _ in range(200):  # the closed tab's session ends on the server
            if server.sessions == 0:
                break
            await asyncio.sleep(0.05)
        assert server.sessions == 0


async def first_turn(page: Page, wire: Wire, tmp_path: Path) -> None:
    """Typed message -> streamed text and audio; every sample sent is played, unchanged; each
    word is lit while it plays, in order."""
    await send(page, "What is the capital of France?")
    # the reply shows while the LLM is still writing (before the turn is done)
    partial = await until(
        page,
        "() => { const t = window.voicebridgeDemo.turns.get(1);"
        " return t && !t.done && t.elements.reply.textContent }",
    )
    assert 0 < len(partial) < len(FIRST) and FIRST.startswith(partial)
    await until(page, "(n) => window.voicebridgeDemo.turns.get(n).finished", 1)
    turn = await state(page, 1)
    assert turn["text"] == FIRST and turn["reply"] == FIRST
    assert await page.input_value("#message") == ""
    texts = wire.index(lambda f: isinstance(f, str) and f.startswith('{"type":"text","turn":1'))
    done = wire.index(lambda f: isinstance(f, str) and f.startswith('{"type":"done","turn":1'))
    assert len(texts) > 10 and len(done) == 1 and texts[-1] < done[0]  # streamed, piece by piece
    sent = wire.audio(1)
    assert len(sent) // 2 > 2 * RATE  # seconds of speech
    assert turn["played"] == len(sent) // 2 == turn["expected"]
    assert turn["done"]["metrics"]["audio_seconds"] == pytest.approx(len(sent) / 2 / RATE, 1e-3)
    assert turn["playedHash"] == fnv1a(sent)  # the very samples the server sent, in order
    for name in ("first token", "first audio", "audio"):
        assert name in turn["metrics"].lower()
    check_highlights(turn, FIRST)


def check_highlights(turn: dict[str, Any], reply: str, stopped_at: float | None = None) -> None:
    """Words came with their place in the reply; each was lit in order, at its audio time."""
    words, lit = turn["words"], turn["highlights"]
    assert words, "no word timings came: the embedded speech server must send word timestamps"
    spoken = re.findall(r"\w+", reply)
    assert [w["text"] for w in words] == spoken[: len(words)]
    assert all(reply[w["span"][0] : w["span"][1]] == w["text"] for w in words)
    indices = [h["index"] for h in lit]
    assert indices == sorted(set(indices))  # in order, each once
    assert [h["text"] for h in lit] == [words[i]["text"] for i in indices]
    if stopped_at is None:
        assert len(words) == len(spoken) and len(lit) >= 0.9 * len(words)
    else:
        assert len(lit) >= 3 and all(h["at"] <= stopped_at for h in lit)
    # lit on the AudioContext clock at the word's time on the audio timeline (same offset)
    offsets = [h["at"] - words[h["index"]]["start"] for h in lit]
    assert max(offsets) - min(offsets) < 0.5


async def stopped_turn(page: Page, wire: Wire, llm: ScriptedLLM, tmp_path: Path) -> None:
    """Stop: the worklet plays nothing after it beyond one buffer; the server stops the turn."""
    await send(page, "Tell me about the river.")
    await until(
        page,
        "(n) => { const t = window.voicebridgeDemo.turns.get(n);"
        " return t && t.played > 0.6 * 22050 && t.highlights.length >= 3 }",
        2,
    )
    shot = await page.screenshot(path=str(tmp_path / "web-demo.png"))  # a word is lit
    assert shot.startswith(b"\x89PNG")
    if os.environ.get("VOICEBRIDGE_WEB_SCREENSHOT") == "1":  # refresh docs/web-demo.png
        SCREENSHOT.write_bytes(shot)
    await page.click("#stop")
    turn = await until(
        page,
        "(n) => { const t = window.voicebridgeDemo.turns.get(n);"
        " return t.done && t.stop.dropped !== undefined && t }",
        2,
    )
    stop = turn["stop"]
    assert stop["dropped"] > RATE  # more than a second was queued: Stop had something to cut
    assert stop["playedAfter"] is not None and 0 <= stop["playedAfter"] <= PREBUFFER
    await asyncio.sleep(0.5)
    later = await state(page, 2)
    assert later["played"] == stop["played"]  # nothing more of the turn was played
    assert later["done"]["interrupted"] is True
    assert "Stopped" in later["bot"]
    await asyncio.to_thread(llm.wait_streams, disconnects=1, completed=1, timeout=10)
    done = wire.index(lambda f: isinstance(f, str) and f.startswith('{"type":"done","turn":2'))
    audio = wire.index(lambda f: isinstance(f, bytes) and AUDIO_HEADER.unpack_from(f)[0] == 2)
    assert len(done) == 1 and audio and audio[-1] < done[0]  # no audio of the turn after done
    assert LONG.startswith(later["text"])  # the LLM stream was closed before MORE
    check_highlights(later, LONG, stopped_at=stop["at"])
    heard_end = later["done"]["heard_end"]  # the page shows the heard part, the rest struck
    assert later["done"]["reply"].rstrip() == LONG[:heard_end]
    assert (
        await page.locator(".bubble.bot").nth(1).locator(".unheard").text_content()
        == (later["text"][heard_end:])
    )


async def turn_after_stop(page: Page, wire: Wire, llm: ScriptedLLM) -> None:
    """A turn after the Stop plays whole, and the history holds the stopped reply as kept."""
    stopped = await state(page, 2)
    await send(page, "Are you still there?")
    await until(
        page, "(n) => { const t = window.voicebridgeDemo.turns.get(n); return t && t.finished }", 3
    )
    turn = await state(page, 3)
    assert turn["text"] == THIRD
    sent = wire.audio(3)
    assert turn["played"] == len(sent) // 2 > 0 and turn["playedHash"] == fnv1a(sent)
    history = llm.requests[2]["messages"]
    assert history[-1] == {"role": "user", "content": "Are you still there?"}
    assert history[-3] == {"role": "user", "content": "Tell me about the river."}
    kept = stopped["done"]["reply"]  # TurnMetrics.heard_text
    assert history[-2] == {"role": "assistant", "content": kept}
    assert LONG.startswith(kept) and len(kept) < len(LONG) / 2


async def llm_failure(page: Page) -> None:
    """The LLM failing mid-reply is shown as a clear message."""
    await send(page, "Fail, please.")
    await until(page, "() => !document.getElementById('error').hidden")
    banner = await page.text_content("#error")
    assert banner is not None
    assert "The LLM failed" in banner and "the model is overloaded" in banner
    errors = await page.evaluate("() => window.voicebridgeDemo.errors")
    assert [e["source"] for e in errors] == ["llm"]  # the only error of the whole session
