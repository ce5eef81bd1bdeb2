"""Never lose a word: idle rollover, size rollover, dropped connections, failed tasks.

Every test runs the real local server (tone engine: deterministic audio per sentence) and checks
the two invariants: the text the server synthesized equals the input exactly (no loss, no
duplicate), and the audio delivered equals the audio of a fault-free run byte for byte (nothing
repeated, nothing missing).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest

from voicebridge.audio import CallbackSink
from voicebridge.bridge import TurnMetrics, VoiceBridge
from voicebridge.errors import AuthenticationError, TaskFailedError
from voicebridge.server import ServerThread
from voicebridge.server.faults import FaultPlan, FaultPoint, Trigger
from voicebridge.server.service import ServerLimits
from voicebridge.session import SessionSettings

PARAGRAPHS = (
    "The bridge reads tokens as the model writes them. It cuts them into fragments at natural "
    "boundaries, and it sends each fragment to the speech service at once. "
    "Audio comes back while the model is still thinking about the next sentence! "
    "Nothing waits in the receive callback; a playback thread does the slow work. "
    "语音合成服务会把文本切成句子。每个句子的音频都会立刻返回。"
    "When the network breaks, the unspoken text is sent again on a new task. "
    "Words that were already heard are never repeated? That is the promise."
)

FAST = SessionSettings(
    idle_flush_after=0.1, rollover_after=0.4, backoff_initial=0.01, backoff_max=0.05,
    probe_after=0.5, stall_timeout=1.0, progress_timeout=10.0,
)  # fmt: skip
# For byte-exact audio comparisons: no idle flush or rollover may cut a sentence differently
# from the fault-free run, however slow a loaded machine makes the token feed.
NO_IDLE = replace(FAST, idle_flush_after=15.0, rollover_after=20.0, stall_timeout=3.0)


def tokens(text: str, seed: int) -> list[str]:
    """Split ``text`` into tokens of 1-6 characters, reproducibly."""
    rng = random.Random(seed)
    out, i = [], 0
    while i < len(text):
        step = rng.randint(1, 6)
        out.append(text[i : i + step])
        i += step
    return out


def speak(
    url: str, source: object, settings: SessionSettings = FAST, **kwargs: object
) -> tuple[TurnMetrics, bytes]:
    audio = bytearray()
    sink = CallbackSink(audio.extend)
    with VoiceBridge(url=url, sinks=[sink], settings=settings, **kwargs) as bridge:  # type: ignore[arg-type]
        metrics = bridge.speak(source)
    return metrics, bytes(audio)


def spoken(server: ServerThread) -> str:
    return "".join(t.text for t in server.transcripts)


@pytest.fixture(scope="module")
def baseline_audio() -> bytes:
    with ServerThread(engine="tone") as server:
        _, audio = speak(server.url, tokens(PARAGRAPHS, 0), settings=NO_IDLE)
        assert spoken(server) == PARAGRAPHS
    return audio


def paused(pieces: list[str], pauses: dict[int, float]) -> Iterator[str]:
    """The LLM stops for ``pauses[i]`` seconds before piece ``i`` (a tool call, a slow network)."""
    for i, piece in enumerate(pieces):
        if i in pauses:
            time.sleep(pauses[i])
        yield piece


def test_pauses_longer_than_the_idle_timer_lose_nothing(
    make_server: Callable[..., ServerThread], baseline_audio: bytes
) -> None:
    server = make_server(limits=ServerLimits(idle_timeout=1.0))
    pieces = tokens(PARAGRAPHS, 0)
    rng = random.Random(7)
    pauses = {i: 1.6 for i in rng.sample(range(1, len(pieces)), 3)}
    metrics, audio = speak(server.url, paused(pieces, pauses))
    assert spoken(server) == PARAGRAPHS
    assert metrics.reconnects == 0, "the idle timer must never fire"
    assert metrics.rollovers >= 3 and len(metrics.task_ids) >= 4
    # A pause can cut a sentence in two (idle flush), so the tone segments differ; the length of
    # tone audio is proportional to the billed text, up to one sample of rounding per segment.
    assert abs(len(audio) - len(baseline_audio)) <= 2 * 2 * len(metrics.task_ids) * 20
    assert len(server.transcripts) == 1, "rollover reuses the connection"


def fault_plan(seed: int) -> FaultPlan:
    rng = random.Random(seed)
    kind = rng.choice(("drop-audio", "drop-sentence", "fail-sentence", "fail-audio", "fail-text"))
    connections = frozenset(rng.sample(range(1, 4), rng.randint(1, 2)))
    if kind == "drop-audio":
        return FaultPlan(
            connections=connections, drop_at=Trigger(FaultPoint.AUDIO, rng.randint(1, 40))
        )
    if kind == "drop-sentence":
        trigger = Trigger(FaultPoint.SENTENCE_END, rng.randint(1, 8))
        return FaultPlan(connections=connections, drop_at=trigger)
    point = {"fail-sentence": FaultPoint.SENTENCE_END, "fail-audio": FaultPoint.AUDIO}.get(
        kind, FaultPoint.TEXT
    )
    count = rng.randint(1, 40 if point is FaultPoint.AUDIO else 8)
    return FaultPlan(connections=connections, fail_at=Trigger(point, count))


@pytest.mark.parametrize("seed", range(100))
def test_random_drops_and_failures_speak_every_word_exactly_once(
    seed: int, make_server: Callable[..., ServerThread], baseline_audio: bytes
) -> None:
    before = set(threading.enumerate())
    server = make_server(faults=fault_plan(seed))
    metrics, audio = speak(server.url, tokens(PARAGRAPHS, 0), settings=NO_IDLE)
    assert spoken(server) == PARAGRAPHS
    assert audio == baseline_audio, f"{len(audio)} bytes delivered, {len(baseline_audio)} expected"
    server.stop()
    assert set(threading.enumerate()) <= before
    assert metrics.billed_characters >= len(PARAGRAPHS)


def test_a_server_that_stops_answering_is_replaced(
    make_server: Callable[..., ServerThread], baseline_audio: bytes
) -> None:
    plan = FaultPlan(connections=frozenset({1}), stop_at=Trigger(FaultPoint.SENTENCE_END, 2))
    server = make_server(faults=plan)
    metrics, audio = speak(server.url, tokens(PARAGRAPHS, 0), settings=NO_IDLE)
    assert spoken(server) == PARAGRAPHS
    assert audio == baseline_audio
    assert metrics.reconnects >= 1


def test_refused_handshakes_are_retried_with_backoff(
    make_server: Callable[..., ServerThread],
) -> None:
    server = make_server(faults=FaultPlan(refuse_handshakes=2, refuse_status=503))
    speak(server.url, ["Third time ", "lucky."])
    assert spoken(server) == "Third time lucky."


def test_long_answers_roll_over_before_the_task_limit(
    make_server: Callable[..., ServerThread],
) -> None:
    limits = ServerLimits(max_task_characters=300)
    server = make_server(limits=limits)
    settings = SessionSettings(max_task_characters=250, rollover_after=5.0)
    text = PARAGRAPHS * 2
    metrics, _ = speak(server.url, tokens(text, 1), settings=settings)
    assert spoken(server) == text
    assert len(metrics.task_ids) >= 3 and metrics.reconnects == 0


def test_permanent_failures_are_raised_at_once(make_server: Callable[..., ServerThread]) -> None:
    server = make_server(api_key="the-right-key")
    started = time.monotonic()
    with pytest.raises(AuthenticationError):
        speak(server.url, ["Hello."], api_key="a-wrong-key")
    open_server = make_server()
    with pytest.raises(TaskFailedError, match="418"):
        speak(open_server.url, ["Hello."], voice="no_such_voice")
    assert time.monotonic() - started < 10, "permanent errors must not be retried"


@pytest.mark.slow
def test_a_30_second_pause_with_the_real_23_second_timer(
    make_server: Callable[..., ServerThread],
) -> None:
    server = make_server()  # the service's own limits: 23 s idle timer
    text = "Before the long tool call. After thirty seconds, the answer goes on."
    pieces = ["Before the long", " tool call.", " After thirty seconds,", " the answer goes on."]
    metrics, _ = speak(server.url, paused(pieces, {2: 30.0}), settings=SessionSettings())
    assert spoken(server) == text
    assert metrics.reconnects == 0 and len(metrics.task_ids) == 2


def test_the_connection_is_replaced_after_the_servers_idle_close(
    make_server: Callable[..., ServerThread],
) -> None:
    server = make_server(limits=ServerLimits(connection_idle_timeout=0.3))
    audio = bytearray()
    with VoiceBridge(url=server.url, sinks=[CallbackSink(audio.extend)], settings=FAST) as bridge:
        first = bridge.speak("Before the quiet spell.")
        deadline = time.monotonic() + 10
        while bridge.connected:  # the server closes the idle connection
            assert time.monotonic() < deadline
            time.sleep(0.05)
        second = bridge.speak("After it.")
    assert first.audio_seconds > 0 and second.audio_seconds > 0
    assert [t.text for t in server.transcripts] == ["Before the quiet spell.", "After it."]
    assert second.reconnects == 0, "a closed idle connection is replaced, not recovered"


def test_a_preconnected_task_survives_a_slow_first_token(
    make_server: Callable[..., ServerThread],
) -> None:
    server = make_server(limits=ServerLimits(idle_timeout=1.0))
    with VoiceBridge(url=server.url, sinks=[CallbackSink(lambda _: None)], settings=FAST) as bridge:
        bridge.preconnect(start_task=True)
        deadline = time.monotonic() + 10
        while not bridge.connected:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        metrics = bridge.speak(paused(["The model thought ", "for a long time."], {0: 1.6}))
    assert spoken(server) == "The model thought for a long time."
    assert metrics.reconnects == 0


def test_a_replay_that_fails_before_it_begins_still_skips_what_was_heard(
    make_server: Callable[..., ServerThread],
) -> None:
    """Two failures in a row, the second before the replay's first sentence-begin: the audio of
    the half-spoken sentence must still be trimmed (found by the server's author, 4410+ bytes
    repeated before the fix)."""
    first = "This first sentence is long enough to make many frames of audio. "
    with ServerThread(engine="tone") as clean:
        _, baseline = speak(clean.url, [first, "Second one."])
    plan = FaultPlan(
        connections=frozenset({1, 2}), fail_at=Trigger(FaultPoint.TEXT, 2), delay_audio=0.05
    )
    server = make_server(faults=plan)
    metrics, audio = speak(server.url, paused([first, "Second one."], {1: 0.25}))
    assert spoken(server) == first + "Second one."
    assert metrics.reconnects >= 2
    assert audio == baseline
