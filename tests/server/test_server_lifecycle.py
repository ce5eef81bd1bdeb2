"""Start and stop: nothing keeps running after stop(), and Ctrl-C ends ``serve()`` cleanly."""

from __future__ import annotations

import asyncio
import signal
import threading

import pytest
from wsclient import RawClient, serve_process

from voicebridge.errors import ConfigurationError
from voicebridge.protocol import Audio, TaskFinished
from voicebridge.server import LocalServer, ServerThread

OUR_THREADS = ("voicebridge-server", "voicebridge-synth", "espeak-ng")


def our_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(OUR_THREADS)]


@pytest.mark.parametrize("engine", ["tone", "espeak"])
def test_stop_during_a_task_joins_every_thread(engine: str) -> None:
    assert our_threads() == []
    with ServerThread(engine=engine) as server:
        client = RawClient(server.url)
        client.run_task()
        client.recv()
        client.send_text("A sentence that is still being spoken when the server stops. " * 5)
        while not isinstance(client.recv(), Audio):
            pass
        assert our_threads()
    assert our_threads() == []
    client.close()


def test_two_espeak_servers_share_one_engine_thread() -> None:
    with ServerThread(engine="espeak") as first, ServerThread(engine="espeak") as second:
        assert our_threads().count("espeak-ng") == 1
        for server in (first, second):
            with RawClient(server.url) as client:
                assert isinstance(client.speak("Hello.", voice="loongeva_v2")[-1], TaskFinished)
    assert our_threads() == []


def test_unknown_engine_name_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        LocalServer(engine="festival")


def test_repr_and_url_never_show_the_key() -> None:
    server = LocalServer(api_key="sk-secret-key", engine="tone")
    assert "sk-secret-key" not in repr(server)
    assert server.url.endswith(":0/api-ws/v1/inference")


@pytest.mark.usefixtures("ctrl_c_reaches_children")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_and_sigterm_stop_serve_cleanly(signum: int) -> None:
    with serve_process(engine="tone") as (process, url):
        with RawClient(url) as client:
            assert isinstance(client.speak("Before Ctrl-C.")[-1], TaskFinished)
        process.send_signal(signum)
        assert process.wait(timeout=20) == 0
        assert process.stderr is not None and "Traceback" not in process.stderr.read()


def test_port_in_use_is_a_configuration_error_and_leaves_nothing(tone_server: ServerThread) -> None:
    port = int(tone_server.url.split(":")[2].split("/")[0])
    with pytest.raises(ConfigurationError, match="cannot listen"):
        ServerThread(port=port, engine="tone").start()
    assert sorted(our_threads()) == ["voicebridge-server", "voicebridge-synth"]  # the fixture's


def test_local_server_as_async_context_manager() -> None:
    async def main() -> str:
        async with LocalServer(engine="tone") as server:
            return server.url

    assert asyncio.run(main()).startswith("ws://127.0.0.1:")
    assert our_threads() == []
