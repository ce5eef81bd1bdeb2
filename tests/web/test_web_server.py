"""The demo server without a browser: a real WebServer (embedded tone speech, scripted LLM) and
a real WebSocket client in the page's place. Static files, turns, history, errors, bad input,
sessions and their cleanup."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.llm.scripted_llm import Fail, Pause, Reply, ScriptedLLM, say
from tests.web.conftest import Page, TurnSeen, bridge_threads, open_page, web_server
from voicebridge.errors import ConfigurationError
from voicebridge.web import WebLimits, WebServer, add_arguments
from voicebridge.web import run as web_run


def run(scenario: Any) -> Any:
    return asyncio.run(asyncio.wait_for(scenario, 90))


def fetch(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_the_page_and_its_files_are_served(llm: ScriptedLLM) -> None:
    async def scenario() -> list[tuple[str, int, dict[str, str], bytes]]:
        async with web_server(llm) as server:
            paths = ["", "style.css", "app.js", "player.js", "icon.svg", "nope", "../pyproject"]
            return [(p, *await asyncio.to_thread(fetch, server.url + p)) for p in paths]

    results = {path: (status, headers, body) for path, status, headers, body in run(scenario())}
    status, headers, body = results[""]
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b'src="app.js"' in body and b"http" not in body.replace(b'"http-equiv', b"")
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert results["app.js"][1]["Content-Type"].startswith("text/javascript")
    assert b"registerProcessor" in results["player.js"][2]
    assert results["style.css"][1]["Content-Type"].startswith("text/css")
    assert results["icon.svg"][0] == 200
    assert results["nope"][0] == 404 and results["../pyproject"][0] == 404


def test_a_turn_streams_text_and_audio_and_keeps_history(llm: ScriptedLLM) -> None:
    llm.queue(Reply(say("Paris is the capital of France. It is on the Seine.")))

    async def scenario() -> tuple[dict[str, Any], Page]:
        async with web_server(llm) as server, open_page(server) as page:
            ready = page.messages[0]
            first = await page.turn("What is the capital of France?")
            second = await page.turn("And of Italy?", voice="loongeva_v2", rate=1.5)
            assert first.done is not None and second.done is not None
            return ready, page

    ready, page = run(scenario())
    assert ready["sample_rate"] == 22050 and ready["voice"] == "loongabby_v2"
    assert ["loongabby_v2", "American English", "female"] in ready["voices"]
    assert ready["llm"] == "scripted LLM, model scripted"
    assert ready["speech"] == "embedded local server (tone, offline)"
    first, second = page.turns[1], page.turns[2]
    assert first.text == "Paris is the capital of France. It is on the Seine."
    assert first.done is not None and first.done["reply"] == first.text
    assert first.done["interrupted"] is False
    audio_end = next(m for m in page.messages if m["type"] == "audio_end" and m["turn"] == 1)
    assert audio_end["samples"] == len(first.audio) // 2 > 22050  # seconds of speech
    assert page.messages.index(audio_end) < page.messages.index(first.done)
    metrics = first.done["metrics"]
    assert 0 < metrics["first_token"] <= metrics["first_audio"]
    assert metrics["audio_seconds"] == pytest.approx(len(first.audio) / 2 / 22050, abs=0.001)
    assert second.text == "You said: And of Italy?"  # the scripted LLM's echo
    turn_messages = [m for m in page.messages if m["type"] == "turn"]
    assert turn_messages[1]["voice"] == "loongeva_v2" and turn_messages[1]["rate"] == 1.5
    # the second request carried the first exchange as history
    assert llm.requests[1]["messages"][1:] == [
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": first.text},
        {"role": "user", "content": "And of Italy?"},
    ]


def test_bad_input_gets_a_message_and_loses_nothing(llm: ScriptedLLM) -> None:
    limits = WebLimits(max_text_chars=50, max_message_bytes=1000, max_frame_bytes=100_000)

    async def scenario() -> list[str]:
        async with web_server(llm, limits=limits) as server, open_page(server) as page:
            reasons = []
            junk: list[str | bytes] = [
                b"\x00\x01\xfe\xff" * 100,
                "{oops",
                "null",
                json.dumps({"type": "dance"}),
                json.dumps({"type": "say", "text": "x" * 51}),
                json.dumps({"type": "say", "text": "y" * 2000}),
                json.dumps({"type": "say", "text": "hi", "voice": "nobody"}),
                json.dumps({"type": "interrupt", "turn": 99}),
            ]
            for frame in junk:
                await page.ws.send(frame)
                reasons.append((await page.until("error"))["message"])
            seen = await page.turn("Still there?")  # the session goes on
            assert seen.text == "You said: Still there?" and len(seen.audio) > 0
            return reasons

    reasons = run(scenario())
    assert reasons == [
        "binary messages are not accepted: send JSON text",
        "malformed JSON: Expecting property name enclosed in double quotes: line 1 column 2 "
        "(char 1)",
        "a message must be a JSON object with a 'type'",
        "unknown message type 'dance' (expected 'say', 'interrupt' or 'played')",
        "text too long: 51 characters (at most 50)",
        "message too long: 2027 bytes (at most 1000)",
        "unknown voice 'nobody'",
        "no turn 99 to stop",
    ]
    # no request reached the LLM for any of them
    assert [r["messages"][-1]["content"] for r in llm.requests] == ["Still there?"]


def test_a_frame_beyond_the_hard_limit_closes_with_1009(llm: ScriptedLLM) -> None:
    limits = WebLimits(max_frame_bytes=10_000)

    async def scenario() -> int | None:
        async with web_server(llm, limits=limits) as server, open_page(server) as page:
            await page.ws.send("x" * 20_000)
            with pytest.raises(ConnectionClosed):
                while True:
                    await page.receive()
            assert page.ws.close_code is not None
            return page.ws.close_code

    assert run(scenario()) == 1009


def test_a_flood_is_answered_once_per_second_and_the_session_goes_on(llm: ScriptedLLM) -> None:
    limits = WebLimits(messages_per_second=10, message_burst=10)

    async def scenario() -> tuple[list[dict[str, Any]], Page]:
        async with web_server(llm, limits=limits) as server, open_page(server) as page:
            for _ in range(500):
                await page.ws.send('{"type": "interrupt", "turn": 1}')
            await asyncio.sleep(1.2)  # the bucket refills
            seen = await page.turn("After the flood")
            assert seen.text == "You said: After the flood"
            return [m for m in page.messages if m["type"] == "error"], page

    errors, _ = run(scenario())
    floods = [e for e in errors if e["message"].startswith("too many messages")]
    assert 1 <= len(floods) <= 3  # one notice per second of flood, not one per message
    assert "at most 10 per second" in floods[0]["message"]
    assert len(errors) - len(floods) == 10  # the burst was handled: "no turn 1 to stop"
    assert all(e["source"] == "input" for e in errors)


def test_say_during_a_reply_is_refused_and_interrupt_stops_it(llm: ScriptedLLM) -> None:
    long_reply = "This is a long reply that keeps going. " * 6
    llm.queue(Reply(say(long_reply), token_delay=0.05))

    async def scenario() -> Page:
        async with web_server(llm) as server, open_page(server) as page:
            await page.send(type="say", text="Tell me a long story.")
            await page.until("text")
            await page.send(type="say", text="Another one")
            busy = await page.until("error")
            assert busy["message"] == "a reply is still being spoken: press Stop first"
            await page.send(type="interrupt", turn=1, heard=0.0)
            await page.until("done", turn=1)
            await asyncio.to_thread(llm.wait_streams, disconnects=1)
            return page

    page = run(scenario())
    done = page.turns[1].done
    assert done is not None and done["interrupted"] is True
    assert len(page.turns[1].text) < len(long_reply)  # the LLM stream was closed early


def test_the_llm_failing_is_reported(llm: ScriptedLLM) -> None:
    llm.queue(Reply([*say("Let me think"), Fail("the model is overloaded")]))

    async def scenario() -> tuple[dict[str, Any], Page]:
        async with web_server(llm) as server, open_page(server) as page:
            await page.send(type="say", text="Hello")
            error = await page.until("error")
            await page.until("done", turn=1)
            await page.turn("Again")  # the next turn works
            return error, page

    error, page = run(scenario())
    assert error["source"] == "llm" and error["turn"] == 1
    assert error["message"] == "the LLM stream failed: APIError: the model is overloaded"
    assert page.turns[2].text == "You said: Again"


def test_the_llm_unreachable_is_reported(llm: ScriptedLLM) -> None:
    async def scenario() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        async with web_server(llm) as server:
            llm.stop()  # nothing listens there any more
            async with open_page(server) as page:
                await page.send(type="say", text="Hello")
                error = await page.until("error")
                await page.until("done", turn=1)
                return error, page.messages

    error, _ = run(scenario())
    assert error["source"] == "llm"
    assert error["message"] == "the LLM stream failed: APIConnectionError: Connection error."


def test_speech_failing_is_reported(llm: ScriptedLLM) -> None:
    async def scenario() -> dict[str, Any]:
        async with (
            web_server(llm, engine=None, speech_url="ws://127.0.0.1:9/api-ws/v1/inference") as s,
            open_page(s) as page,
        ):
            await page.send(type="say", text="Hello")
            error = await page.until("error")
            await page.until("done", turn=1)
            return error

    error = run(scenario())
    assert error["source"] == "speech" and error["turn"] == 1
    assert error["message"].startswith("speech failed: ")
    assert "127.0.0.1:9" in error["message"]


def test_sessions_are_bounded_and_each_has_its_own_bridge(llm: ScriptedLLM) -> None:
    limits = WebLimits(max_sessions=2)

    async def scenario() -> tuple[list[str], int, int | None]:
        assert bridge_threads() == [], "threads left by an earlier test"
        async with web_server(llm, limits=limits) as server:
            async with open_page(server) as first, open_page(server) as second:
                a, b = await asyncio.gather(first.turn("Hello from A"), second.turn("From B"))
                threads = bridge_threads()
                async with connect(server.url.replace("http", "ws") + "ws") as third:
                    refused = json.loads(await third.recv())
                    with pytest.raises(ConnectionClosed):
                        await third.recv()
                    code = third.close_code
                assert refused["source"] == "server"
                assert refused["message"].startswith("the server is busy: 2 sessions are open")
                assert (a.text, b.text) == ("You said: Hello from A", "You said: From B")
            await wait_for(lambda: server.sessions == 0)
            return threads, server.sessions, code

    threads, sessions, code = run(scenario())
    assert sorted(threads) == sorted(
        [
            "voicebridge-receive",
            "voicebridge-session",
            "voicebridge-audio-dispatcher",
        ]
        * 2
    )
    assert sessions == 0 and code == 1013
    assert bridge_threads() == []


def test_a_tab_closing_mid_reply_cancels_its_turn_and_leaks_nothing(llm: ScriptedLLM) -> None:
    # the LLM is still writing (in its pause) when the tab closes; the tokens after it are
    # spaced, so the scripted server sees the closed connection on its second write
    after = say(" Nobody reads these words any more.")
    llm.queue(Reply([*say("A reply cut off by a closing tab."), Pause(3.0), *after], 0.05))

    async def scenario() -> int:
        async with web_server(llm) as server:
            async with open_page(server) as page:
                await page.send(type="say", text="Talk")
                while not page.turns.get(1) or not page.turns[1].audio:
                    await page.receive()
                page.ws.transport.abort()  # the tab is gone: no close handshake
            # its LLM stream is closed, its bridge closed, its threads joined
            await asyncio.to_thread(llm.wait_streams, disconnects=1, timeout=10)
            await wait_for(lambda: server.sessions == 0)
            await wait_for(lambda: bridge_threads() == [])
            return server.sessions

    assert run(scenario()) == 0
    assert bridge_threads() == []


def test_a_websocket_from_another_origin_is_refused(llm: ScriptedLLM) -> None:
    async def scenario() -> int:
        async with web_server(llm) as server:
            url = server.url.replace("http", "ws") + "ws"
            with pytest.raises(InvalidStatus) as refused:
                async with connect(url, origin="http://evil.example"):  # type: ignore[arg-type]
                    pass
            async with open_page(server, origin=server.url.rstrip("/")) as page:  # same origin
                assert page.messages[0]["type"] == "ready"
            return refused.value.response.status_code

    assert run(scenario()) == 403


async def wait_for(condition: Any, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.02)


def test_stop_keeps_the_reply_as_far_as_it_was_heard(llm: ScriptedLLM) -> None:
    """Stop with ``heard``: the bridge's heard_text (what the page played) goes to the history."""
    reply = "First sentence here. Second sentence there. Third sentence last."
    after = say(" And then some words nobody hears.")  # spaced: the closed stream is seen
    llm.queue(Reply([*say(reply), Pause(3.0), *after], token_delay=0.02))  # writing at Stop

    async def scenario() -> dict[str, Any]:
        async with web_server(llm) as server, open_page(server, plays=False) as page:
            await page.send(type="say", text="Go")
            while len(page.turns.get(1, TurnSeen()).audio) < 2 * 2 * 22050:  # 2 s received
                await page.receive()
            await page.send(type="played", turn=1, seconds=0.5)
            await page.send(type="interrupt", turn=1, heard=1.6)
            done = await page.until("done", turn=1)
            assert not any(m["type"] == "audio_end" for m in page.messages)
            page.plays = True
            await page.turn("Next")
            await asyncio.to_thread(llm.wait_streams, disconnects=1, timeout=10)
            return done

    done = run(scenario())
    assert done["interrupted"] is True
    heard = done["reply"]
    assert heard and reply.startswith(heard) and len(heard) < len(reply)
    assert llm.requests[1]["messages"][-3:] == [
        {"role": "user", "content": "Go"},
        {"role": "assistant", "content": heard},
        {"role": "user", "content": "Next"},
    ]


def test_a_page_that_stops_reporting_playback_fails_its_turn(llm: ScriptedLLM) -> None:
    async def scenario() -> dict[str, Any]:
        async with (
            web_server(llm, playback_stall_timeout=0.5) as server,
            open_page(server, plays=False) as page,
        ):
            await page.send(type="say", text="Hello")
            error = await page.until("error")
            await page.until("done", turn=1)
            return error

    error = run(scenario())
    assert error["source"] == "audio" and error["turn"] == 1
    assert error["message"].startswith("playback failed: the page reported no playback for 0.5 s")


def test_run_serves_on_loopback_until_sigterm(llm: ScriptedLLM) -> None:
    """``run(args)`` (what ``voicebridge web`` calls): the LLM from OPENAI_BASE_URL as for
    ``chat``, the embedded speech server, loopback, a clean exit on SIGTERM."""
    program = (
        "import argparse, sys\n"
        "from voicebridge.web import add_arguments, run\n"
        "parser = argparse.ArgumentParser()\n"
        "add_arguments(parser)\n"
        "sys.exit(run(parser.parse_args(sys.argv[1:])))\n"
    )
    env = {**os.environ, "OPENAI_BASE_URL": llm.base_url, "OPENAI_API_KEY": "sk-test"}
    env.pop("DASHSCOPE_API_KEY", None)
    env.pop("DASHSCOPE_WEBSOCKET_BASE_URL", None)
    with subprocess.Popen(
        [sys.executable, "-c", program, "--port", "0", "--engine", "tone"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stderr is not None
        try:
            lines = [process.stderr.readline() for _ in range(3)]
            url = lines[0].split("open ", 1)[1].split(" ", 1)[0]
            status, _, body = fetch(url)
        finally:
            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=20)
    assert url.startswith("http://127.0.0.1:") and status == 200 and b"voicebridge" in body
    assert lines[1].strip() == f"LLM: OpenAI-compatible endpoint {llm.base_url}, model gpt-4o-mini"
    assert lines[2].strip() == "speech: embedded local server (tone, offline)"
    assert code == 0


def test_bad_arguments_and_a_busy_port_are_one_line_errors(llm: ScriptedLLM) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    with pytest.raises(ConfigurationError, match="voice 'nobody' does not exist for cosyvoice-v2"):
        web_run(parser.parse_args(["--voice", "nobody"]))
    with pytest.raises(SystemExit):  # argparse: "--rate: 3 is out of range: 0.5 to 2"
        parser.parse_args(["--rate", "3"])

    async def scenario() -> str:
        async with web_server(llm) as server:
            config = server.config
            with pytest.raises(ConfigurationError) as busy:
                await WebServer(config, port=server.port).start()
            return str(busy.value)

    message = run(scenario())
    assert message.startswith("cannot listen on 127.0.0.1:") and "\n" not in message
