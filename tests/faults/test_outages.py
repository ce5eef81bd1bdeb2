"""Outages survived with every word heard exactly once (issue 10): a ``voicebridge serve``
process killed with SIGKILL and started again 6 s later, a rolling deploy that refuses
connections for a few seconds, network stalls, and connections reset at any byte.

The restart and deploy tests keep :class:`SessionSettings`' real retry budget (its defaults are
the point); the others shorten the timers.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from tests.fault_tools.listening import Recorder, heard_words
from tests.fault_tools.proxy import Cut, FaultProxy, Freeze, Hold, ServerFrame, Verdict
from tests.fault_tools.serve_process import ServeProcess
from voicebridge import VoiceBridge
from voicebridge.server import ServerThread
from voicebridge.session import SessionSettings
from voicebridge.turn import TurnMetrics

from .conftest import ANSWER, speak, tokens

DEFAULTS = SessionSettings()
FIRST = "The server is about to crash. It spoke this much first, and then"
SECOND = " it came back. Everything after the crash is spoken once, and nothing is lost."


def interrupted_source(
    ready: threading.Event, resume: threading.Event, wait: float = 30.0
) -> Iterator[str]:
    """The LLM writes ``FIRST``, signals ``ready``, goes on with ``SECOND`` once ``resume`` is
    set (the outage has begun), so that the rest of the answer comes during the outage."""
    yield from tokens(FIRST)
    ready.set()
    assert resume.wait(wait), "the outage never began"
    yield from tokens(SECOND)


def speak_through_outage(url: str, outage: Callable[[], None]) -> tuple[TurnMetrics, str, float]:
    """Speak ``FIRST + SECOND`` with the default settings; once some of it was acknowledged,
    ``outage()`` runs on another thread (it breaks the service and returns when it is back, or
    will be) while the rest of the answer arrives. The metrics, the text heard, the seconds."""
    ready, begun = threading.Event(), threading.Event()
    bridges: list[VoiceBridge] = []

    def chaos() -> None:
        assert ready.wait(30)
        deadline = time.monotonic() + 20
        while (progress := bridges[0].progress) is None or not progress.characters_spoken:
            assert time.monotonic() < deadline, "nothing was spoken before the outage"
            time.sleep(0.01)
        outage_thread = threading.Thread(target=outage)
        outage_thread.start()
        begun.set()  # the outage has begun (outage() may still be sleeping)
        outage_thread.join(60)

    recorder = Recorder()
    breaker = threading.Thread(target=chaos)
    try:
        with VoiceBridge(url=url, sinks=[recorder], settings=DEFAULTS, sample_rate=8000) as bridge:
            bridges.append(bridge)
            breaker.start()
            started = time.monotonic()
            metrics = bridge.speak(interrupted_source(ready, begun))
            seconds = time.monotonic() - started
    finally:
        ready.set()
        breaker.join(60)
    return metrics, recorder.text, seconds


def test_a_server_killed_and_restarted_6_s_later_is_survived_with_the_default_budget() -> None:
    with ServeProcess(engine="text") as server:

        def crash_and_restart() -> None:
            server.kill()  # SIGKILL: no close frame, no task-failed
            time.sleep(6.0)
            server.start()  # same port; listening again once the interpreter is up

        metrics, heard, seconds = speak_through_outage(server.url, crash_and_restart)
        assert server.starts == 2
    assert heard == FIRST + SECOND, heard_words(FIRST + SECOND, heard)
    assert metrics.text == FIRST + SECOND
    assert metrics.reconnects >= 3, "refused attempts during the outage are retries too"
    assert seconds > 6


def test_a_rolling_deploy_that_refuses_connections_for_4_s_is_survived(
    text_server: ServerThread,
) -> None:
    """The pod goes away (every connection reset), the load balancer answers 503 for 4 s, then
    a new pod takes the connections; the default retry budget waits it out."""
    with FaultProxy.to_url(text_server.url) as proxy:

        def deploy() -> None:
            proxy.refuse_for(4.0)
            proxy.reset_all()

        metrics, heard, _ = speak_through_outage(proxy.url, deploy)
        refused = proxy.refused
    assert heard == FIRST + SECOND, heard_words(FIRST + SECOND, heard)
    assert metrics.text == FIRST + SECOND
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


def reset_at_random_bytes(seed: int) -> Callable[[ServerFrame], Verdict]:
    """Connections 1 and 2 are reset inside a random frame, at a random byte of it."""
    rng = random.Random(seed)
    cuts = {1: rng.randint(0, 30), 2: rng.randint(0, 30)}
    keep = {1: rng.randint(0, 1700), 2: rng.randint(0, 1700)}

    def rule(frame: ServerFrame) -> Verdict:
        if cuts.get(frame.connection) == frame.index:
            return Cut(keep[frame.connection] % (len(frame.raw) + 1))
        return None

    return rule


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
