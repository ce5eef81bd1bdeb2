"""Fault scenarios shared by ``tests/faults`` and ``benchmarks/fault_matrix.py``: speak through a
real bridge and see what a listener heard; break the service in the middle of a turn; the
proxy rules that attack a connection; and the places a secret must never show up.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

from voicebridge import VoiceBridge
from voicebridge.audio import Sink
from voicebridge.client import AudioFormat, SpeechSynthesizer
from voicebridge.config import ApiKey
from voicebridge.errors import VoiceBridgeError
from voicebridge.session import SessionSettings
from voicebridge.turn import TurnMetrics

from .listening import Recorder, heard_words
from .proxy import OPCODE_TEXT, Cut, Raw, Replace, ServerFrame, Verdict

__all__ = [
    "ANSWER",
    "QUICK",
    "SAMPLE_RATE",
    "Outcome",
    "after_first_audio",
    "after_task_started",
    "corrupt_text_frame",
    "damage_frame_header",
    "key_clients",
    "long_answer",
    "reset_at_random_bytes",
    "secret_leaks",
    "speak",
    "speak_through_outage",
    "tokens",
]

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


def long_answer(minutes: float, seconds_per_character: float = 0.05) -> str:
    """An answer whose text engine audio lasts at least ``minutes`` (0.05 s per character)."""
    sentences, n = [], 0
    while sum(map(len, sentences)) * seconds_per_character < minutes * 60:
        n += 1
        sentences.append(f"Sentence {n} of the long answer, and it still goes on. ")
    return "".join(sentences).rstrip() + " The end."


def tokens(text: str, size: int = 5) -> list[str]:
    """``text`` in tokens of ``size`` characters (an LLM's stream)."""
    return [text[i : i + size] for i in range(0, len(text), size)]


@dataclass
class Outcome:
    """A turn as its caller and its listener saw it: the metrics or the error, and the text a
    listener heard (the first sink's audio, decoded)."""

    metrics: TurnMetrics | None
    error: VoiceBridgeError | None
    heard: str
    seconds: float

    def count(self, expected: str) -> tuple[int, int]:
        """(words lost, words repeated) against ``expected``, the text owed. Words the error's
        ``unspoken_text`` hands back to the caller are not lost: they were reported."""
        repeated = heard_words(expected, self.heard).repeated
        unspoken = self.error.unspoken_text if self.error is not None else ""
        if not expected.endswith(unspoken):  # what it hands back is not what was owed
            return len(expected.split()), repeated
        owed = expected[: len(expected) - len(unspoken)]
        return heard_words(owed, self.heard[: len(owed)]).lost, repeated


def speak(
    url: str,
    source: object,
    settings: SessionSettings = QUICK,
    sinks: Sequence[Sink] | None = None,
    **options: object,
) -> Outcome:
    """Speak ``source`` through a new bridge at ``url`` at :data:`SAMPLE_RATE`; what the first
    sink heard (a :class:`Recorder` unless ``sinks`` says otherwise; it must have a ``text``
    property)."""
    sinks = list(sinks) if sinks is not None else [Recorder()]
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


def speak_through_outage(
    url: str,
    outage: Callable[[], None],
    first: str,
    second: str,
    settings: SessionSettings | None = None,
) -> Outcome:
    """Speak ``first + second``; once some of ``first`` was acknowledged, ``outage()`` runs on
    another thread (it breaks the service and returns once it is back, or will be), and the
    source writes ``second`` while the service is away. ``settings``: the defaults unless
    given (the retry budget is the point)."""
    ready, begun = threading.Event(), threading.Event()
    bridges: list[VoiceBridge] = []

    def source() -> Iterator[str]:
        yield from tokens(first)
        ready.set()
        if not begun.wait(30):
            raise TimeoutError("the outage never began")
        yield from tokens(second)

    def chaos() -> None:
        if not ready.wait(30) or not bridges:
            return
        deadline = time.monotonic() + 20
        while (progress := bridges[0].progress) is None or not progress.characters_spoken:
            if time.monotonic() > deadline:
                return  # nothing was spoken: the source times out and says so
            time.sleep(0.01)
        breaker = threading.Thread(target=outage, name="outage")
        breaker.start()
        begun.set()  # the outage has begun (outage() may still be waiting to end it)
        breaker.join(120)

    chaos_thread = threading.Thread(target=chaos, name="chaos")
    recorder = Recorder()
    started = time.monotonic()
    metrics: TurnMetrics | None = None
    error: VoiceBridgeError | None = None
    try:
        with VoiceBridge(
            url=url,
            sinks=[recorder],
            settings=settings or SessionSettings(),
            sample_rate=SAMPLE_RATE,
        ) as bridge:
            bridges.append(bridge)
            chaos_thread.start()
            try:
                metrics = bridge.speak(source())
            except VoiceBridgeError as exc:
                error = exc
    finally:
        ready.set()
        if chaos_thread.is_alive() or chaos_thread.ident is not None:
            chaos_thread.join(150)
    return Outcome(metrics, error, recorder.text, time.monotonic() - started)


# ---------------------------------------------------------------------- proxy rules


def after_task_started(frame: ServerFrame) -> Verdict:
    """Every connection: task-started arrives whole, then the connection is reset."""
    return Cut(len(frame.raw)) if "task-started" in frame.text else None


def after_first_audio(frame: ServerFrame) -> Verdict:
    """Every connection: the first audio frame arrives whole, then the connection is reset."""
    return Cut(len(frame.raw)) if frame.binary_index == 0 and not frame.text else None


def reset_at_random_bytes(seed: int, connections: int = 2) -> Callable[[ServerFrame], Verdict]:
    """The first ``connections`` connections are reset inside one of their first 30 frames, at
    a random byte of it (its header included)."""
    rng = random.Random(seed)
    cuts = {n: (rng.randint(0, 30), rng.randint(0, 1700)) for n in range(1, connections + 1)}

    def rule(frame: ServerFrame) -> Verdict:
        index, keep = cuts.get(frame.connection, (-1, 0))
        return Cut(keep % (len(frame.raw) + 1)) if frame.index == index else None

    return rule


def corrupt_text_frame(number: int, payload: bytes) -> Callable[[ServerFrame], Verdict]:
    """On the first connection only, the ``number``-th text frame gets ``payload`` instead."""

    def rule(frame: ServerFrame) -> Verdict:
        hit = frame.connection == 1 and frame.opcode == OPCODE_TEXT
        return Replace(payload) if hit and frame.text_index == number else None

    return rule


def damage_frame_header(number: int) -> Callable[[ServerFrame], Verdict]:
    """On the first connection, the ``number``-th frame's first byte gets reserved bits set."""

    def rule(frame: ServerFrame) -> Verdict:
        if frame.connection == 1 and frame.index == number:
            return Raw(bytes([frame.raw[0] | 0x70]) + frame.raw[1:])
        return None

    return rule


# ---------------------------------------------------------------------- secrets


def key_clients(key: str) -> dict[str, Callable[[str], None]]:
    """Each client that sends a key, speaking one sentence at a URL with ``key`` (one retry,
    1 s to connect): VoiceBridge and the SDK-shaped SpeechSynthesizer. The clients hold the key
    as an :class:`ApiKey`, so their own frames show no key in a traceback."""
    secret = ApiKey(key)

    def bridge(url: str) -> None:
        settings = replace(QUICK, max_retries=1)
        with VoiceBridge(
            url=url, api_key=secret, sinks=[Recorder()], settings=settings, connect_timeout=1.0
        ) as voice:
            voice.speak("Hello there.")

    def sdk(url: str) -> None:
        SpeechSynthesizer(
            "cosyvoice-v2", "longxiaochun_v2", AudioFormat.PCM_22050HZ_MONO_16BIT, url=url,
            api_key=secret, connect_timeout=1.0, start_timeout=2.0,
        ).call("Hello there.")  # fmt: skip

    return {"VoiceBridge": bridge, "SpeechSynthesizer": sdk}


def secret_leaks(
    secret: str, error: BaseException, records: Sequence[logging.LogRecord]
) -> list[str]:
    """Where ``secret`` shows: in the error's text or repr, in its traceback rendered with every
    frame's locals (``capture_locals``, as Sentry, rich or ``pytest --showlocals`` show them),
    or in the log records (formatted with their tracebacks). Records of ``websockets.*`` are
    left out: that is an in-process local server's library logging what it received."""
    places = []
    if secret in str(error) or secret in repr(error):
        places.append("error text")
    rendered = traceback.TracebackException.from_exception(error, capture_locals=True)
    if secret in "".join(rendered.format()):
        places.append("traceback locals")
    formatter = logging.Formatter()
    for record in records:
        if not record.name.startswith("websockets.") and secret in formatter.format(record):
            places.append(f"log {record.name}")
    return places
