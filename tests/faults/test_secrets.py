"""The API key never leaves for a host the user did not name, and never shows in an error, a
log or a traceback's locals (issue 10), whatever the server answers.

Each attack is a real listener on 127.0.0.1: a redirect to another host (which records what it
gets), a 401 whose body echoes the request, a server that quotes the key in task-failed, a port
nobody listens on, a listener that never answers the handshake.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Callable, Iterator

import pytest
import websocket

from tests.fault_tools.proxy import HttpResponder, redirect_to, refuse_echoing
from tests.fault_tools.scenarios import key_clients, secret_leaks
from tests.fault_tools.serve_process import free_port
from voicebridge import VoiceBridge
from voicebridge.audio import NullSink
from voicebridge.client import SpeechSynthesizer
from voicebridge.errors import (
    AuthenticationError,
    ConfigurationError,
    HandshakeError,
    SynthesisTimeout,
    TaskFailedError,
    TransportError,
    VoiceBridgeError,
)
from voicebridge.server import FaultPlan, FaultPoint, ServerThread, Trigger

KEY = "sk-3f9a1c77e0b24d5e8c1d2f4a6b8c0e13"  # made up; a real key has this shape


@pytest.fixture(params=["VoiceBridge", "SpeechSynthesizer"])
def client(request: pytest.FixtureRequest) -> Callable[[str], None]:
    return key_clients(KEY)[request.param]


def failure_of(
    client: Callable[[str], None], url: str, caplog: pytest.LogCaptureFixture
) -> VoiceBridgeError:
    """Speak one sentence at ``url`` with ``KEY``; the error it ends with, after checking that
    the key shows nowhere (:func:`secret_leaks`: text, traceback locals, logs)."""
    caplog.set_level(logging.DEBUG)
    with pytest.raises(VoiceBridgeError) as caught:
        client(url)
    assert secret_leaks(KEY, caught.value, caplog.records) == []
    return caught.value


def test_a_redirect_during_the_handshake_never_carries_the_key_to_another_host(
    client: Callable[[str], None], caplog: pytest.LogCaptureFixture
) -> None:
    with HttpResponder(refuse_echoing(401)) as elsewhere:
        location = f"ws://localhost:{elsewhere.port}/api-ws/v1/inference"  # another host name
        with HttpResponder(redirect_to(location)) as gateway:
            # The trap works: a client that follows redirects hands the key to the other host.
            with contextlib.suppress(websocket.WebSocketException, OSError):
                websocket.create_connection(
                    gateway.url, header=[f"Authorization: Bearer {KEY}"], timeout=5
                )
            assert [r.header("Authorization") for r in elsewhere.requests] == [f"Bearer {KEY}"]
            elsewhere.requests.clear()
            gateway.requests.clear()

            error = failure_of(client, gateway.url, caplog)
            asked = len(gateway.requests)
    assert isinstance(error, HandshakeError) and error.status == 307
    assert "redirect" in str(error)
    assert elsewhere.requests == [], "nothing at all reached the other host"
    assert asked == 1, "a redirect is not retried"


def test_a_401_that_echoes_the_request_shows_no_key(
    client: Callable[[str], None], caplog: pytest.LogCaptureFixture
) -> None:
    with HttpResponder(refuse_echoing(401)) as server:
        error = failure_of(client, server.url, caplog)
        echoed = server.requests[0].header("Authorization")
    assert echoed == f"Bearer {KEY}", "the server really had the key to echo"
    assert isinstance(error, AuthenticationError)
    assert "Bearer ***" in str(error), "the echo is kept, the key scrubbed from it"


def test_a_task_failure_that_quotes_the_key_shows_no_key(
    client: Callable[[str], None],
    make_server: Callable[..., ServerThread],
    caplog: pytest.LogCaptureFixture,
) -> None:
    plan = FaultPlan(
        fail_at=Trigger(FaultPoint.TEXT, 1),
        fail_code="InvalidParameter",
        fail_message=f"workspace of key {KEY} has no access to this model",
    )
    server = make_server(engine="text", api_key=KEY, faults=plan)
    error = failure_of(client, server.url, caplog)
    assert isinstance(error, TaskFailedError)
    assert "workspace of key *** has no access" in str(error)


@contextlib.contextmanager
def silent_listener() -> Iterator[str]:
    """A port that accepts TCP connections (the kernel's backlog) and never answers."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        yield f"ws://127.0.0.1:{listener.getsockname()[1]}/api-ws/v1/inference"


def test_connection_failures_show_no_key(
    client: Callable[[str], None], caplog: pytest.LogCaptureFixture
) -> None:
    closed = failure_of(client, f"ws://127.0.0.1:{free_port()}/api-ws/v1/inference", caplog)
    assert isinstance(closed, TransportError)
    with silent_listener() as url:
        timed_out = failure_of(client, url, caplog)
    assert isinstance(timed_out, SynthesisTimeout)


@pytest.mark.parametrize(
    "build",
    [
        lambda: VoiceBridge(api_key=KEY, volume=500, sinks=[NullSink()]),
        lambda: VoiceBridge(api_key=KEY, url="https://not-a-websocket", sinks=[NullSink()]),
        lambda: SpeechSynthesizer("", "", api_key=KEY),
        lambda: SpeechSynthesizer("cosyvoice-v2", "longxiaochun_v2", url="ftp://x", api_key=KEY),
    ],
    ids=["bridge-bad-volume", "bridge-bad-url", "sdk-no-model", "sdk-bad-url"],
)
def test_a_bad_argument_next_to_the_key_shows_no_key_in_traceback_locals(
    build: Callable[[], object], caplog: pytest.LogCaptureFixture
) -> None:
    """The constructor's own frame is in the traceback: the key must not sit there as a plain
    string, and the half-built object's repr must not fail while the locals are rendered."""
    with pytest.raises(ConfigurationError) as caught:
        build()
    assert secret_leaks(KEY, caught.value, caplog.records) == []
