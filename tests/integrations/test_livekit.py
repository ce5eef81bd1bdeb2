"""The LiveKit Agents plugin, driven through LiveKit's own ``SynthesizeStream`` and
``ChunkedStream`` machinery against the real local server (no LiveKit room is needed for a TTS)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from livekit.agents import APIError
from livekit.agents.tts import SynthesizedAudio, SynthesizeStream
from livekit.agents.types import USERDATA_TIMED_TRANSCRIPT, TimedString

from voicebridge.integrations.livekit import TTS
from voicebridge.server import ServerThread

from .common import (
    FAST,
    PAUSE,
    REAL_PAUSE,
    SHORT_IDLE,
    SLOW_AUDIO,
    STORY,
    TEXT,
    TOKENS,
    bridge_threads,
    other_tasks,
    spoken,
    tasks_of,
)


def run(main: Callable[[], object]) -> None:
    asyncio.run(main())  # type: ignore[arg-type]


async def collect(stream: SynthesizeStream) -> list[SynthesizedAudio]:
    return [event async for event in stream]


async def speak_tokens(tts: TTS) -> list[SynthesizedAudio]:
    """TOKENS through one stream, as an agent's tts_node pushes an LLM reply."""
    stream = tts.stream()
    for token in TOKENS:
        stream.push_text(token)
    stream.end_input()
    try:
        return await collect(stream)
    finally:
        await stream.aclose()


def duration(events: list[SynthesizedAudio]) -> float:
    return sum(e.frame.duration for e in events)


def transcript(events: list[SynthesizedAudio]) -> list[TimedString]:
    return [t for e in events for t in e.frame.userdata.get(USERDATA_TIMED_TRANSCRIPT, [])]


def test_stream_speaks_the_pushed_tokens_as_one_segment(tone_server: ServerThread) -> None:
    async def main() -> None:
        async with TTS(url=tone_server.url) as tts:
            events = await speak_tokens(tts)
            assert not other_tasks()
        assert {e.frame.sample_rate for e in events} == {24000}
        assert {e.frame.num_channels for e in events} == {1}
        assert len({e.segment_id for e in events}) == 1
        assert [e.is_final for e in events].count(True) == 1 and events[-1].is_final
        assert duration(events) > 2.0  # the tone engine: tens of ms per character

    run(main)
    assert spoken(tone_server) == TEXT
    assert not bridge_threads()


def test_stream_words_are_an_aligned_transcript(espeak_server: ServerThread) -> None:
    async def main() -> None:
        async with TTS(url=espeak_server.url) as tts:
            events = await speak_tokens(tts)
        words = transcript(events)
        assert "".join(words) == TEXT  # punctuation and spaces included
        assert [w.strip(" .") for w in words[:3]] == ["The", "weather", "in"]
        starts = [w.start_time for w in words]
        assert starts == sorted(starts) and starts[0] >= 0
        assert all(w.start_time <= w.end_time <= duration(events) + 1e-6 for w in words)

    run(main)


def test_a_flush_speaks_the_segment_before_the_input_ends(tone_server: ServerThread) -> None:
    async def main() -> None:
        async with TTS(url=tone_server.url) as tts:
            stream = tts.stream()
            stream.push_text("No full stop here, yet it is spoken at the flush")
            stream.flush()
            first = await asyncio.wait_for(anext(aiter(stream)), timeout=10)
            assert first.frame.duration > 0  # audio came while the input is still open
            stream.end_input()
            rest = await collect(stream)
            await stream.aclose()
        assert rest and rest[-1].is_final

    run(main)
    assert spoken(tone_server) == "No full stop here, yet it is spoken at the flush"


def test_synthesize_speaks_one_text(tone_server: ServerThread) -> None:
    async def main() -> None:
        async with TTS(url=tone_server.url) as tts:
            frame = await tts.synthesize(TEXT).collect()
        assert frame.sample_rate == 24000 and frame.duration > 2.0

    run(main)
    assert spoken(tone_server) == TEXT


def test_synthesize_has_word_times(espeak_server: ServerThread) -> None:
    async def main() -> None:
        async with TTS(url=espeak_server.url) as tts:
            events = [event async for event in tts.synthesize(TEXT)]
        assert "".join(transcript(events)) == TEXT

    run(main)


def test_closing_a_stream_mid_speech_interrupts_its_turn(
    make_server: Callable[..., ServerThread],
) -> None:
    server = make_server(faults=SLOW_AUDIO)

    async def main() -> None:
        async with TTS(url=server.url) as tts:
            stream = tts.stream()
            stream.push_text(STORY)
            await asyncio.wait_for(anext(aiter(stream)), timeout=10)
            await asyncio.wait_for(stream.aclose(), timeout=5)
            assert not other_tasks()
            # The bridge is free at once: the next stream speaks on the same connection.
            again = tts.stream()
            again.push_text("Sure, I stopped.")
            again.end_input()
            assert duration(await collect(again)) > 0
            await again.aclose()

    run(main)
    assert len(server.transcripts) == 1, "one warm connection served both streams"
    said = spoken(server)
    assert said.endswith("Sure, I stopped.")
    assert len(said) < len(STORY) / 2, "the interrupted story was not synthesized to its end"


def test_overlapping_streams_each_borrow_a_bridge(tone_server: ServerThread) -> None:
    async def speak(tts: TTS, text: str) -> float:
        stream = tts.stream()
        stream.push_text(text)
        stream.end_input()
        try:
            return duration(await collect(stream))
        finally:
            await stream.aclose()

    async def main() -> None:
        async with TTS(url=tone_server.url) as tts:
            first, second = await asyncio.gather(
                speak(tts, "The first speaker talks."), speak(tts, "The second one too.")
            )
        assert first > 0 and second > 0

    run(main)
    assert sorted(t.text for t in tone_server.transcripts) == [
        "The first speaker talks.",
        "The second one too.",
    ]
    assert not bridge_threads()


def test_an_unknown_voice_is_a_non_retryable_api_error(tone_server: ServerThread) -> None:
    async def main() -> None:
        async with TTS(url=tone_server.url, voice="no_such_voice") as tts:
            stream = tts.stream()
            stream.push_text("Hello.")
            stream.end_input()
            with pytest.raises(APIError, match="418") as raised:
                await collect(stream)
            assert raised.value.retryable is False
            await stream.aclose()

    run(main)


def speak_through_a_pause(server: ServerThread, pause: float, **options: object) -> list[float]:
    """An agent says a sentence, calls a tool that takes ``pause`` s, then answers."""

    async def main() -> list[float]:
        async with TTS(url=server.url, bridge_options=options) as tts:
            stream = tts.stream()
            stream.push_text("Let me look up the weather.")
            await asyncio.sleep(pause)  # the tool call: the LLM writes nothing
            stream.push_text(" It is sunny and warm.")
            stream.end_input()
            events = await collect(stream)
            await stream.aclose()
        return [e.frame.duration for e in events]

    return asyncio.run(main())


def test_a_tool_call_longer_than_the_idle_timer_is_spoken_through(
    make_server: Callable[..., ServerThread],
) -> None:
    server = make_server(limits=SHORT_IDLE)
    frames = speak_through_a_pause(server, PAUSE, settings=FAST)
    assert sum(frames) > 0
    assert spoken(server) == "Let me look up the weather. It is sunny and warm."
    assert len(server.transcripts) == 1 and tasks_of(server) >= 2  # rolled over, no reconnect


@pytest.mark.slow
def test_a_30_second_tool_call_with_the_real_23_second_timer(tone_server: ServerThread) -> None:
    speak_through_a_pause(tone_server, REAL_PAUSE)
    assert spoken(tone_server) == "Let me look up the weather. It is sunny and warm."
    assert len(tone_server.transcripts) == 1 and tasks_of(tone_server) == 2
