"""voicebridge as the TTS model of an OpenAI Agents SDK ``VoicePipeline``.

The pipeline is the SDK's own: it transcribes a recording, runs a workflow that writes the reply,
splits the reply into sentence batches and starts a ``run()`` of the TTS model for each batch as
soon as it has one, so runs overlap. ``CosyVoiceTTSModel`` speaks them one after another on one
warm connection. The workflow here is scripted and stops for a tool call in the middle
(``--tool-seconds``, 25 by default); the "recording" is the question you pass, handed to the
pipeline by a scripted speech-to-text model (this example has no microphone and no OpenAI key).

Offline as is (the embedded local server); DASHSCOPE_API_KEY switches to the real service.

    pip install 'voicebridge[openai-agents]'
    python examples/openai_agents_voice.py [--question "..."] [--tool-seconds 25] [--out agents.wav]
"""

from __future__ import annotations

import argparse
import asyncio
import wave
from collections.abc import AsyncIterator

import numpy as np
from agents.voice import (
    AudioInput,
    StreamedAudioInput,
    StreamedTranscriptionSession,
    STTModel,
    STTModelSettings,
    VoicePipeline,
    VoicePipelineConfig,
    VoiceWorkflowBase,
)

from voicebridge.integrations.openai_agents import SAMPLE_RATE, CosyVoiceTTSModel


class TypedQuestion(STTModel):
    """Stands in for speech-to-text: every recording "says" the question on the command line."""

    def __init__(self, question: str) -> None:
        self.question = question

    @property
    def model_name(self) -> str:
        return "typed-question"

    async def transcribe(
        self, input: AudioInput, settings: STTModelSettings, *tracing: bool
    ) -> str:
        return self.question

    async def create_session(
        self, input: StreamedAudioInput, settings: STTModelSettings, *tracing: bool
    ) -> StreamedTranscriptionSession:
        raise NotImplementedError("this example answers one recording")


class WeatherWorkflow(VoiceWorkflowBase):
    """A scripted agent: it says what it is doing, calls a slow tool, then answers."""

    def __init__(self, tool_seconds: float) -> None:
        self.tool_seconds = tool_seconds

    async def run(self, transcription: str) -> AsyncIterator[str]:
        print(f"user: {transcription}")
        for piece in ["Let me look up ", "the weather for you. ", "One moment. "]:
            yield piece
        await asyncio.sleep(self.tool_seconds)  # the tool call
        for piece in [
            "In Hangzhou it is ",
            "twenty-one degrees ",
            "and sunny. ",
            "Enjoy your day!",
        ]:
            yield piece


async def main() -> None:
    parser = argparse.ArgumentParser(description="An Agents SDK voice pipeline with voicebridge.")
    parser.add_argument("--question", default="What is the weather in Hangzhou?")
    parser.add_argument("--tool-seconds", type=float, default=25.0, help="tool call duration")
    parser.add_argument("--out", default="agents.wav", help="WAV file to write")
    args = parser.parse_args()

    tts = CosyVoiceTTSModel()
    try:
        pipeline = VoicePipeline(
            workflow=WeatherWorkflow(args.tool_seconds),
            stt_model=TypedQuestion(args.question),
            tts_model=tts,
            config=VoicePipelineConfig(tracing_disabled=True),
        )
        recording = AudioInput(buffer=np.zeros(SAMPLE_RATE, dtype=np.int16))  # 1 s of silence
        result = await pipeline.run(recording)
        audio: list[np.ndarray] = []
        async for event in result.stream():
            if event.type == "voice_stream_event_audio" and event.data is not None:
                audio.append(event.data)
            elif event.type == "voice_stream_event_lifecycle":
                print(f"[{event.event}]")
    finally:
        await tts.aclose()

    pcm = np.concatenate(audio).astype(np.int16)
    with wave.open(args.out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        wav.writeframes(pcm.tobytes())
    print(f"bot: {result.total_output_text}")
    seconds = len(pcm) / SAMPLE_RATE
    print(f"[tool call of {args.tool_seconds:g} s: {seconds:.1f} s of audio in {args.out}]")


if __name__ == "__main__":
    asyncio.run(main())
