"""Shared parts of the fault tests: the answer spoken, short timers, and one helper that speaks
through a real bridge and returns what a listener heard (decoded from the ``text`` engine)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pytest

from tests.fault_tools.listening import Recorder
from voicebridge import VoiceBridge
from voicebridge.audio import Sink
from voicebridge.errors import VoiceBridgeError
from voicebridge.server import ServerThread
from voicebridge.session import SessionSettings
from voicebridge.turn import TurnMetrics

ANSWER = (
    "The bridge reads tokens as the model writes them. It cuts them into fragments at natural "
    "boundaries, and it sends each fragment to the speech service at once. Audio comes back "
    "while the model is still thinking about the next sentence. When the network breaks, the "
    "unspoken text is sent again on a new task. Words that were already heard are never "
    "repeated, and none are lost."
)

SAMPLE_RATE = 8000  # the text engine's audio: 800 bytes per character at 8 kHz

QUICK = SessionSettings(
    backoff_initial=0.01, backoff_max=0.05, probe_after=0.5, stall_timeout=1.5,
    start_timeout=3.0, progress_timeout=5.0,
)  # fmt: skip
"""Recovery in tens of milliseconds, stalls found in about 2 s; the retry budget (10 attempts,
30 s) is the default one."""


@dataclass
class Outcome:
    """A turn as its caller and its listener saw it: the metrics or the error, and the text a
    listener heard (the sink's audio, decoded)."""

    metrics: TurnMetrics | None
    error: VoiceBridgeError | None
    heard: str
    seconds: float


def tokens(text: str, size: int = 5) -> list[str]:
    """``text`` in tokens of ``size`` characters (an LLM's stream)."""
    return [text[i : i + size] for i in range(0, len(text), size)]


def speak(
    url: str,
    source: object,
    settings: SessionSettings = QUICK,
    sinks: Sequence[Sink] | None = None,
    **options: object,
) -> Outcome:
    """Speak ``source`` through a new bridge at ``url``; what the first sink heard (a
    :class:`Recorder` unless ``sinks`` says otherwise; it must have a ``text`` property)."""
    recorder = Recorder()
    sinks = list(sinks) if sinks is not None else [recorder]
    started = time.monotonic()
    metrics: TurnMetrics | None = None
    error: VoiceBridgeError | None = None
    with VoiceBridge(
        url=url,
        sinks=sinks,
        settings=settings,
        sample_rate=SAMPLE_RATE,
        **options,  # type: ignore[arg-type]
    ) as bridge:
        try:
            metrics = bridge.speak(source)
        except VoiceBridgeError as exc:
            error = exc
    heard = sinks[0].text  # type: ignore[attr-defined]
    return Outcome(metrics, error, heard, time.monotonic() - started)


@pytest.fixture
def text_server(make_server: Callable[..., ServerThread]) -> ServerThread:
    """A local server whose audio encodes its text."""
    return make_server(engine="text")
