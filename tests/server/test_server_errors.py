"""Authentication, parameter errors, size limits and the two timers, as the service does them."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
import websocket
from wsclient import RawClient

from voicebridge.protocol import TaskFailed, TaskFinished, TaskStarted
from voicebridge.server import ServerThread
from voicebridge.server.service import ServerLimits

IDLE = 0.3  # seconds: the shortened 23-second timer of these tests
TEST_API_KEY = "sk-test-0123456789"


def assert_closed(client: RawClient) -> None:
    """The server closed the connection (websocket-client answers a close frame with "")."""
    try:
        frame = client.ws.recv()
    except websocket.WebSocketConnectionClosedException:
        return
    assert frame == "" and not client.ws.connected


def failure(client: RawClient) -> TaskFailed:
    event = client.until_end()[-1]
    assert isinstance(event, TaskFailed)
    return event


@pytest.fixture
def keyed_server(make_server: Callable[..., ServerThread]) -> ServerThread:
    return make_server(api_key=TEST_API_KEY)


def test_bad_key_is_refused_at_the_handshake_with_401(keyed_server: ServerThread) -> None:
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        RawClient(keyed_server.url, key="sk-wrong")
    assert refused.value.status_code == 401
    body = json.loads(refused.value.resp_body or b"{}")
    assert body["code"] == "InvalidApiKey"
    assert body["message"] == "Invalid API-key provided."
    assert body["request_id"]
    assert TEST_API_KEY not in str(body)


def test_missing_key_is_refused(keyed_server: ServerThread) -> None:
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(keyed_server.url, timeout=5)
    assert refused.value.status_code == 401


def test_right_key_is_accepted_with_any_scheme_case(keyed_server: ServerThread) -> None:
    ws = websocket.create_connection(
        keyed_server.url, header=[f"Authorization: bearer {TEST_API_KEY}"], timeout=5
    )
    ws.close()
    with RawClient(keyed_server.url, key=TEST_API_KEY) as client:
        assert isinstance(client.speak("Hi.")[-1], TaskFinished)


def test_no_configured_key_accepts_any_key(tone_server: ServerThread) -> None:
    with RawClient(tone_server.url, key="sk-anything") as client:
        assert isinstance(client.speak("Hi.")[-1], TaskFinished)


@pytest.mark.parametrize(
    ("model", "voice"),
    [
        ("cosyvoice-v2", "no_such_voice"),
        ("cosyvoice-v1", "longxiaochun_v2"),  # a v2 voice on the v1 model
        ("cosyvoice-v2", "longxiaochun"),  # a v1 voice on the v2 model
    ],
)
def test_unknown_voice_fails_like_the_service(
    tone_server: ServerThread, model: str, voice: str
) -> None:
    with RawClient(tone_server.url) as client:
        client.run_task(voice=voice, model=model)
        failed = failure(client)
        assert (failed.code, failed.message) == (
            "InvalidParameter",
            "[tts:]Engine return error code: 418",
        )
        assert failed.task_id == client.task_id
        assert_closed(client)  # the service closes the connection after task-failed


def test_v1_voice_on_v1_model_works(tone_server: ServerThread) -> None:
    with RawClient(tone_server.url) as client:
        assert isinstance(
            client.speak("好。", voice="longxiaochun", model="cosyvoice-v1")[-1], TaskFinished
        )


def test_run_task_without_input_fails(tone_server: ServerThread) -> None:
    with RawClient(tone_server.url) as client:
        client.send_json(
            {
                "header": {"action": "run-task", "task_id": "a" * 32, "streaming": "duplex"},
                "payload": {"model": "cosyvoice-v2", "parameters": {"voice": "longxiaochun_v2"}},
            }
        )
        assert failure(client).message == "task can not be null"


def test_text_over_the_per_message_limit_fails(tone_server: ServerThread) -> None:
    with RawClient(tone_server.url) as client:
        client.run_task()
        client.recv()
        client.send_text("中" * 1001)  # 2,002 billed characters > 2,000
        failed = failure(client)
    assert failed.code == "InvalidParameter" and "2000" in failed.message.replace(",", "")


def test_text_at_the_per_message_limit_is_accepted(tone_server: ServerThread) -> None:
    with RawClient(tone_server.url) as client:
        assert isinstance(client.speak("中" * 1000)[-1], TaskFinished)


def test_total_text_limit_per_task(make_server: Callable[..., ServerThread]) -> None:
    server = make_server(limits=ServerLimits(max_task_characters=30))
    with RawClient(server.url) as client:
        client.run_task()
        client.recv()
        client.send_text("a" * 20)
        client.send_text("b" * 20)
        failed = failure(client)
    assert failed.code == "InvalidParameter" and "total" in failed.message.lower()


def test_empty_text_fails(tone_server: ServerThread) -> None:
    with RawClient(tone_server.url) as client:
        client.run_task()
        client.recv()
        client.send_text("")
        assert failure(client).message == "Please ensure input text is valid."


def test_idle_timer_fails_the_task_with_the_service_message(
    make_server: Callable[..., ServerThread],
) -> None:
    server = make_server(limits=ServerLimits(idle_timeout=IDLE))
    with RawClient(server.url) as client:
        client.run_task()
        assert isinstance(client.recv(), TaskStarted)
        client.send_text("Some text, then silence")
        failed = failure(client)
        assert (failed.code, failed.message) == (
            "InvalidParameter",
            "request timeout after 23 seconds.",
        )
        assert_closed(client)


def test_text_keeps_the_idle_timer_from_firing(make_server: Callable[..., ServerThread]) -> None:
    server = make_server(limits=ServerLimits(idle_timeout=IDLE))
    with RawClient(server.url) as client:
        client.run_task()
        client.recv()
        for _ in range(6):  # 6 * IDLE/3 = twice the timer, never IDLE without text
            client.send_text("tick ")
            time.sleep(IDLE / 3)
        client.finish()
        assert isinstance(client.until_end()[-1], TaskFinished)


def test_idle_connection_is_closed(make_server: Callable[..., ServerThread]) -> None:
    server = make_server(limits=ServerLimits(connection_idle_timeout=IDLE))
    with RawClient(server.url) as client:
        assert isinstance(client.speak("One task.")[-1], TaskFinished)
        assert_closed(client)  # nothing sent for IDLE seconds after the task ended


@pytest.mark.slow
def test_real_23_second_idle_timer(tone_server: ServerThread) -> None:
    with RawClient(tone_server.url, timeout=40) as client:
        client.run_task()
        client.recv()
        started = time.monotonic()
        failed = failure(client)
        waited = time.monotonic() - started
    assert failed.message == "request timeout after 23 seconds."
    assert 20 < waited < 40  # the default timer is the service's, about 23 s
