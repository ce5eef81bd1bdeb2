"""Barge-in and the asyncio face of VoiceBridge, against the real local server."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from voicebridge.audio import CallbackSink, NullSink
from voicebridge.bridge import VoiceBridge
from voicebridge.server import ServerThread
from voicebridge.session import SessionSettings

SENTENCES = [f"This is sentence number {i}, and it goes on for a while. " for i in range(40)]


class Recorder:
    """A sink callback that keeps the audio and the time of every write."""

    def __init__(self) -> None:
        self.audio = bytearray()
        self.times: list[float] = []
        self.first = threading.Event()

    def __call__(self, chunk: bytes) -> None:
        self.audio += chunk
        self.times.append(time.monotonic())
        self.first.set()


def slow_llm(closed: threading.Event) -> Iterator[str]:
    """An LLM that writes for about 20 s unless it is closed first."""
    try:
        for sentence in SENTENCES:
            for word in sentence.split(" "):
                time.sleep(0.02)
                yield word + " "
    finally:
        closed.set()


def test_interrupt_stops_audio_closes_the_stream_and_the_next_turn_works(
    tone_server: ServerThread,
) -> None:
    recorder = Recorder()
    closed = threading.Event()
    with VoiceBridge(url=tone_server.url, sinks=[CallbackSink(recorder)]) as bridge:
        threading.Thread(target=lambda: (recorder.first.wait(20), bridge.interrupt())).start()
        started = time.monotonic()
        metrics = bridge.speak(slow_llm(closed))
        returned = time.monotonic()
        assert metrics.interrupted
        assert returned - started < 15, "speak must return soon after interrupt()"
        assert closed.wait(5), "the LLM stream must be closed"
        heard = len(recorder.audio)
        time.sleep(0.5)
        assert len(recorder.audio) == heard, "audio of the cancelled turn was played afterwards"
        spoken_before = sum(len(t.text) for t in tone_server.transcripts)
        assert spoken_before < len("".join(SENTENCES)) / 2
        after = bridge.speak("Ready for the next turn.")
    assert not after.interrupted and after.audio_seconds > 0
    assert tone_server.transcripts[-1].text.endswith("Ready for the next turn.")


async def async_llm(pieces: list[str], delay: float = 0.005) -> AsyncIterator[str]:
    for piece in pieces:
        await asyncio.sleep(delay)
        yield piece


def test_aspeak_and_astream_match_speak(tone_server: ServerThread) -> None:
    pieces = ["Async ", "sources ", "speak ", "too. ", "同样", "可以。"]

    async def main() -> tuple[float, bytes, float]:
        recorder = Recorder()
        async with VoiceBridge(url=tone_server.url, sinks=[CallbackSink(recorder)]) as bridge:
            metrics = await bridge.aspeak(async_llm(pieces))
            streamed = bytearray()
            async for chunk in bridge.astream(async_llm(pieces)):
                streamed += chunk
        return metrics.audio_seconds, bytes(streamed), len(recorder.audio) / 2 / 22050

    seconds, streamed, recorded = asyncio.run(asyncio.wait_for(main(), 60))
    assert seconds > 0.5
    assert len(streamed) / 2 / 22050 == pytest.approx(seconds, abs=0.01)
    assert recorded == pytest.approx(2 * seconds, abs=0.02)
    assert [t.text for t in tone_server.transcripts] == ["".join(pieces) * 2]


def test_the_event_loop_is_never_blocked(tone_server: ServerThread) -> None:
    """A ticker on the loop keeps ticking while a turn is spoken (no blocking call on the loop)."""

    async def main() -> float:
        gaps: list[float] = []
        stop = asyncio.Event()

        async def ticker() -> None:
            last = time.monotonic()
            while not stop.is_set():
                await asyncio.sleep(0.01)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        tick = asyncio.create_task(ticker())
        async with VoiceBridge(url=tone_server.url, sinks=[NullSink()]) as bridge:
            await bridge.aspeak(async_llm(SENTENCES[:5], delay=0))
        stop.set()
        await tick
        return max(gaps)

    worst = asyncio.run(asyncio.wait_for(main(), 60))
    assert worst < 1.0, f"the loop stalled for {worst:.2f} s"


def test_cancelling_aspeak_is_a_barge_in(tone_server: ServerThread) -> None:
    async def main() -> bool:
        recorder = Recorder()
        async with VoiceBridge(url=tone_server.url, sinks=[CallbackSink(recorder)]) as bridge:
            task = asyncio.create_task(bridge.aspeak(async_llm(SENTENCES, delay=0.02)))
            while not recorder.first.is_set():
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            heard = len(recorder.audio)
            await asyncio.sleep(0.3)
            return (
                len(recorder.audio) == heard and (await bridge.aspeak("Again.")).audio_seconds > 0
            )

    assert asyncio.run(asyncio.wait_for(main(), 60))


class PacedSink(CallbackSink):
    """Writes take as long as playing the audio would at ``speed`` x real time (22050 Hz)."""

    def __init__(self, bridge_buffer: list[float], speed: float) -> None:
        super().__init__(self._write)
        self.seen = bridge_buffer
        self.speed = speed
        self.bridge: VoiceBridge | None = None

    def _write(self, chunk: bytes) -> None:
        if self.bridge is not None:
            self.seen.append(self.bridge.pipeline.buffered_seconds)
        time.sleep(len(chunk) / 2 / 22050 / self.speed)


def test_backpressure_holds_text_not_audio(tone_server: ServerThread) -> None:
    """With playback at 10x real time and a 1 s budget, the unplayed audio stays within the budget
    plus one fragment's audio, instead of growing to most of the answer (38 s of 50 s without
    backpressure, measured when this test was written)."""
    seen: list[float] = []
    sink = PacedSink(seen, speed=10.0)
    settings = SessionSettings(max_buffered_audio=1.0)
    text = "".join(SENTENCES[:12])
    with VoiceBridge(url=tone_server.url, sinks=[sink], settings=settings) as bridge:
        sink.bridge = bridge
        metrics = bridge.speak(text)
    assert "".join(t.text for t in tone_server.transcripts) == text
    assert metrics.audio_seconds > 30
    assert max(seen) < metrics.audio_seconds / 3, f"{max(seen):.1f} s of audio were queued"
