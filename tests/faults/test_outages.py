"""Outages survived with every word heard exactly once (issue 10): a server process killed with
SIGKILL and started again 6 s later, a rolling deploy that refuses connections for a few
seconds, network stalls, connections reset at any byte, and barge-in during a reconnect.

The restart and deploy tests keep :class:`SessionSettings`' real retry budget (its defaults are
the point); the others shorten the timers.
"""

from __future__ import annotations

import threading
import time

import pytest

from tests.fault_tools.listening import heard_words
from tests.fault_tools.proxy import Cut, FaultProxy, Freeze, Hold, ServerFrame, Verdict
from tests.fault_tools.scenarios import (
    ANSWER,
    QUICK,
    SAMPLE_RATE,
    reset_at_random_bytes,
    speak,
    speak_through_outage,
    tokens,
)
from tests.fault_tools.serve_process import ServeProcess
from voicebridge import VoiceBridge
from voicebridge.audio import NullSink
from voicebridge.server import ServerThread

FIRST = "The server is about to crash. It spoke this much first, and then"
SECOND = " it came back. Everything after the crash is spoken once, and nothing is lost."


def test_a_server_killed_and_restarted_6_s_later_is_survived_with_the_default_budget() -> None:
    with ServeProcess(engine="text") as server:

        def crash_and_restart() -> None:
            server.kill()  # SIGKILL: no close frame, no task-failed
            time.sleep(6.0)
            server.start()  # same port; listening again once the interpreter is up

        outcome = speak_through_outage(server.url, crash_and_restart, FIRST, SECOND)
        assert server.starts == 2
    assert outcome.metrics is not None, outcome.error
    assert outcome.heard == FIRST + SECOND, heard_words(FIRST + SECOND, outcome.heard)
    assert outcome.metrics.text == FIRST + SECOND
    assert outcome.metrics.reconnects >= 3, "refused attempts during the outage are retries"
    assert outcome.seconds > 6


def test_a_rolling_deploy_that_refuses_connections_for_4_s_is_survived(
    text_server: ServerThread,
) -> None:
    """The pod goes away (every connection reset), the load balancer answers 503 for 4 s, then
    a new pod takes the connections; the default retry budget waits it out."""
    with FaultProxy.to_url(text_server.url) as proxy:

        def deploy() -> None:
            proxy.refuse_for(4.0)
            proxy.reset_all()

        outcome = speak_through_outage(proxy.url, deploy, FIRST, SECOND)
        refused = proxy.refused
    assert outcome.metrics is not None, outcome.error
    assert outcome.heard == FIRST + SECOND, heard_words(FIRST + SECOND, outcome.heard)
    assert outcome.metrics.text == FIRST + SECOND
    assert refused >= 2, "the 503s were really met"


def test_a_stall_shorter_than_the_stall_timeout_is_waited_out(text_server: ServerThread) -> None:
    def stall(frame: ServerFrame) -> Verdict:
        return Hold(0.8) if frame.connection == 1 and frame.index == 10 else None

    with FaultProxy.to_url(text_server.url, stall) as proxy:
        outcome = speak(proxy.url, tokens(ANSWER))
    assert outcome.metrics is not None and outcome.heard == ANSWER
    assert outcome.metrics.reconnects == 0


def test_a_connection_that_goes_silent_is_replaced_and_replayed(text_server: ServerThread) -> None:
    def freeze(frame: ServerFrame) -> Verdict:
        return Freeze() if frame.connection == 1 and frame.index == 10 else None

    with FaultProxy.to_url(text_server.url, freeze) as proxy:
        outcome = speak(proxy.url, tokens(ANSWER))
    assert outcome.metrics is not None, outcome.error
    assert outcome.heard == ANSWER, heard_words(ANSWER, outcome.heard)
    assert outcome.metrics.reconnects == 1


@pytest.mark.parametrize("seed", range(12))
def test_connections_reset_at_any_byte_lose_and_repeat_nothing(
    seed: int, text_server: ServerThread
) -> None:
    with FaultProxy.to_url(text_server.url, reset_at_random_bytes(seed)) as proxy:
        outcome = speak(proxy.url, tokens(ANSWER, 3 + seed % 5))
    assert outcome.metrics is not None, outcome.error
    assert outcome.heard == ANSWER, heard_words(ANSWER, outcome.heard)
    assert outcome.metrics.text == ANSWER
    assert outcome.metrics.reconnects >= 1


def test_interrupt_during_a_slow_reconnect_returns_at_once_and_leaves_no_connection(
    text_server: ServerThread,
) -> None:
    def drop_once(frame: ServerFrame) -> Verdict:
        return Cut(len(frame.raw)) if frame.connection == 1 and frame.binary_index == 3 else None

    with FaultProxy.to_url(text_server.url, drop_once) as proxy:
        proxy.slow_handshakes[2] = 1.5  # the reconnect's handshake takes 1.5 s
        with VoiceBridge(
            url=proxy.url, sinks=[NullSink()], settings=QUICK, sample_rate=SAMPLE_RATE
        ) as bridge:
            returned: list[float] = []

            def barge_in() -> None:
                deadline = time.monotonic() + 20
                while proxy.connections < 2 and time.monotonic() < deadline:
                    time.sleep(0.005)
                time.sleep(0.2)  # inside the slow handshake
                started = time.monotonic()
                bridge.interrupt()
                returned.append(time.monotonic() - started)

            user = threading.Thread(target=barge_in)
            user.start()
            started = time.monotonic()
            interrupted = bridge.speak(tokens(ANSWER))
            back = time.monotonic() - started
            user.join(10)
            assert interrupted.interrupted and returned[0] < 1.0
            assert back < 1.5, "speak() returned before the slow handshake ended"
            deadline = time.monotonic() + 10
            while proxy.live:  # the handshake ends; that connection is closed, not kept
                assert time.monotonic() < deadline, "the abandoned connection stays open"
                time.sleep(0.01)
            assert bridge.speak("The next turn works.").text == "The next turn works."
            assert proxy.live == 1
