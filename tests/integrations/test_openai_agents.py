"""The OpenAI Agents SDK plugin, driven by the SDK's own ``VoicePipeline`` against the real
local server. The speech-to-text side is scripted (a fake STT: this machine has no OpenAI
access), the workflow yields scripted text; everything from the transcription on is the SDK's."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence

import numpy as np
import pytest
from agents.voice import (
    AudioInput,
    StreamedAudioInput,
    StreamedTranscriptionSession,
    STTModel,
    STTModelSettings,
    TTSModelSettings,
    VoicePipeline,
    VoicePipelineConfig,
    VoiceWorkflowBase,
)

from voicebridge.integrations.openai_agents import CHUNK_BYTES, SAMPLE_RATE, CosyVoiceTTSModel
from voicebridge.server import ServerThread
from voicebridge.server.service import ServerLimits

from .common import (
    PAUSE,
    REAL_PAUSE,
    SLOW_AUDIO,
    STORY,
    bridge_threads,
    other_tasks,
    tasks_of,
)

REPLY = ["You said: ", "what is the weather?", " It is mild in Hangzhou today. Expect",
         " light rain after six", " in the evening. Take an umbrella."]  # fmt: skip
# The SDK's splitter holds a sentence back until the next one starts: the first batch is spoken
# before the tool call (piece 2), the rest after it.
TOOL_REPLY = ["Let me look up the weather for you. ", "One moment. ", "It is sunny and warm."]
SPOKEN_TOOL_REPLY = ["Let me look up the weather for you.", "One moment.", "It is sunny and warm."]


class ScriptedSTT(STTModel):
    """A fake speech-to-text model: every recording "says" ``text``."""

    def __init__(self, text: str) -> None:
        self.text = text

    @property
    def model_name(self) -> str:
        return "scripted-stt"

    async def transcribe(
        self, input: AudioInput, settings: STTModelSettings, *tracing: bool
    ) -> str:
        return self.text

    async def create_session(
        self, input: StreamedAudioInput, settings: STTModelSettings, *tracing: bool
    ) -> StreamedTranscriptionSession:
        raise NotImplementedError("these tests use single-turn AudioInput")


class ScriptedWorkflow(VoiceWorkflowBase):
    """The agent's reply as text pieces; ``pauses[i]`` s of silence (a tool call) before piece i."""

    def __init__(self, pieces: Sequence[str], pauses: dict[int, float] | None = None) -> None:
        self.pieces = pieces
        self.pauses = pauses or {}

    async def run(self, transcription: str) -> AsyncIterator[str]:
        for i, piece in enumerate(self.pieces):
            await asyncio.sleep(self.pauses.get(i, 0.005))
            yield piece


def voice_pipeline(model: CosyVoiceTTSModel, workflow: VoiceWorkflowBase) -> VoicePipeline:
    return VoicePipeline(
        workflow=workflow,
        stt_model=ScriptedSTT("what is the weather?"),
        tts_model=model,
        config=VoicePipelineConfig(tracing_disabled=True),
    )


def one_second_of_silence() -> AudioInput:
    return AudioInput(buffer=np.zeros(SAMPLE_RATE, dtype=np.int16))


async def hear(pipeline: VoicePipeline) -> tuple[np.ndarray, list[str]]:
    """The pipeline's audio (int16) and lifecycle events, for one recording."""
    result = await pipeline.run(one_second_of_silence())
    audio: list[np.ndarray] = []
    lifecycle: list[str] = []
    async for event in result.stream():
        if event.type == "voice_stream_event_audio":
            assert event.data is not None
            audio.append(event.data)
        elif event.type == "voice_stream_event_lifecycle":
            lifecycle.append(event.event)
        else:
            raise AssertionError(f"error event: {event}")
    return np.concatenate(audio), lifecycle


def sentences(server: ServerThread) -> list[str]:
    return [s.strip() for t in server.transcripts for ss in t.tasks.values() for s in ss]


def test_a_voice_pipeline_speaks_the_reply_on_one_connection(tone_server: ServerThread) -> None:
    async def main() -> None:
        model = CosyVoiceTTSModel(url=tone_server.url)
        try:
            audio, lifecycle = await hear(voice_pipeline(model, ScriptedWorkflow(REPLY)))
        finally:
            await model.aclose()
        assert lifecycle == ["turn_started", "turn_ended", "session_ended"]
        assert audio.dtype == np.int16 and len(audio) / SAMPLE_RATE > 3.0
        assert not other_tasks()

    asyncio.run(main())
    assert " ".join(sentences(tone_server)).split() == "".join(REPLY).split()
    assert len(tone_server.transcripts) == 1 and tasks_of(tone_server) >= 3  # a task per batch
    assert not bridge_threads()


def test_overlapping_runs_never_interleave_their_audio(
    make_server: Callable[..., ServerThread],
) -> None:
    """The SDK starts a run() per batch as soon as it has one: start three at once."""
    server = make_server(faults=SLOW_AUDIO)
    batches = ["The first batch of the reply.", "Then a second one.", "And a third, at last."]
    log: list[int] = []
    sizes: list[list[int]] = [[], [], []]

    async def consume(model: CosyVoiceTTSModel, index: int) -> None:
        async for chunk in model.run(batches[index], TTSModelSettings()):
            log.append(index)
            sizes[index].append(len(chunk))

    async def main() -> None:
        model = CosyVoiceTTSModel(url=server.url)
        try:
            await asyncio.gather(*(consume(model, i) for i in range(3)))
        finally:
            await model.aclose()

    asyncio.run(main())
    assert log == sorted(log) and set(log) == {0, 1, 2}, "batches spoke one after another"
    assert log.count(0) > 1 and log.count(1) > 1  # several chunks each: there was room to mix
    # Chunks of the SDK's own TTS model's size, so that its buffer_size means the same.
    assert all(size == CHUNK_BYTES for run in sizes for size in run[:-1])
    assert all(0 < run[-1] <= CHUNK_BYTES and run[-1] % 2 == 0 for run in sizes)
    assert " ".join(sentences(server)) == " ".join(batches)
    assert len(server.transcripts) == 1


def test_leaving_the_stream_early_stops_the_batch_and_frees_the_connection(
    make_server: Callable[..., ServerThread],
) -> None:
    server = make_server(faults=SLOW_AUDIO)

    async def main() -> None:
        model = CosyVoiceTTSModel(url=server.url)
        try:
            result = await voice_pipeline(model, ScriptedWorkflow([STORY])).run(
                one_second_of_silence()
            )
            stream = result.stream()
            async for event in stream:
                if event.type == "voice_stream_event_audio":
                    break  # the user barged in
            await stream.aclose()  # the SDK cancels its synthesis tasks
            audio, lifecycle = await hear(voice_pipeline(model, ScriptedWorkflow(["Sure."])))
            assert len(audio) > 0 and lifecycle[-1] == "session_ended"
        finally:
            await model.aclose()
        assert not other_tasks()

    asyncio.run(main())
    said = " ".join(sentences(server))
    assert said.endswith("Sure.") and len(said) < len(STORY) / 2
    assert len(server.transcripts) == 1


def test_a_tool_call_that_outlasts_the_connection_is_spoken_through(
    make_server: Callable[..., ServerThread],
) -> None:
    """A pause longer than the server's idle timers: it closes the quiet connection, and the
    next batch opens a new one."""
    server = make_server(limits=ServerLimits(idle_timeout=1.0, connection_idle_timeout=1.0))

    async def main() -> None:
        model = CosyVoiceTTSModel(url=server.url)
        try:
            workflow = ScriptedWorkflow(TOOL_REPLY, {2: PAUSE})
            audio, lifecycle = await hear(voice_pipeline(model, workflow))
        finally:
            await model.aclose()
        assert len(audio) > 0 and lifecycle[-1] == "session_ended"

    asyncio.run(main())
    assert sentences(server) == SPOKEN_TOOL_REPLY
    assert len(server.transcripts) == 2


@pytest.mark.slow
def test_a_30_second_tool_call_with_the_real_timers(tone_server: ServerThread) -> None:
    async def main() -> None:
        model = CosyVoiceTTSModel(url=tone_server.url)
        try:
            workflow = ScriptedWorkflow(TOOL_REPLY, {2: REAL_PAUSE})
            audio, lifecycle = await hear(voice_pipeline(model, workflow))
        finally:
            await model.aclose()
        assert len(audio) > 0 and lifecycle[-1] == "session_ended"

    asyncio.run(main())
    assert sentences(tone_server) == SPOKEN_TOOL_REPLY
    assert len(tone_server.transcripts) == 1 and tasks_of(tone_server) == 2
