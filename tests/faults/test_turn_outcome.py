"""A turn's outcome is true (issue 10): every character acknowledged, or an error that carries
the unspoken text, within the turn's retry budget, in bounded time and connections.

The faults come from outside the bridge: a TCP proxy that resets connections at chosen frames and
corrupts frames, and the local server's own fault plan. Words lost and repeated are counted from
the audio a sink received (the ``text`` engine's audio decodes to the text heard).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest

from tests.fault_tools.listening import heard_words
from tests.fault_tools.proxy import (
    OPCODE_TEXT,
    FaultProxy,
    HttpResponder,
    Replace,
    ServerFrame,
    Verdict,
    accept_then_close,
)
from tests.fault_tools.scenarios import (
    ANSWER,
    QUICK,
    after_first_audio,
    after_task_started,
    corrupt_text_frame,
    damage_frame_header,
    speak,
    tokens,
)
from voicebridge import VoiceBridge
from voicebridge.audio import NullSink
from voicebridge.errors import ConnectionLost, RemoteProtocolError, TaskFailedError
from voicebridge.server import FaultPlan, FaultPoint, ServerThread, Trigger


@pytest.mark.parametrize("rule", [after_task_started, after_first_audio])
def test_a_task_that_always_dies_at_the_same_point_ends_in_an_error_within_the_budget(
    rule: Callable[[ServerFrame], Verdict], text_server: ServerThread
) -> None:
    before = set(threading.enumerate())
    with FaultProxy.to_url(text_server.url, rule) as proxy:
        outcome = speak(proxy.url, tokens(ANSWER))
        connections = proxy.connections
    assert isinstance(outcome.error, ConnectionLost), outcome
    assert outcome.error.unspoken_text == ANSWER, "nothing was acknowledged: all of it is owed"
    assert f"{len(ANSWER)} characters not spoken" in str(outcome.error)
    assert connections == QUICK.max_retries + 1, "one attempt and max_retries retries, no more"
    assert ANSWER.startswith(outcome.heard), "heard: a prefix, never a repeat"
    assert heard_words(ANSWER, outcome.heard).repeated == 0
    assert outcome.seconds < 15
    assert set(threading.enumerate()) <= before


def test_the_retry_window_bounds_a_turn_whose_attempts_are_many(
    text_server: ServerThread,
) -> None:
    settings = replace(QUICK, max_retries=1000, retry_window=2.0, backoff_max=0.2)
    with FaultProxy.to_url(text_server.url, after_first_audio) as proxy:
        outcome = speak(proxy.url, tokens(ANSWER), settings)
        connections = proxy.connections
    assert isinstance(outcome.error, ConnectionLost)
    assert outcome.error.unspoken_text == ANSWER
    assert outcome.seconds < 12, "the 2 s window, plus one connection's worth"
    assert 5 <= connections <= 25, "backoff: a few connections a second, never hundreds"


@pytest.mark.parametrize(
    "plan",
    [
        FaultPlan(drop_at=Trigger(FaultPoint.AUDIO, 1)),
        FaultPlan(fail_at=Trigger(FaultPoint.TEXT, 1)),  # InternalError: retryable
        FaultPlan(stop_at=Trigger(FaultPoint.TEXT, 1)),  # silent, socket open: stall
    ],
    ids=["abort-after-first-audio", "task-failed-after-first-text", "silent-after-first-text"],
)
def test_a_server_that_fails_every_task_never_gets_a_successful_turn(
    plan: FaultPlan, make_server: Callable[..., ServerThread]
) -> None:
    server = make_server(engine="text", faults=plan)
    settings = replace(QUICK, max_retries=3, progress_timeout=1.0)  # pings are answered
    outcome = speak(server.url, "Eight words that the server will never speak.", settings)
    assert isinstance(outcome.error, ConnectionLost | TaskFailedError | TimeoutError), outcome
    assert outcome.error.unspoken_text == "Eight words that the server will never speak."
    assert len(server.transcripts) == settings.max_retries + 1
    assert outcome.seconds < 30


def test_progress_renews_the_budget_a_flaky_server_still_speaks_every_word(
    make_server: Callable[..., ServerThread],
) -> None:
    """Every connection dies right after its first sentence-end: ten sentences need ten
    connections, far more than ``max_retries`` (2), and each one spoke something."""
    plan = FaultPlan(drop_at=Trigger(FaultPoint.SENTENCE_END, 1))
    server = make_server(engine="text", faults=plan)
    sentences = " ".join(f"Sentence number {n} is here." for n in range(10))
    outcome = speak(server.url, tokens(sentences), replace(QUICK, max_retries=2))
    assert outcome.error is None and outcome.metrics is not None
    assert outcome.heard == sentences
    assert outcome.metrics.text == sentences
    assert outcome.metrics.reconnects >= 5


@pytest.mark.parametrize(
    "rule",
    [
        corrupt_text_frame(6, b'{"header": {"event": "result-generated", "task_id": '),
        corrupt_text_frame(9, b'{"header":{"event":"result-gen\xff\xfe"}}'),
        corrupt_text_frame(12, json.dumps({"header": {"event": "no-such-event"}}).encode()),
        damage_frame_header(20),
    ],
    ids=["not-json", "not-utf8", "unknown-event", "bad-frame-header"],
)
def test_one_corrupted_frame_mid_turn_is_a_drop_replayed_exactly(
    rule: Callable[[ServerFrame], Verdict], text_server: ServerThread
) -> None:
    with FaultProxy.to_url(text_server.url, rule) as proxy:
        outcome = speak(proxy.url, tokens(ANSWER))
    assert outcome.error is None, outcome.error
    assert outcome.metrics is not None and outcome.metrics.reconnects == 1
    assert outcome.heard == ANSWER, heard_words(ANSWER, outcome.heard)
    assert outcome.metrics.text == ANSWER


def test_garbage_forever_ends_with_a_clear_error(text_server: ServerThread) -> None:
    def garbage(frame: ServerFrame) -> Verdict:
        return Replace(b"<html>502 Bad Gateway</html>") if frame.opcode == OPCODE_TEXT else None

    with FaultProxy.to_url(text_server.url, garbage) as proxy:
        outcome = speak(proxy.url, tokens(ANSWER), replace(QUICK, max_retries=4))
        connections = proxy.connections
    assert isinstance(outcome.error, RemoteProtocolError)
    assert "not JSON" in str(outcome.error) and "characters not spoken" in str(outcome.error)
    assert outcome.error.unspoken_text == ANSWER
    assert connections == 5
    assert outcome.heard == ""


def thinking(seconds: float, text: str) -> Iterator[str]:
    """An LLM that thinks for ``seconds`` before its first token."""
    time.sleep(seconds)
    yield text


def test_connections_closed_before_any_task_are_retried_within_the_budget() -> None:
    """A gateway that accepts every WebSocket and closes it at once, while the LLM still thinks:
    the bridge opens its connection at the turn's start, and every close must count against
    the turn's budget, with backoff, instead of reopening at once."""
    with HttpResponder(accept_then_close) as gateway:
        settings = replace(QUICK, max_retries=4, backoff_initial=0.5, backoff_max=1.0)
        outcome = speak(gateway.url, thinking(0.5, "Hello there."), settings)
        connections = len(gateway.requests)
    assert isinstance(outcome.error, ConnectionLost), outcome
    assert outcome.error.unspoken_text == "Hello there."
    assert connections <= 5, f"{connections} connections for a budget of 4 retries"


def test_a_preconnected_link_that_closes_is_not_reopened_in_a_loop() -> None:
    with HttpResponder(accept_then_close) as gateway:
        with VoiceBridge(url=gateway.url, sinks=[NullSink()], settings=QUICK) as bridge:
            bridge.preconnect()
            time.sleep(1.0)
        connections = len(gateway.requests)
    assert connections <= 2, f"{connections} connections opened for one preconnect()"
