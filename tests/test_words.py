"""Word timing end to end: the real local server's word events, through the bridge, onto the
turn's audio timeline; through faults and replays; and the options, checked before connecting."""

from __future__ import annotations

import asyncio
import io
import itertools
import random
import re
import threading
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from voicebridge.audio import CallbackSink, NullSink, PcmFileSink, WavFileSink
from voicebridge.bridge import VoiceBridge
from voicebridge.errors import ConfigurationError
from voicebridge.server import FaultPlan, ServerThread
from voicebridge.server.faults import FaultPoint, Trigger
from voicebridge.server.text_engine import decode_text_audio
from voicebridge.session import SessionSettings
from voicebridge.turn import AudioChunk, TurnMetrics, Word

ENGLISH = "Hello there. The weather in Paris is fine today, and tomorrow looks even better."
CHINESE = "床前明月光，疑是地上霜。"
LONG = " ".join(f"Sentence {i} says that the bridge keeps every word in order." for i in range(12))
FAST = SessionSettings(backoff_initial=0.02, backoff_max=0.1, probe_after=0.5, stall_timeout=2.0)


def letters(text: str) -> str:
    return re.sub(r"[\W_]", "", text)


def check_words(metrics: TurnMetrics) -> None:
    """Each word once, in order, where its offsets say, on a rising timeline."""
    words = metrics.words
    assert words, "no word timings"
    assert all(metrics.text[w.text_start : w.text_end] == w.text for w in words)
    assert [w.text_start for w in words] == sorted(w.text_start for w in words)
    assert all(a.start <= b.start and a.end <= b.end for a, b in itertools.pairwise(words))
    assert all(w.start <= w.end for w in words)
    assert words[-1].end <= metrics.audio_seconds + 1e-6, "no word ends after the audio"
    assert letters("".join(w.text for w in words)) == letters(metrics.text)


def test_english_words_line_up_with_the_speech(espeak_server: ServerThread, tmp_path: Path) -> None:
    out = tmp_path / "words.wav"
    heard: list[Word] = []
    threads: set[str] = set()

    def on_word(word: Word) -> None:
        heard.append(word)
        threads.add(threading.current_thread().name)

    with VoiceBridge(url=espeak_server.url, sinks=[WavFileSink(out)], on_word=on_word) as bridge:
        metrics = bridge.speak(iter(re.findall(r"\S+\s*", ENGLISH)))
    check_words(metrics)
    assert [w.text for w in metrics.words][:2] == ["Hello", "there"]
    assert heard == list(metrics.words), "on_word: every word once, in order"
    assert [name.startswith("voicebridge-audio") for name in threads] == [True], "dispatcher"
    with wave.open(str(out), "rb") as wav:
        rate = wav.getframerate()
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(float)
    loudness = np.sqrt(np.mean(samples**2))
    for word in metrics.words:
        first = int(word.start * rate)
        span = samples[first : max(int(word.end * rate), first + 1)]
        assert np.sqrt(np.mean(span**2)) > 0.3 * loudness, f"no speech inside {word}"


def test_chinese_has_one_word_per_character(espeak_server: ServerThread) -> None:
    with VoiceBridge(url=espeak_server.url, sinks=[NullSink()]) as bridge:
        metrics = bridge.speak(CHINESE)
    check_words(metrics)
    assert "".join(w.text for w in metrics.words) == letters(CHINESE)


def speak_text(url: str, text: str, settings: SessionSettings = FAST) -> tuple[TurnMetrics, bytes]:
    audio = io.BytesIO()
    with VoiceBridge(url=url, sinks=[PcmFileSink(audio)], settings=settings) as bridge:
        pieces = [text[i : i + 5] for i in range(0, len(text), 5)]
        metrics = bridge.speak(iter(pieces))
    return metrics, audio.getvalue()


@pytest.fixture(scope="module")
def clean_run() -> tuple[TurnMetrics, bytes]:
    with ServerThread(engine="text") as server:
        return speak_text(server.url, LONG)


def fault(seed: int) -> FaultPlan:
    rng = random.Random(seed)
    point = rng.choice((FaultPoint.AUDIO, FaultPoint.SENTENCE_END, FaultPoint.TEXT))
    trigger = Trigger(point, rng.randint(1, 30 if point is FaultPoint.AUDIO else 6))
    connections = frozenset(rng.sample(range(1, 4), rng.randint(1, 2)))
    if rng.random() < 0.5:
        return FaultPlan(connections=connections, drop_at=trigger)
    return FaultPlan(connections=connections, fail_at=trigger)


@pytest.mark.parametrize("seed", range(100))
def test_words_survive_faults_and_replays(
    seed: int, make_server: Callable[..., ServerThread], clean_run: tuple[TurnMetrics, bytes]
) -> None:
    """Drops and failures at any point: the listener hears every character once, and the word
    timings are those of the fault-free run (a trimmed replay shifts nothing, repeats nothing)."""
    clean, clean_audio = clean_run
    server = make_server(engine="text", faults=fault(seed))
    metrics, audio = speak_text(server.url, LONG)
    heard, clean_heard = decode_text_audio(audio), decode_text_audio(clean_audio)
    assert heard.text == clean_heard.text == metrics.text, "each character heard once"
    assert heard.orphans == heard.invalid_bytes == 0
    assert [(w.text, w.text_start) for w in metrics.words] == [
        (w.text, w.text_start) for w in clean.words
    ]
    assert [round(w.start, 3) for w in metrics.words] == [round(w.start, 3) for w in clean.words]
    check_words(metrics)


def test_astream_events_gives_each_word_after_its_audio(tone_server: ServerThread) -> None:
    async def main() -> list[object]:
        async with VoiceBridge(url=tone_server.url, sinks=[NullSink()]) as bridge:
            return [event async for event in bridge.astream_events(iter([ENGLISH]))]

    events = asyncio.run(asyncio.wait_for(main(), 60))
    assert isinstance(events[-1], TurnMetrics)
    audio_end = 0.0
    words = []
    for event in events[:-1]:
        if isinstance(event, AudioChunk):
            assert event.start == pytest.approx(audio_end, abs=1e-6), "chunks in timeline order"
            audio_end = event.start + len(event.data) / 2 / 22050
        else:
            assert isinstance(event, Word) and event.end <= audio_end + 1e-6
            words.append(event)
    assert words == list(events[-1].words)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"language_hints": ["xx"]}, "unknown language hint 'xx'"),
        ({"seed": 70000}, "seed must be an integer from 0 to 65535"),
        ({"instruction": "x" * 129}, "instruction is 129 characters long; the limit is 128"),
        ({"rate": 5}, "rate must be a number from 0.5 to 2"),
        ({"hot_fix": {"swap": []}}, 'hot_fix takes the keys "pronunciation" and "replace"'),
        ({"sample_rate": 12345}, "sample_rate 12345 is not one of"),
    ],
)
def test_bad_options_fail_before_any_connection(
    tone_server: ServerThread, options: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        VoiceBridge(url=tone_server.url, sinks=[NullSink()], **options)  # type: ignore[arg-type]
    assert tone_server.transcripts == [], "nothing connected"


def test_options_reach_the_service(tone_server: ServerThread) -> None:
    received: list[bytes] = []
    with VoiceBridge(
        url=tone_server.url,
        sinks=[CallbackSink(received.append)],
        language_hints=["en"],
        seed=7,
        instruction="Speak slowly.",
        hot_fix={"replace": [{"Paris": "Pa-ris"}]},
        enable_markdown_filter=True,
    ) as bridge:
        metrics = bridge.speak("The weather in Paris is fine.")
    assert metrics.text == "The weather in Paris is fine." and received
