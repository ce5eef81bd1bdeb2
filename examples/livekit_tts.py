"""voicebridge as the TTS of a LiveKit agent, driven the way an AgentSession drives it.

An agent's ``tts_node`` pushes the LLM's text into ``tts.stream()`` as it arrives and plays the
frames that come back. This script does the same with a scripted LLM reply that stops for a tool
call in the middle (``--tool-seconds``, 25 by default: longer than the 23 s CosyVoice allows
without text), then prints the aligned transcript (word times) and writes the audio to a WAV.

Offline as is (the embedded local server); DASHSCOPE_API_KEY switches to the real service.
In an agent: ``AgentSession(tts=voicebridge.integrations.livekit.TTS(), ...)``.

    pip install 'voicebridge[livekit]'
    python examples/livekit_tts.py [--tool-seconds 25] [--out livekit.wav]
"""

from __future__ import annotations

import argparse
import asyncio
import wave

from livekit.agents.types import USERDATA_TIMED_TRANSCRIPT

from voicebridge.integrations.livekit import TTS

BEFORE = ["Let me ", "look up ", "the weather ", "in Hangzhou."]
AFTER = [" It is ", "twenty-one ", "degrees and ", "sunny, ", "with a light ", "breeze."]


async def main() -> None:
    parser = argparse.ArgumentParser(description="A LiveKit TTS stream through voicebridge.")
    parser.add_argument("--tool-seconds", type=float, default=25.0, help="tool call duration")
    parser.add_argument("--out", default="livekit.wav", help="WAV file to write")
    args = parser.parse_args()

    async with TTS() as tts:
        stream = tts.stream()

        async def llm() -> None:
            for token in BEFORE:
                stream.push_text(token)
            await asyncio.sleep(args.tool_seconds)  # the tool call: no text at all
            for token in AFTER:
                stream.push_text(token)
            stream.end_input()

        writer = asyncio.create_task(llm())
        pcm = bytearray()
        try:
            async for audio in stream:
                pcm += audio.frame.data.tobytes()
                for word in audio.frame.userdata.get(USERDATA_TIMED_TRANSCRIPT, []):
                    print(f"{word.start_time:6.2f}s {word!r}")
        except BaseException:
            writer.cancel()  # the stream failed: the writer stops too
            raise
        await writer
        await stream.aclose()

    with wave.open(args.out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(tts.sample_rate)
        wav.writeframes(bytes(pcm))
    seconds = len(pcm) / 2 / tts.sample_rate
    print(f"[tool call of {args.tool_seconds:g} s: {seconds:.1f} s of audio in {args.out}]")


if __name__ == "__main__":
    asyncio.run(main())
