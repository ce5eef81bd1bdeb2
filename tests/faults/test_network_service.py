"""The local server as a network service, attacked by its clients (issue 10): the server runs
as a real process (what ``voicebridge serve`` runs), clients talk to it over sockets, and its
log (stderr) must stay free of tracebacks.

A client that sends 200,000 characters without punctuation, reading its audio or never reading
it, does not starve another client, and the server's memory does not grow with the audio it
cannot send. A non-ASCII key sent by the bridge gets 401. (Nested JSON and a reused task_id are
attacked over sockets in tests/server/test_server_network.py.)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import websocket

from tests.fault_tools.scenarios import QUICK
from tests.fault_tools.serve_process import ServeProcess
from tests.server.wsclient import RawClient
from voicebridge import VoiceBridge
from voicebridge.audio import NullSink
from voicebridge.errors import AuthenticationError, VoiceBridgeError
from voicebridge.protocol import (
    Audio,
    TaskStarted,
)

RUN_ON = ("and then some more words without any end " * 48)[:2000]  # one continue-task's worth


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def assert_quiet(server: ServeProcess) -> None:
    noisy = [line for line in server.log if "Traceback" in line or "Error" in line]
    assert not noisy, noisy


@pytest.fixture(scope="module")
def espeak_process() -> Iterator[ServeProcess]:
    with ServeProcess(engine="espeak") as server:
        yield server


def first_audio(url: str) -> float:
    """Seconds from a polite client's first text to its first audio at the sink."""
    with VoiceBridge(url=url, sinks=[NullSink()], settings=QUICK) as bridge:
        metrics = bridge.speak("Hello there. How are you today?")
    assert metrics.time_to_first_audio is not None
    return metrics.time_to_first_audio


@pytest.mark.parametrize("greedy_reads", [True, False], ids=["greedy-reads", "greedy-never-reads"])
def test_200000_characters_without_punctuation_do_not_starve_another_client(
    greedy_reads: bool, espeak_process: ServeProcess
) -> None:
    server = espeak_process
    assert server.pid is not None
    rss_before = rss_mib(server.pid)
    greedy = RawClient(server.url, timeout=60)
    received = [0]
    done = threading.Event()

    def drain() -> None:
        try:
            while not done.is_set():
                if isinstance(event := greedy.recv(), Audio):
                    received[0] += len(event.data)
        except (websocket.WebSocketException, OSError, VoiceBridgeError):
            return  # closed

    reader = threading.Thread(target=drain)
    try:
        greedy.run_task()
        assert isinstance(greedy.recv(), TaskStarted)
        for _ in range(100):
            greedy.send_text(RUN_ON)  # 200,000 characters, not one sentence end
        if greedy_reads:
            reader.start()
        time.sleep(1.0)  # the greedy task is being synthesized
        waits = [first_audio(server.url) for _ in range(3)]
        assert max(waits) < 5.0, waits  # about one 200-character sentence, not the 200,000
        if greedy_reads:
            assert received[0] > 0, "the greedy client was served too"
        assert rss_mib(server.pid) - rss_before < 100, "audio nobody reads is not piled up"
    finally:
        done.set()
        greedy.close()
        if reader.is_alive():
            reader.join(10)
    assert_quiet(server)


def test_a_non_ascii_key_gets_401() -> None:
    with ServeProcess(engine="text", api_key="sk-right") as server:
        for key in ("sk-café", "sk-密钥", "sk-right\u00e9"):
            bridge = VoiceBridge(url=server.url, api_key=key, sinks=[NullSink()], settings=QUICK)
            with bridge, pytest.raises(AuthenticationError) as caught:
                bridge.speak("Hello.")
            assert caught.value.status == 401, key
        with VoiceBridge(url=server.url, api_key="sk-right", sinks=[NullSink()]) as bridge:
            assert bridge.speak("Hello.").text == "Hello."
        assert_quiet(server)
