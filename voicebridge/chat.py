"""``voicebridge chat``: type a message; the LLM's reply streams as text and as speech at once.

The LLM, first that applies:

1. ``--base-url`` / ``--api-key`` given, or ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY`` set: that
   OpenAI-compatible endpoint (model: ``--model``, ``OPENAI_MODEL``, or a default);
2. ``DASHSCOPE_API_KEY`` set: Qwen through DashScope's OpenAI-compatible mode (and the bridge then
   speaks through the real CosyVoice service);
3. nothing set: the embedded SmolLM2-135M-Instruct, run locally (:mod:`voicebridge.local_llm`).

Errors of the LLM client (unreachable, refused, failed mid-stream) come out of :meth:`Chat.ask`
as one :class:`~voicebridge.errors.SourceError` line. The reply is written to ``out`` by the
thread that :class:`~voicebridge.bridge.VoiceBridge` reads the LLM stream on, as it reads it.
An interrupted reply joins the history cut to what the listener heard
(:attr:`~voicebridge.turn.TurnMetrics.heard_text`), so the LLM does not believe it said the rest.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING, TextIO
from urllib.parse import urlsplit

from .cli import (
    add_output_arguments,
    add_speech_arguments,
    add_task_arguments,
    bridge_options,
    choose_sinks,
    error_line,
    http_url,
    positive_int,
)
from .cli import (
    main as cli_main,
)
from .config import resolve_url
from .errors import SourceError, VoiceBridgeError
from .llm import StreamEvent, TextDelta, iter_events
from .progress import StatusLine

if TYPE_CHECKING:
    import openai

    from .bridge import TurnMetrics, VoiceBridge
    from .local_llm import LocalLLM

__all__ = [
    "Chat",
    "LLMEndpoint",
    "TurnReport",
    "add_arguments",
    "add_llm_arguments",
    "choose_llm",
    "converse",
    "describe_speech",
    "main",
    "run",
]

DEFAULT_SYSTEM = (
    "You are a friendly voice assistant. Reply in English, in two or three short sentences."
)
"""The system prompt for a hosted LLM (the local SmolLM2 has its own: ``SYSTEM_PROMPT``)."""
DEFAULT_WAV = "voicebridge-chat.wav"
_OPENAI_MODEL = "gpt-4o-mini"
_QWEN_MODEL = "qwen-plus"
_DASHSCOPE = "https://dashscope.aliyuncs.com/compatible-mode/v1"
_DASHSCOPE_INTL = "https://dashscope-intl.aliyuncs.com/compatible-mode/v1"
_INTERRUPT_JOIN = 5.0  # seconds a barge-in's thread is waited for (interrupt() is bounded by 1 s)


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

    return LLMEndpoint(label="local SmolLM2 (llama.cpp)", model=MODEL_NAME, local=True)


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
        """Send ``text``, show and speak the reply; the reply joins the history, cut to what was
        heard when the turn was interrupted (nothing heard: the question is dropped too). Speech
        errors propagate; the LLM client's errors come as one :class:`SourceError` line."""
        import openai

        self.messages.append({"role": "user", "content": text})
        sent = time.monotonic()
        pieces: list[str] = []
        first_token: list[float] = []
        metrics: TurnMetrics | None = None
        try:
            stream = self.client.chat.completions.create(
                model=self.model,
                messages=self.messages,  # type: ignore[arg-type]
                max_tokens=self.max_tokens,
                stream=True,
            )
            shown = self._show(stream, pieces, first_token)
            metrics = self.bridge.speak(shown)
        except openai.APIError as exc:
            raise SourceError(_llm_error(exc, str(self.client.base_url))) from exc
        except KeyboardInterrupt:  # Ctrl-C pressed twice: the reply is abandoned, none of it kept
            pieces.clear()
            raise
        finally:
            self.out.write("\n")
            self.out.flush()
            reply = "".join(pieces)
            if metrics is not None and metrics.interrupted:
                reply = metrics.heard_text.strip()
            if reply:
                self.messages.append({"role": "assistant", "content": reply})
            else:
                self.messages.pop()  # nothing came back, or none of it was heard
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


def _llm_error(exc: openai.APIError, base_url: str) -> str:
    import openai

    if isinstance(exc, openai.APIConnectionError):
        return f"cannot reach the LLM at {base_url}: {exc}"
    if isinstance(exc, openai.APIStatusError):
        return f"the LLM at {base_url} answered HTTP {exc.status_code}: {exc.message}"
    return f"{type(exc).__name__}: {exc}"


@contextlib.contextmanager
def ctrl_c_barges_in(bridge: VoiceBridge) -> Iterator[None]:
    """While a reply is spoken, Ctrl-C is a barge-in: :meth:`VoiceBridge.interrupt`, and the
    turn returns its metrics (what was heard included). Before the reply starts, or pressed a
    second time, Ctrl-C raises :class:`KeyboardInterrupt` as usual. Only the main thread can
    handle signals: on any other thread this changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    interrupters: list[threading.Thread] = []

    def barge_in(signum: int, frame: FrameType | None) -> None:
        if bridge.progress is None:  # no turn is running: nothing to barge into
            raise KeyboardInterrupt
        signal.signal(signal.SIGINT, previous)
        # Not here: the handler runs on the main thread wherever it stopped, maybe holding a
        # lock that interrupt() takes.
        interrupter = threading.Thread(
            target=bridge.interrupt, name="voicebridge-barge-in", daemon=True
        )
        interrupter.start()
        interrupters.append(interrupter)

    previous = signal.getsignal(signal.SIGINT)
    if previous is None:  # set outside Python: put Python's own back afterwards
        previous = signal.default_int_handler
    signal.signal(signal.SIGINT, barge_in)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        for interrupter in interrupters:
            interrupter.join(_INTERRUPT_JOIN)


def converse(chat: Chat, read_line: Callable[[str], str] = input, *, echo: bool = False) -> None:
    """The interactive loop: until EOF, ``/quit`` or Ctrl-C at the prompt. Ctrl-C during a
    reply interrupts it (barge-in, :func:`ctrl_c_barges_in`) and comes back to the prompt.
    ``echo`` writes each message after its prompt, for input that a terminal does not show (a
    pipe, a file)."""
    out = chat.out
    while True:
        try:
            text = read_line("you> ").strip()
        except (EOFError, KeyboardInterrupt):
            out.write("\n")
            return
        if echo:
            out.write(f"{text}\n")
        if text in ("/quit", "/exit"):
            return
        if not text:
            continue
        out.write("bot> ")
        out.flush()
        try:
            with ctrl_c_barges_in(chat.bridge):
                report = chat.ask(text)
        except KeyboardInterrupt:
            out.write("[interrupted]\n")
            continue
        except SourceError as exc:  # says it is the LLM's ("the LLM stream failed: ...")
            out.write(f"[{exc}]\n")
            continue
        except VoiceBridgeError as exc:
            out.write(f"[speech error: {error_line(exc)}]\n")
            continue
        out.write("[interrupted]\n" if report.interrupted else report.summary() + "\n")
        out.flush()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``voicebridge chat`` arguments."""
    parser.add_argument("message", nargs="?", help="answer this one message, then exit")
    add_llm_arguments(parser)
    add_speech_arguments(parser, model_flag="--tts-model")
    add_task_arguments(parser)
    add_output_arguments(parser)


def add_llm_arguments(parser: argparse.ArgumentParser) -> None:
    """The LLM choice (:func:`choose_llm`), the system prompt and the reply length (``chat`` and
    ``web``)."""
    llm = parser.add_argument_group("LLM (default: OPENAI_*, then DASHSCOPE_API_KEY, then local)")
    llm.add_argument(
        "--base-url", type=http_url, help="OpenAI-compatible base URL (default OPENAI_BASE_URL)"
    )
    llm.add_argument("--model", help="LLM model (default OPENAI_MODEL, qwen-plus, or SmolLM2)")
    llm.add_argument("--api-key", help="LLM API key (default OPENAI_API_KEY)")
    llm.add_argument(
        "--system",
        help="system prompt ('' for none; default: a voice-assistant prompt, or for the local "
        "SmolLM2 the short one it answers right under)",
    )
    llm.add_argument("--max-tokens", type=positive_int, default=200, help="reply length limit")


def describe_speech(bridge: VoiceBridge, url: str | None = None) -> str:
    """Where the bridge's speech is made, for a status line (``url``: what was asked for)."""
    if bridge.server is not None:
        return "embedded local server (offline)"
    address = bridge.url or resolve_url(url)
    host = urlsplit(address).hostname or address
    if host.endswith(".aliyuncs.com"):
        return f"Alibaba Cloud CosyVoice ({host})"
    return f"CosyVoice-compatible service at {address}"


def run(args: argparse.Namespace) -> int:
    """Run the chat with parsed :func:`add_arguments` arguments; returns the exit status."""
    import openai

    from .bridge import VoiceBridge

    endpoint = choose_llm(args.base_url, args.model, args.api_key)
    status = sys.stderr
    with contextlib.ExitStack() as stack:
        llm = None
        if endpoint.local:
            from .local_llm import SYSTEM_PROMPT, LocalLLM

            llm = LocalLLM()  # a missing extra fails here, before anything starts
            system = SYSTEM_PROMPT if args.system is None else args.system
        else:
            system = DEFAULT_SYSTEM if args.system is None else args.system
        sinks, where = choose_sinks(
            args.out, play=not args.no_play, device=args.device, default_wav=DEFAULT_WAV
        )
        bridge = stack.enter_context(VoiceBridge(sinks=sinks, **bridge_options(args)))  # type: ignore[arg-type]
        bridge.preconnect()  # the WebSocket handshake now, not after the first token
        base_url = endpoint.base_url
        if llm is not None:
            live = args.verbose == 0  # a redrawn line and log lines do not mix
            base_url = start_local_llm(stack.enter_context, llm, endpoint.label, status, live)
        client = stack.enter_context(
            openai.OpenAI(base_url=base_url, api_key=endpoint.api_key, max_retries=1)
        )
        status.write(f"LLM: {endpoint.label}, model {endpoint.model}\n")
        status.write(f"speech: {describe_speech(bridge, args.url)}; {where}\n")
        status.flush()
        chat = Chat(
            client, endpoint.model, bridge, system=system or None, max_tokens=args.max_tokens
        )
        if args.message is None:
            converse(chat, echo=not sys.stdin.isatty())
            return 0
        report = chat.ask(args.message)
        print(report.summary())
    return 0


def start_local_llm(
    enter: Callable[[LocalLLM], LocalLLM], llm: LocalLLM, label: str, status: TextIO, live: bool
) -> str:
    """Start ``llm`` through ``enter`` (an ExitStack's ``enter_context``) and return its base URL.
    On a terminal, when ``live``, a redrawn line says what it waits for (the download, then the
    model loading) and for how long; elsewhere one line says so. Either way one line ends it:
    ready, and after how many seconds."""
    from .local_llm import DOWNLOAD_MB, cache_dir, cached_model

    started = time.monotonic()
    downloading = cached_model() is None
    download = f"downloading the local LLM ({DOWNLOAD_MB} MB, once) into {cache_dir()}"

    def waiting() -> str:
        seconds = time.monotonic() - started
        if downloading and cached_model() is None:
            return f"{download}: {seconds:.0f} s"
        return f"starting the {label}: loading the model, {seconds:.1f} s"

    line = StatusLine(status, waiting, enabled=None if live else False)
    if not line.enabled:
        status.write((f"{download}\n" if downloading else "") + f"starting the {label}...\n")
        status.flush()
    with line:
        base_url = enter(llm).base_url
    status.write(f"{label} ready in {time.monotonic() - started:.1f} s\n")
    status.flush()
    return base_url


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m voicebridge.chat``: the same as ``voicebridge chat``."""
    return cli_main(["chat", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
