"""``voicebridge chat``: type a message; the LLM's reply streams as text and as speech at once.

The LLM, first that applies:

1. ``--base-url`` / ``--api-key`` given, or ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY`` set: that
   OpenAI-compatible endpoint (model: ``--model``, ``OPENAI_MODEL``, or a default);
2. ``DASHSCOPE_API_KEY`` set: Qwen through DashScope's OpenAI-compatible mode (and the bridge then
   speaks through the real CosyVoice service);
3. nothing set: the embedded SmolLM2-135M-Instruct, run locally (:mod:`voicebridge.local_llm`).

Everything runs on the caller's thread except what :class:`~voicebridge.bridge.VoiceBridge` runs.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TextIO

from .audio import Sink, WavFileSink
from .errors import AudioError, VoiceBridgeError
from .llm import StreamEvent, TextDelta, iter_events

if TYPE_CHECKING:
    import openai

    from .bridge import VoiceBridge

__all__ = [
    "Chat",
    "LLMEndpoint",
    "TurnReport",
    "add_arguments",
    "add_llm_and_speech_arguments",
    "choose_llm",
    "choose_sinks",
    "converse",
    "main",
    "run",
]

log = logging.getLogger(__name__)

DEFAULT_SYSTEM = (
    "You are a friendly voice assistant. Reply in English, in two or three short sentences."
)
DEFAULT_WAV = "voicebridge-chat.wav"
_OPENAI_MODEL = "gpt-4o-mini"
_QWEN_MODEL = "qwen-plus"
_DASHSCOPE = "https://dashscope.aliyuncs.com/compatible-mode/v1"
_DASHSCOPE_INTL = "https://dashscope-intl.aliyuncs.com/compatible-mode/v1"


@dataclass(frozen=True)
class LLMEndpoint:
    """Where the replies come from. ``base_url`` None: OpenAI's own; ``local``: start SmolLM2."""

    label: str
    model: str
    base_url: str | None = None
    api_key: str = field(default="none", repr=False)
    local: bool = False


def choose_llm(
    base_url: str | None = None,
    model: str | None = None,
    api_key: str | None = None,
    environ: Mapping[str, str] = os.environ,
) -> LLMEndpoint:
    """Pick the LLM as the module docstring says."""
    base_url = base_url or environ.get("OPENAI_BASE_URL") or None
    api_key = api_key or environ.get("OPENAI_API_KEY") or None
    if base_url or api_key:
        return LLMEndpoint(
            label=f"OpenAI-compatible endpoint {base_url or 'api.openai.com'}",
            model=model or environ.get("OPENAI_MODEL") or _OPENAI_MODEL,
            base_url=base_url,
            api_key=api_key or "none",
        )
    dashscope_key = environ.get("DASHSCOPE_API_KEY")
    if dashscope_key:
        intl = "dashscope-intl" in environ.get("DASHSCOPE_WEBSOCKET_BASE_URL", "")
        return LLMEndpoint(
            label="Qwen through DashScope's OpenAI-compatible mode",
            model=model or _QWEN_MODEL,
            base_url=_DASHSCOPE_INTL if intl else _DASHSCOPE,
            api_key=dashscope_key,
        )
    from .local_llm import MODEL_NAME

    return LLMEndpoint(label="local SmolLM2 (llama-cpp-python)", model=MODEL_NAME, local=True)


def choose_sinks(
    out: str | None, *, play: bool = True, device: int | str | None = None
) -> tuple[list[Sink], str]:
    """The speaker when there is one, and ``out`` if given; with no speaker, a WAV file anyway.

    Returns the sinks and one line that says where the audio goes (and why, without a speaker).
    """
    sinks: list[Sink] = []
    where: list[str] = []
    missing = ""
    if play:
        try:
            from .audio.devices import list_output_devices
            from .audio.player import PyAudioSink

            if list_output_devices():
                sinks.append(PyAudioSink(device))
                where.append("played on the speaker")
            else:
                missing = "no sound device"
        except AudioError as exc:
            missing = f"no sound device ({exc})"
    if out is None and not sinks:
        out = DEFAULT_WAV
    if out is not None:
        sinks.append(WavFileSink(out))
        where.append(f"written to {out}")
    line = "audio " + " and ".join(where)
    return sinks, f"{missing}: {line}" if missing else line


@dataclass(frozen=True)
class TurnReport:
    """One turn. Seconds, counted from the moment the message was sent to the LLM."""

    reply: str
    time_to_first_token: float | None
    time_to_first_audio: float | None
    audio_seconds: float
    interrupted: bool

    def summary(self) -> str:
        def seconds(value: float | None) -> str:
            return "-" if value is None else f"{value:.2f} s"

        return (
            f"[first token {seconds(self.time_to_first_token)} · "
            f"first audio {seconds(self.time_to_first_audio)} · "
            f"{self.audio_seconds:.1f} s of audio{' · interrupted' if self.interrupted else ''}]"
        )


class Chat:
    """A conversation with history: each :meth:`ask` streams one reply to ``out`` and speaks it
    through ``bridge`` at the same time (the text is written as the bridge reads it)."""

    def __init__(
        self,
        client: openai.OpenAI,
        model: str,
        bridge: VoiceBridge,
        *,
        system: str | None = DEFAULT_SYSTEM,
        max_tokens: int = 200,
        out: TextIO = sys.stdout,
    ) -> None:
        self.client = client
        self.model = model
        self.bridge = bridge
        self.max_tokens = max_tokens
        self.out = out
        self.messages: list[dict[str, str]] = []
        if system:
            self.messages.append({"role": "system", "content": system})

    def ask(self, text: str) -> TurnReport:
        """Send ``text``, show and speak the reply; the reply (even a partial one, after an
        interrupt) joins the history. LLM and speech errors propagate."""
        self.messages.append({"role": "user", "content": text})
        sent = time.monotonic()
        pieces: list[str] = []
        first_token: list[float] = []
        try:
            stream = self.client.chat.completions.create(
                model=self.model,
                messages=self.messages,  # type: ignore[arg-type]
                max_tokens=self.max_tokens,
                stream=True,
            )
            shown = self._show(stream, pieces, first_token)
            metrics = self.bridge.speak(shown)
        finally:
            self.out.write("\n")
            self.out.flush()
            reply = "".join(pieces)
            if reply:
                self.messages.append({"role": "assistant", "content": reply})
            else:
                self.messages.pop()  # nothing came back: forget the question
        ttft = first_token[0] - sent if first_token else None
        to_audio = metrics.time_to_first_audio
        return TurnReport(
            reply=reply,
            time_to_first_token=ttft,
            time_to_first_audio=None if ttft is None or to_audio is None else ttft + to_audio,
            audio_seconds=metrics.audio_seconds,
            interrupted=metrics.interrupted,
        )

    def _show(
        self, stream: object, pieces: list[str], first_token: list[float]
    ) -> Generator[StreamEvent, None, None]:
        """The stream's events, each text piece written to ``out`` as it passes to the bridge."""
        with contextlib.closing(iter_events(stream)) as events:
            for event in events:
                if isinstance(event, TextDelta):
                    if not first_token:
                        first_token.append(time.monotonic())
                    pieces.append(event.text)
                    self.out.write(event.text)
                    self.out.flush()
                yield event


def converse(chat: Chat, read_line: Callable[[str], str] = input) -> None:
    """The interactive loop: until EOF, ``/quit`` or Ctrl-C at the prompt. Ctrl-C during a
    reply interrupts it (barge-in) and comes back to the prompt."""
    out = chat.out
    while True:
        try:
            text = read_line("you> ").strip()
        except (EOFError, KeyboardInterrupt):
            out.write("\n")
            return
        if text in ("/quit", "/exit"):
            return
        if not text:
            continue
        out.write("bot> ")
        out.flush()
        try:
            report = chat.ask(text)
        except KeyboardInterrupt:
            out.write("[interrupted]\n")
            continue
        except VoiceBridgeError as exc:
            out.write(f"[speech error: {exc}]\n")
            continue
        except Exception as exc:  # the LLM client's errors (openai.APIError and the like)
            out.write(f"[LLM error: {type(exc).__name__}: {exc}]\n")
            continue
        out.write(report.summary() + "\n")
        out.flush()


def add_llm_and_speech_arguments(parser: argparse.ArgumentParser) -> None:
    """The LLM and speech choices of ``chat`` (``voicebridge web`` offers the same)."""
    llm = parser.add_argument_group("LLM (default: OPENAI_*, then DASHSCOPE_API_KEY, then local)")
    llm.add_argument("--base-url", help="OpenAI-compatible base URL (default OPENAI_BASE_URL)")
    llm.add_argument("--model", help="LLM model (default OPENAI_MODEL, qwen-plus, or SmolLM2)")
    llm.add_argument("--api-key", help="LLM API key (default OPENAI_API_KEY)")
    llm.add_argument("--system", default=DEFAULT_SYSTEM, help="system prompt ('' for none)")
    llm.add_argument("--max-tokens", type=int, default=200, help="reply length limit")
    voice = parser.add_argument_group("speech")
    voice.add_argument("--voice", default="longxiaochun_v2", help="CosyVoice voice name")
    voice.add_argument("--tts-model", default="cosyvoice-v2", help="CosyVoice model")
    voice.add_argument(
        "--url", help="speech service URL (default: DASHSCOPE_WEBSOCKET_BASE_URL or embedded)"
    )
    voice.add_argument(
        "--engine", default="espeak", choices=("espeak", "tone"), help="embedded server engine"
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``voicebridge chat`` arguments (for the CLI's subparser, or :func:`main`)."""
    parser.add_argument("message", nargs="?", help="answer this one message, then exit")
    add_llm_and_speech_arguments(parser)
    out = parser.add_argument_group("output")
    out.add_argument("--out", metavar="WAV", help="also write the audio to this WAV file")
    out.add_argument("--no-play", action="store_true", help="do not play on the speaker")
    out.add_argument("--device", help="output device index or name")


def run(args: argparse.Namespace) -> int:
    """Run the demo with parsed :func:`add_arguments` arguments; returns the exit status."""
    import openai

    from .bridge import VoiceBridge

    endpoint = choose_llm(args.base_url, args.model, args.api_key)
    device: int | str | None = args.device
    if isinstance(device, str) and device.isdigit():
        device = int(device)
    sinks, where = choose_sinks(args.out, play=not args.no_play, device=device)
    status = sys.stderr
    with contextlib.ExitStack() as stack:
        base_url = endpoint.base_url
        if endpoint.local:
            from .local_llm import LocalLLM

            status.write(f"starting the {endpoint.label}...\n")
            base_url = stack.enter_context(LocalLLM()).base_url
        client = stack.enter_context(
            openai.OpenAI(base_url=base_url, api_key=endpoint.api_key, max_retries=1)
        )
        bridge = stack.enter_context(
            VoiceBridge(
                voice=args.voice,
                model=args.tts_model,
                url=args.url,
                engine=args.engine,
                sinks=sinks,
            )
        )
        bridge.preconnect()  # the WebSocket handshake now, not after the first token
        speech = "embedded local server (offline)" if bridge.server else str(bridge.url)
        status.write(f"LLM: {endpoint.label}, model {endpoint.model}\n")
        status.write(f"speech: {speech}; {where}\n")
        status.flush()
        chat = Chat(
            client, endpoint.model, bridge, system=args.system or None, max_tokens=args.max_tokens
        )
        if args.message is None:
            converse(chat)
            return 0
        report = chat.ask(args.message)
        print(report.summary())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m voicebridge.chat``: the same as ``voicebridge chat``."""
    parser = argparse.ArgumentParser(
        prog="voicebridge chat", description="Talk with an LLM that speaks while it writes."
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return run(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        print(f"voicebridge chat: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
