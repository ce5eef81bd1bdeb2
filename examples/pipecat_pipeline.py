"""voicebridge as the TTS service of a pipecat pipeline, with a tool call and a barge-in.

The pipeline is pipecat's own (``Pipeline``, ``PipelineWorker``, ``WorkerRunner``): frames as an
LLM service pushes them go into ``CosyVoiceTTSService``, and a small recorder at the end writes
the audio to a WAV and prints each word as pipecat times it (``TTSTextFrame``).

1. A reply that stops for a tool call in the middle (``--tool-seconds``, 25 by default: longer
   than the 23 s CosyVoice allows without text) is spoken through.
2. A long reply is interrupted (``InterruptionFrame``, as when the user starts talking): its audio
   stops at once and the next reply is spoken.

Offline as is (the embedded local server); DASHSCOPE_API_KEY switches to the real service.

    pip install 'voicebridge[pipecat]'
    python examples/pipecat_pipeline.py [--tool-seconds 25] [--out pipecat.wav]
"""

from __future__ import annotations

import argparse
import asyncio
import wave

from pipecat.frames.frames import (
    EndFrame,
    Frame,
    InterruptionFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    TTSAudioRawFrame,
    TTSTextFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.workers.runner import WorkerRunner

from voicebridge.integrations.pipecat import CosyVoiceTTSService

STORY = "Once upon a time a lighthouse keeper counted the waves every night. " * 40


class Recorder(FrameProcessor):
    """The end of the pipeline: keeps the audio, prints the words, counts audio after a barge-in."""

    def __init__(self) -> None:
        super().__init__()
        self.pcm = bytearray()
        self.sample_rate = 0
        self.interrupted = False

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, TTSAudioRawFrame):
            self.pcm += frame.audio
            self.sample_rate = frame.sample_rate
        elif isinstance(frame, TTSTextFrame):
            print(frame.text, end=" ", flush=True)
        elif isinstance(frame, InterruptionFrame):
            self.interrupted = True
            print("\n[barge-in]")
        elif isinstance(frame, LLMFullResponseEndFrame):
            print()
        await self.push_frame(frame, direction)


def reply(*pieces: str) -> list[Frame]:
    return [
        LLMFullResponseStartFrame(),
        *(LLMTextFrame(p) for p in pieces),
        LLMFullResponseEndFrame(),
    ]


async def main() -> None:
    parser = argparse.ArgumentParser(description="A pipecat pipeline speaking through voicebridge.")
    parser.add_argument("--tool-seconds", type=float, default=25.0, help="tool call duration")
    parser.add_argument("--out", default="pipecat.wav", help="WAV file to write")
    args = parser.parse_args()

    recorder = Recorder()
    worker = PipelineWorker(Pipeline([CosyVoiceTTSService(), recorder]))
    started = asyncio.Event()

    @worker.event_handler("on_pipeline_started")
    async def on_started(worker: PipelineWorker, frame: Frame) -> None:
        started.set()

    async def llm() -> None:
        await asyncio.wait_for(started.wait(), 30)  # a pipeline that never starts: an error
        # 1. A reply with a slow tool call in the middle.
        await worker.queue_frames(
            [LLMFullResponseStartFrame(), LLMTextFrame("Let me look up the weather.")]
        )
        await asyncio.sleep(args.tool_seconds)
        await worker.queue_frames(
            [LLMTextFrame(" It is sunny in Hangzhou."), LLMFullResponseEndFrame()]
        )
        # 2. A long story, interrupted by the user, then a short answer.
        await worker.queue_frames([LLMFullResponseStartFrame(), LLMTextFrame(STORY)])
        await asyncio.sleep(1.0)  # the story is being spoken
        await worker.queue_frame(InterruptionFrame())
        await worker.queue_frames(
            [LLMFullResponseEndFrame(), *reply("Sure, I stopped."), EndFrame()]
        )

    runner = WorkerRunner()
    await runner.add_workers(worker)
    await asyncio.gather(runner.run(), llm())

    with wave.open(args.out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(recorder.sample_rate)
        wav.writeframes(bytes(recorder.pcm))
    seconds = len(recorder.pcm) / 2 / recorder.sample_rate
    print(f"[{seconds:.1f} s of audio in {args.out}; interrupted={recorder.interrupted}]")


if __name__ == "__main__":
    asyncio.run(main())
