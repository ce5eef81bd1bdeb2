"""The pipecat plugin, driven by pipecat's own ``run_test`` pipeline against the real local
server: frame order, audio, word timestamps, barge-in, tool-call pauses, settings."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence

import pytest
from pipecat.frames.frames import (
    ErrorFrame,
    Frame,
    InterruptionFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
    TTSUpdateSettingsFrame,
)
from pipecat.services.settings import TTSSettings
from pipecat.services.tts_service import TextAggregationMode
from pipecat.tests.utils import SleepFrame, run_test

from voicebridge.integrations.pipecat import CosyVoiceTTSService
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

SPEECH = (TTSStartedFrame, TTSAudioRawFrame, TTSStoppedFrame)


def reply(*pieces: str) -> list[Frame]:
    """One LLM reply as pipecat's LLM services push it."""
    return [
        LLMFullResponseStartFrame(),
        *(LLMTextFrame(p) for p in pieces),
        LLMFullResponseEndFrame(),
    ]


def pipeline(
    service: CosyVoiceTTSService, frames: Sequence[Frame]
) -> tuple[Sequence[Frame], Sequence[Frame]]:
    """Run the frames through the service in pipecat's test pipeline; check nothing is left."""

    async def main() -> tuple[Sequence[Frame], Sequence[Frame]]:
        down, up = await run_test(service, frames_to_send=frames)
        assert not other_tasks()
        return down, up

    down, up = asyncio.run(main())
    assert not bridge_threads()
    return down, up


def speech(frames: Sequence[Frame]) -> list[Frame]:
    return [f for f in frames if isinstance(f, SPEECH)]


def kinds(frames: Sequence[Frame]) -> list[str]:
    """Frame class names, runs of audio frames collapsed to one."""
    names: list[str] = []
    for frame in frames:
        name = type(frame).__name__
        if not (names and name == names[-1] == "TTSAudioRawFrame"):
            names.append(name)
    return names


def seconds(frames: Sequence[Frame]) -> float:
    audio = [f for f in frames if isinstance(f, TTSAudioRawFrame)]
    return sum(len(f.audio) / 2 / f.sample_rate for f in audio)


def test_a_reply_is_started_audio_stopped_in_one_context(tone_server: ServerThread) -> None:
    down, up = pipeline(CosyVoiceTTSService(url=tone_server.url), reply(*TOKENS))
    assert kinds(speech(down)) == ["TTSStartedFrame", "TTSAudioRawFrame", "TTSStoppedFrame"]
    assert len({f.context_id for f in speech(down)}) == 1  # type: ignore[attr-defined]
    assert {f.sample_rate for f in down if isinstance(f, TTSAudioRawFrame)} == {24000}
    assert seconds(down) > 2.0  # the tone engine: tens of ms per character
    assert isinstance(down[-1], LLMFullResponseEndFrame)  # after the reply's audio
    assert not [f for f in up if isinstance(f, ErrorFrame)]
    assert spoken(tone_server) == TEXT


def test_word_timestamps_make_the_text_frames(espeak_server: ServerThread) -> None:
    down, _ = pipeline(CosyVoiceTTSService(url=espeak_server.url), reply(*TOKENS))
    words = [f for f in down if isinstance(f, TTSTextFrame)]
    assert [f.text for f in words] == re.findall(r"\w+", TEXT)  # spoken words, as pipecat wants
    times = [f.pts for f in words]
    assert all(times) and times == sorted(times)
    stopped = next(f for f in down if isinstance(f, TTSStoppedFrame))
    assert down.index(words[-1]) < down.index(stopped)


def test_sentence_aggregation_keeps_the_space_between_sentences(
    tone_server: ServerThread,
) -> None:
    service = CosyVoiceTTSService(
        url=tone_server.url, text_aggregation_mode=TextAggregationMode.SENTENCE
    )
    down, _ = pipeline(service, reply("The answer is four.", " This is the reason."))
    assert kinds(speech(down)) == ["TTSStartedFrame", "TTSAudioRawFrame", "TTSStoppedFrame"]
    assert spoken(tone_server) == "The answer is four. This is the reason. "


def test_settings_are_complete_and_a_voice_change_reaches_the_next_turn(
    tone_server: ServerThread,
) -> None:
    service = CosyVoiceTTSService(url=tone_server.url, language="en-US")
    service.settings.validate_complete()  # model, voice and language all set
    assert service.settings.language == "en"
    frames = [
        *reply("Spoken in the first voice."),
        TTSUpdateSettingsFrame(delta=TTSSettings(voice="no_such_voice")),
        *reply("This voice does not exist."),
    ]
    _, up = pipeline(service, frames)
    errors = [f.error for f in up if isinstance(f, ErrorFrame)]
    assert any("418" in e for e in errors), errors  # the unknown voice, from the server
    assert spoken(tone_server) == "Spoken in the first voice."


def test_a_barge_in_stops_the_audio_and_the_next_reply_speaks(
    make_server: Callable[..., ServerThread],
) -> None:
    server = make_server(faults=SLOW_AUDIO)
    frames = [
        LLMFullResponseStartFrame(),
        LLMTextFrame(STORY),
        SleepFrame(1.0),  # the story is being spoken
        InterruptionFrame(),  # the user talks
        SleepFrame(0.5),
        LLMFullResponseEndFrame(),  # the interrupted reply's end still arrives
        *reply("Sure, I stopped."),
    ]
    down, up = pipeline(CosyVoiceTTSService(url=server.url), frames)
    cut = next(i for i, f in enumerate(down) if isinstance(f, InterruptionFrame))
    before, after = down[:cut], down[cut:]
    story = {f.context_id for f in speech(before)}  # type: ignore[attr-defined]
    assert len(story) == 1 and seconds(before) > 0
    # Not one audio frame of the interrupted context after the barge-in.
    assert not [f for f in speech(after) if f.context_id in story]  # type: ignore[attr-defined]
    assert kinds(speech(after)) == ["TTSStartedFrame", "TTSAudioRawFrame", "TTSStoppedFrame"]
    assert not [f for f in up if isinstance(f, ErrorFrame)]
    said = spoken(server)
    assert said.endswith("Sure, I stopped.")
    assert len(said) < len(STORY) / 2, "the interrupted story was not synthesized to its end"


def pause_frames(pause: float) -> list[Frame]:
    """A reply with a tool call in the middle: the LLM writes nothing for ``pause`` s."""
    return [
        LLMFullResponseStartFrame(),
        LLMTextFrame("Let me look up the weather."),
        SleepFrame(pause),
        LLMTextFrame(" It is sunny and warm."),
        LLMFullResponseEndFrame(),
    ]


def test_a_tool_call_longer_than_the_idle_timer_is_spoken_through(
    make_server: Callable[..., ServerThread],
) -> None:
    server = make_server(limits=SHORT_IDLE)
    service = CosyVoiceTTSService(url=server.url, bridge_options={"settings": FAST})
    down, up = pipeline(service, pause_frames(PAUSE))
    assert not [f for f in up if isinstance(f, ErrorFrame)]
    assert seconds(down) > 1.0
    assert spoken(server) == "Let me look up the weather. It is sunny and warm."
    assert len(server.transcripts) == 1 and tasks_of(server) >= 2  # rolled over, no reconnect


@pytest.mark.slow
def test_a_30_second_tool_call_with_the_real_23_second_timer(tone_server: ServerThread) -> None:
    down, up = pipeline(CosyVoiceTTSService(url=tone_server.url), pause_frames(REAL_PAUSE))
    assert not [f for f in up if isinstance(f, ErrorFrame)]
    # The context went quiet during the pause (pipecat closes it after 3 s) and reopened.
    assert kinds(speech(down)) == ["TTSStartedFrame", "TTSAudioRawFrame"] * 2 + ["TTSStoppedFrame"]
    assert spoken(tone_server) == "Let me look up the weather. It is sunny and warm."
    assert len(tone_server.transcripts) == 1 and tasks_of(tone_server) == 2
