"""The local server as a network service (issue 10) and flush (issue 11), over real sockets."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable

import pytest
import websocket
from wsclient import RawClient

from voicebridge.errors import VoiceBridgeError
from voicebridge.protocol import (
    Audio,
    ResultGenerated,
    RunTask,
    SynthesisParameters,
    TaskFailed,
    TaskFinished,
    TaskStarted,
    encode_client_message,
)
from voicebridge.server import ServerThread, SpeechRequest, TextEngine
from voicebridge.server.scheduler import Delivery, EngineScheduler, SentenceStarted

MakeServer = Callable[..., ServerThread]


def test_scheduler_takes_connections_in_turn() -> None:
    engine = TextEngine(seconds_per_character=0.001)
    scheduler = EngineScheduler(engine)
    order: list[str] = []
    release = threading.Event()
    done = threading.Semaphore(0)

    def recorder(name: str, block: bool = False) -> Callable[[Delivery], None]:
        def deliver(item: Delivery) -> None:
            if isinstance(item, SentenceStarted):
                order.append(name)
                if block:
                    assert release.wait(10)
            elif not isinstance(item, (bytes, SentenceStarted)):
                done.release()

        return deliver

    try:
        scheduler.submit("gate", SpeechRequest("g", "en"), recorder("gate", block=True))
        for i in range(3):
            scheduler.submit("greedy", SpeechRequest("x" * 50, "en"), recorder(f"greedy{i}"))
        scheduler.submit("polite", SpeechRequest("y", "en"), recorder("polite"))
        release.set()
        for _ in range(5):
            assert done.acquire(timeout=10)
    finally:
        scheduler.close(10)
    assert order == ["gate", "greedy0", "polite", "greedy1", "greedy2"]


def test_a_client_without_punctuation_does_not_starve_the_others(make_server: MakeServer) -> None:
    server = make_server(engine="espeak")
    greedy = RawClient(server.url, timeout=30)
    greedy_task = greedy.run_task(voice="loongeva_v2")
    assert isinstance(greedy.recv(), TaskStarted)
    for _ in range(20):  # 40,000 characters, not one sentence end
        greedy.send_text("and then some more words " * 80)
    greedy.finish()
    first_audio = threading.Event()

    def drain() -> None:
        try:
            while True:
                if isinstance(greedy.recv(), Audio):
                    first_audio.set()
        except (websocket.WebSocketException, OSError, VoiceBridgeError):
            return  # closed

    reader = threading.Thread(target=drain)
    reader.start()
    try:
        assert first_audio.wait(30)  # sentences of bounded length: audio long before the end

        def greedy_sentences() -> int:
            return len(server.transcripts[0].tasks.get(greedy_task, []))

        before = greedy_sentences()
        with RawClient(server.url, timeout=30) as polite:
            events = polite.speak("Hello there.", voice="loongeva_v2")
        after = greedy_sentences()
        assert isinstance(events[-1], TaskFinished)
        assert after - before <= 3  # the polite sentence waited for about one greedy sentence
        assert after < 40_000 / 200  # and the greedy task was far from done
    finally:
        greedy.close()
        reader.join(10)


def raw_handshake(url: str, authorization: bytes) -> bytes:
    """Send a WebSocket upgrade with the given raw Authorization bytes; the status line."""
    host_port = url.split("/")[2]
    host, port = host_port.rsplit(":", 1)
    request = (
        b"GET /api-ws/v1/inference HTTP/1.1\r\nHost: " + host_port.encode() + b"\r\n"
        b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Authorization: " + authorization + b"\r\n\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        return sock.recv(4096)


def test_a_non_ascii_key_gets_401_not_500(make_server: MakeServer) -> None:
    server = make_server(api_key="sk-right")
    for key in ("sk-中文".encode(), b"sk-\xff\xfe", b"sk-right" + "é".encode()):
        reply = raw_handshake(server.url, b"Bearer " + key)
        assert reply.startswith(b"HTTP/1.1 401"), reply[:40]
        assert b"InvalidApiKey" in reply
    assert raw_handshake(server.url, b"Bearer sk-right").startswith(b"HTTP/1.1 101")


def test_a_non_ascii_configured_key_matches_its_utf8_bytes(make_server: MakeServer) -> None:
    server = make_server(api_key="sk-密钥")
    assert raw_handshake(server.url, b"Bearer " + "sk-密钥".encode()).startswith(b"HTTP/1.1 101")
    assert raw_handshake(server.url, b"Bearer sk-other").startswith(b"HTTP/1.1 401")


def test_no_log_level_shows_a_clients_key(
    make_server: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server = make_server(api_key="sk-secret-in-the-header")
    assert raw_handshake(server.url, b"Bearer sk-secret-in-the-header").startswith(b"HTTP/1.1 101")
    assert raw_handshake(server.url, b"Bearer sk-wrong-key-also-secret").startswith(b"HTTP/1.1 401")
    assert caplog.records, "the server logged at DEBUG"
    assert "secret" not in caplog.text


def test_deeply_nested_json_gets_task_failed_and_no_traceback(
    tone_server: ServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with RawClient(tone_server.url) as client:
        client.run_task()
        assert isinstance(client.recv(), TaskStarted)
        client.ws.send("[" * 100_000 + "]" * 100_000)
        failed = client.until_end()[-1]
    assert isinstance(failed, TaskFailed) and failed.task_id == client.task_id
    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]


def test_second_run_task_with_the_same_id_fails_and_sends_no_old_audio(
    tone_server: ServerThread,
) -> None:
    with RawClient(tone_server.url) as client:
        task = client.run_task()
        assert isinstance(client.recv(), TaskStarted)
        client.send_text("A sentence that is being spoken. " * 3)
        params = SynthesisParameters("cosyvoice-v2", "longxiaochun_v2", "pcm", 22050)
        client.ws.send(encode_client_message(RunTask.create(task, params)))
        events = client.until_end()
        failed = events[-1]
        assert isinstance(failed, TaskFailed) and failed.task_id == task
        assert "already used" in failed.message
        assert client.ws.recv() == ""  # closed; nothing came after the failure


def test_flush_speaks_the_held_text_before_finish(tone_server: ServerThread) -> None:
    with RawClient(tone_server.url, timeout=10) as client:
        client.run_task()
        client.recv()
        client.send_text("a clause without an end, ")
        client.send_text("and more of it")
        client.send_text("", flush=True)
        events = []
        while not (isinstance(e := client.recv(), ResultGenerated) and e.type == "sentence-end"):
            events.append(e)
        assert e.original_text == "a clause without an end, and more of it"
        assert any(isinstance(x, Audio) for x in events)  # heard before finish-task was sent
        client.send_text("Then the rest.")
        client.finish()
        ends = [x for x in client.until_end() if isinstance(x, ResultGenerated)]
        assert [x.original_text for x in ends if x.type == "sentence-end"] == ["Then the rest."]


def test_flush_end_to_end_through_the_official_sdk_wire_format(tone_server: ServerThread) -> None:
    """The SDK's streaming_flush frame: continue-task with only {"flush": true}."""
    with RawClient(tone_server.url, timeout=10) as client:
        client.run_task()
        client.recv()
        client.send_text("held text")
        frame = {
            "header": {"action": "continue-task", "task_id": client.task_id, "streaming": "duplex"},
            "payload": {"input": {"flush": True}},
        }
        started = time.monotonic()
        client.ws.send(json.dumps(frame))
        while not (isinstance(e := client.recv(), ResultGenerated) and e.type == "sentence-end"):
            pass
        assert e.original_text == "held text" and time.monotonic() - started < 10
