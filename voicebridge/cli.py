"""The ``voicebridge`` command: ``speak``, ``chat``, ``web``, ``serve``, ``voices``, ``devices``.

With no ``DASHSCOPE_API_KEY`` and no ``--url``, ``speak`` and ``chat`` use the embedded local
server (offline speech); with a key, the real CosyVoice service.

A user error is one line on stderr and an exit status, never a traceback: 2 for a bad argument
(checked before anything connects, the run-task options by the library's own rules), 1 for what
goes wrong later, 130 for Ctrl-C. The library's own log stays silent unless ``-v`` is given, so
an error is printed once.

``speak`` shows a live progress line while stderr is a terminal (:mod:`voicebridge.progress`)
and ends with a one-line summary (``-q``: neither). Files it writes besides the WAV (subtitles,
word timings) appear whole once the turn is done, or not at all.
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import json
import logging
import os
import secrets
import stat
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO, NoReturn
from urllib.parse import urlsplit

from . import __version__
from .audio import MeteredSink, Sink, WavFileSink
from .bridge import TurnMetrics, VoiceBridge
from .errors import AudioError, ConfigurationError, TaskFailedError, VoiceBridgeError
from .options import synthesis_parameters
from .progress import StatusLine, describe_speaking
from .protocol import LANGUAGE_HINTS, MAX_INSTRUCTION_CHARACTERS, SAMPLE_RATES, SEED_RANGE
from .server.lifecycle import ENGINE_NAMES
from .subtitles import build_cues, format_srt, format_vtt, subtitle_format, words_json
from .text import speakable
from .voices import DEFAULT_MODEL, DEFAULT_VOICE, MODEL_VOICES, model_voices

__all__ = [
    "add_output_arguments",
    "add_speech_arguments",
    "add_task_arguments",
    "bridge_options",
    "choose_sinks",
    "error_line",
    "http_url",
    "main",
    "positive_int",
]

_READ_SIZE = 4096


class _Parser(argparse.ArgumentParser):
    """argparse with its error on one line (no usage block): ``prog: error: ... (see --help)``."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# --------------------------------------------------------------------------- argument types


def _service_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a WebSocket URL (ws://host:port/path or wss://...)"
        )
    return text


def http_url(text: str) -> str:
    """An argparse type: an http(s) URL (an OpenAI-compatible base URL)."""
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"{text!r} is not an http:// or https:// URL")
    return text


def _between(
    low: float, high: float, kind: Callable[[str], float] = float
) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is out of range: {low:g} to {high:g}")
        return value

    return parse


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    return int(_between(1, sys.maxsize, int)(text))


def _json_object(text: str) -> dict[str, object]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("a JSON object is expected, e.g. '{\"replace\": [...]}'")
    return value


def _new_file(text: str) -> str:
    """A file to create: its folder must exist, and it must not be a folder."""
    folder = os.path.dirname(os.path.abspath(text))
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text!r} is a directory")
    if not os.path.isdir(folder):
        raise argparse.ArgumentTypeError(f"no such directory: {folder!r}")
    return text


def _subtitle_file(text: str) -> str:
    try:
        subtitle_format(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return _new_file(text)


def _onnx_file(text: str) -> str:
    if not Path(text).is_file():
        raise argparse.ArgumentTypeError(f"no such file: {text!r} (a Piper voice, PATH.onnx)")
    return text


# --------------------------------------------------------------------------- shared by speak/chat


def add_speech_arguments(parser: argparse.ArgumentParser, *, model_flag: str = "--model") -> None:
    """The voice, its parameters and where the speech is made (``speak`` and ``chat``)."""
    group = parser.add_argument_group("speech")
    group.add_argument(
        "--voice",
        default=DEFAULT_VOICE,
        help=f"CosyVoice voice (default {DEFAULT_VOICE}, female, Mandarin Chinese and English); "
        "`voicebridge voices` lists them with language and gender",
    )
    group.add_argument(
        model_flag,
        dest="tts_model",
        default=DEFAULT_MODEL,
        help=f"CosyVoice model (default {DEFAULT_MODEL})",
    )
    group.add_argument(
        "--sample-rate",
        type=int,
        default=22050,
        choices=SAMPLE_RATES,
        metavar="HZ",
        help="8000, 16000, 22050 (default), 24000, 44100 or 48000",
    )
    group.add_argument("--volume", type=_between(0, 100, int), default=50, help="0-100 (50)")
    group.add_argument("--rate", type=_between(0.5, 2.0), default=1.0, help="speed 0.5-2.0 (1)")
    group.add_argument("--pitch", type=_between(0.5, 2.0), default=1.0, help="0.5-2.0 (1)")
    group.add_argument(
        "--url",
        type=_service_url,
        help="speech service (ws:// or wss://; default DASHSCOPE_WEBSOCKET_BASE_URL, the real "
        "service when DASHSCOPE_API_KEY is set, else the embedded local server)",
    )
    _add_engine_arguments(group)


def _add_engine_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--engine",
        choices=ENGINE_NAMES,
        help="the local server's speech engine (default espeak; piper needs --piper-voice)",
    )
    group.add_argument(
        "--piper-voice",
        type=_onnx_file,
        metavar="PATH.onnx",
        help="a Piper voice file for --engine piper (the `piper` extra)",
    )


def add_task_arguments(parser: argparse.ArgumentParser) -> None:
    """The optional run-task parameters (``speak`` and ``chat``); the library checks them
    (:func:`voicebridge.options.synthesis_parameters`) before anything connects."""
    group = parser.add_argument_group("run-task options (sent with every task)")
    group.add_argument(
        "--language-hint",
        dest="language_hints",
        action="append",
        metavar="CODE",
        help=f"the text's language: {', '.join(LANGUAGE_HINTS)} (the service reads the first; "
        "the local server picks its espeak-ng voice by it)",
    )
    low, high = SEED_RANGE
    group.add_argument("--seed", type=int, help=f"sampling seed, {low}-{high}")
    group.add_argument(
        "--instruction",
        metavar="TEXT",
        help=f"a style instruction for voices that take one (at most "
        f"{MAX_INSTRUCTION_CHARACTERS} characters)",
    )
    group.add_argument(
        "--hot-fix",
        type=_json_object,
        metavar="JSON",
        help='pronunciations and replacements: \'{"pronunciation": [{"word": "pinyin"}], '
        '"replace": [{"word": "replacement"}]}\'',
    )
    group.add_argument(
        "--markdown-filter",
        dest="enable_markdown_filter",
        action=argparse.BooleanOptionalAction,
        help="ask the service to filter Markdown out (default: the service's own default)",
    )


def _check_task_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """The library's check of every synthesis option, as an argument error (one line, 2)."""
    try:
        synthesis_parameters(**_synthesis_options(args))
    except ConfigurationError as exc:
        parser.error(str(exc))


def _synthesis_options(args: argparse.Namespace) -> dict[str, Any]:
    """The synthesis options: :func:`~voicebridge.options.synthesis_parameters`' arguments."""
    return {
        "voice": args.voice,
        "model": args.tts_model,
        "sample_rate": args.sample_rate,
        "volume": args.volume,
        "rate": args.rate,
        "pitch": args.pitch,
        "language_hints": args.language_hints,
        "seed": args.seed,
        "instruction": args.instruction,
        "hot_fix": args.hot_fix,
        "enable_markdown_filter": args.enable_markdown_filter,
    }


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the audio goes (``speak`` and ``chat``); see :func:`choose_sinks`."""
    out = parser.add_argument_group("output")
    out.add_argument("--out", metavar="WAV", help="also write the audio to this WAV file")
    out.add_argument(
        "--no-play", action="store_true", help="do not play; write the WAV only (--out or default)"
    )
    out.add_argument("--device", help="output device index or name (see `voicebridge devices`)")


def _engine(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Resolve ``--engine``/``--piper-voice`` together (piper needs a voice, a voice is piper's)."""
    if args.piper_voice and args.engine in (None, "piper"):
        args.engine = "piper"
    elif args.piper_voice:
        parser.error(f"--piper-voice is for --engine piper, not --engine {args.engine}")
    elif args.engine == "piper":
        parser.error("--engine piper needs --piper-voice PATH.onnx")
    args.engine = args.engine or "espeak"


def bridge_options(args: argparse.Namespace) -> dict[str, object]:
    """``VoiceBridge`` keyword arguments from :func:`add_speech_arguments`' and
    :func:`add_task_arguments`' arguments."""
    return {
        **_synthesis_options(args),
        "url": args.url,
        "engine": args.engine,
        "piper_voice": args.piper_voice,
    }


def choose_sinks(
    out: str | None, *, play: bool, device: str | None, default_wav: str
) -> tuple[list[Sink], str]:
    """The one sink policy of ``speak`` and ``chat``: the speaker when there is one (and
    ``out`` too if given); with no speaker, or ``play`` False, a WAV file: ``out``, else
    ``default_wav``. Returns the sinks and one line that says where the audio goes and, when
    it falls back to a file, why."""
    sinks: list[Sink] = []
    where: list[str] = []
    missing = ""
    if play:
        chosen: int | str | None = int(device) if device and device.isdigit() else device
        try:
            _probe_output_device(chosen)
            from .audio.player import PyAudioSink

            sinks.append(PyAudioSink(device=chosen))
            where.append("played on the speaker")
        except AudioError as exc:
            missing = f"not playing ({exc})"
    if out is None and not sinks:
        out = default_wav
    if out is not None:
        sinks.append(WavFileSink(out))
        where.append(f"written to {out}")
    line = "audio " + " and ".join(where)
    return sinks, f"{missing}: {line}" if missing else line


def _probe_output_device(device: int | str | None) -> None:
    """Raise :class:`AudioError` (one line) unless PyAudio is installed and ``device`` exists."""
    from .audio.devices import open_pyaudio, resolve_output_device

    pa = open_pyaudio()
    try:
        resolve_output_device(pa, device)
    finally:
        pa.terminate()


def error_line(exc: BaseException) -> str:
    """The one line a user reads for ``exc``. The real service answers an unknown voice (or one
    of another model) with a bare "Engine return error code: 418": say what to check."""
    text = str(exc)
    if (
        isinstance(exc, TaskFailedError)
        and "418" in exc.message
        and "voicebridge voices" not in text
    ):
        text += " (is --voice one of the model's voices? `voicebridge voices` lists them)"
    return text


# --------------------------------------------------------------------------- speak


def read_stream(stream: BinaryIO) -> Iterator[str]:
    """Yield text from ``stream`` as soon as it arrives (not line by line), decoding UTF-8
    across read boundaries; a pipe's producer is heard while it is still writing."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    fileno = stream.fileno()
    while True:
        data = os.read(fileno, _READ_SIZE)
        text = decoder.decode(data, final=not data)
        if text:
            yield text
        if not data:
            return


def _text_source(args: argparse.Namespace) -> tuple[object, int | None]:
    """What to speak and how many characters of it will be spoken, when that is known (an
    argument, a regular file: read whole; a pipe or stdin: streamed as it arrives, unknown).
    The count is of the speakable text: what the bridge sends and counts as spoken."""
    if args.text is not None:
        return args.text, len(speakable(args.text))
    if args.file not in (None, "-"):
        try:
            handle = open(args.file, "rb")  # noqa: SIM115 - closed when the stream ends
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                return _closing(read_stream(handle), handle), None
            with handle:
                text = handle.read().decode("utf-8", errors="replace")
        except OSError as exc:
            raise VoiceBridgeError(f"cannot read {args.file!r}: {exc.strerror}") from exc
        return text, len(speakable(text))
    if args.file is None and sys.stdin.isatty():
        raise VoiceBridgeError("give TEXT, --file PATH, or pipe text into stdin")
    return read_stream(sys.stdin.buffer), None


def _closing(texts: Iterator[str], handle: BinaryIO) -> Iterator[str]:
    with handle:
        yield from texts


def format_metrics(metrics: TurnMetrics, wall_seconds: float) -> str:
    """The one-line summary of a turn (``wall_seconds``: how long the command took to speak)."""

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value * 1000:.0f} ms"

    rtf = "-" if metrics.real_time_factor is None else f"{metrics.real_time_factor:.2f}"
    return (
        f"spoke {len(metrics.text):,} characters, {metrics.audio_seconds:.1f} s of audio in "
        f"{wall_seconds:.1f} s (real-time factor {rtf}), first audio after "
        f"{ms(metrics.time_to_first_audio)}, {metrics.billed_characters:,} billed characters, "
        f"{len(metrics.task_ids)} task(s)" + (", interrupted" if metrics.interrupted else "")
    )


def _cmd_speak(args: argparse.Namespace) -> int:
    source, total = _text_source(args)
    sinks, where = choose_sinks(
        args.out, play=not args.no_play, device=args.device, default_wav="voicebridge-speak.wav"
    )
    realtime = any(isinstance(sink, MeteredSink) for sink in sinks)
    options = bridge_options(args)
    if args.subtitles or args.words:
        options["word_timestamps"] = True
    started = time.monotonic()
    with VoiceBridge(sinks=sinks, **options) as bridge:  # type: ignore[arg-type]

        def status() -> str:
            unplayed = bridge.pipeline.buffered_seconds if realtime else None
            return describe_speaking(bridge.progress, total, unplayed)

        quiet = args.quiet or args.verbose > 0  # a redrawn line and log lines do not mix
        with StatusLine(sys.stderr, status, enabled=False if quiet else None):
            metrics = bridge.speak(source)  # Ctrl-C: speak() barges in, main() reports it
    wall = time.monotonic() - started
    written = _write_timings(args, metrics)
    if not args.quiet:
        summary = "; ".join([format_metrics(metrics, wall), where, *written])
        print(f"voicebridge: {summary}", file=sys.stderr)
    return 0


def _write_timings(args: argparse.Namespace, metrics: TurnMetrics) -> list[str]:
    """Write ``--subtitles`` and ``--words`` (both or neither); say what was written."""
    files: dict[str, str] = {}
    if (args.subtitles or args.words) and metrics.text.strip() and not metrics.words:
        raise VoiceBridgeError(
            "the speech service sent no word timings, so no subtitles or word file was written"
        )
    if args.subtitles:
        cues = build_cues(metrics.text, metrics.words, audio_end=metrics.audio_seconds)
        form = format_srt if subtitle_format(args.subtitles) == "srt" else format_vtt
        files[args.subtitles] = form(cues)
    if args.words:
        files[args.words] = words_json(metrics.words)
    publish_files(files)
    return [
        f"{'subtitles' if path == args.subtitles else 'words'} written to {path}" for path in files
    ]


def publish_files(files: dict[str, str]) -> None:
    """Write each ``path: text`` (UTF-8) into a hidden file beside it, and rename them into place
    once all are written: a file appears whole or not at all; an error is raised as one line."""
    parts: dict[str, str] = {}
    path = ""  # the file being written: an error names it, not its hidden part
    try:
        for path, text in files.items():
            folder, name = os.path.split(os.path.abspath(path))
            part = os.path.join(folder, f".{name}.{secrets.token_hex(4)}.part")
            with open(part, "x", encoding="utf-8", newline="\n") as file:  # the umask's mode
                parts[path] = part
                file.write(text)
        for path, part in parts.items():
            os.replace(part, path)
    except OSError as exc:
        raise VoiceBridgeError(f"cannot write {path!r}: {exc.strerror}") from exc
    finally:
        for part in parts.values():
            with contextlib.suppress(OSError):
                os.unlink(part)


# --------------------------------------------------------------------------- serve, voices, devices


def _cmd_serve(args: argparse.Namespace) -> int:
    from .server import serve

    api_key = args.api_key or os.environ.get("VOICEBRIDGE_SERVER_API_KEY") or None
    extra = {"piper_voice": args.piper_voice} if args.piper_voice else {}
    serve(host=args.host, port=args.port, api_key=api_key, engine=args.engine, **extra)
    return 0


def _cmd_voices(args: argparse.Namespace) -> int:
    models = [args.model] if args.model else [DEFAULT_MODEL, "cosyvoice-v1"]
    for model in models:
        print(f"{model}:")
        for voice in model_voices(model):
            default = voice.name == DEFAULT_VOICE and model == DEFAULT_MODEL
            mark = "  (default)" if default else ""
            print(f"  {voice.name:<18} {voice.describe()}{mark}")
    if not args.model:
        print(
            "cosyvoice-v3-flash, cosyvoice-v3-plus: the local server takes the cosyvoice-v2 voices"
        )
    return 0


def _cmd_devices(args: argparse.Namespace) -> int:
    from .audio.devices import list_output_devices

    devices = list_output_devices()
    if not devices:
        print("no audio output devices")
        return 1
    for device in devices:
        print(device)
    return 0


# --------------------------------------------------------------------------- the parser


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="voicebridge", description="Make an LLM speak while it is still writing.")
    parser.add_argument("--version", action="version", version=f"voicebridge {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="show the library's log (-vv: debug)"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    speak = commands.add_parser("speak", help="speak text from an argument, a file or stdin")
    speak.add_argument("text", nargs="?", help="the text (default: read stdin as it arrives)")
    speak.add_argument("--file", help="read text from this file ('-' for stdin)")
    add_speech_arguments(speak)
    add_task_arguments(speak)
    add_output_arguments(speak)
    timing = speak.add_argument_group("word timing (written once the text is spoken)")
    timing.add_argument(
        "--subtitles",
        type=_subtitle_file,
        metavar="FILE.srt|FILE.vtt",
        help="subtitles timed by the words (SubRip or WebVTT, by the extension)",
    )
    timing.add_argument(
        "--words",
        type=_new_file,
        metavar="FILE.json",
        help='each word\'s time: [{"text", "start", "end"}], seconds from the start of the audio',
    )
    speak.add_argument(
        "-q", "--quiet", action="store_true", help="no progress line and no summary line"
    )
    speak.set_defaults(handler=_cmd_speak, parser=speak)

    from .chat import add_arguments as add_chat_arguments
    from .chat import run as run_chat

    chat = commands.add_parser("chat", help="talk with an LLM that speaks while it writes")
    add_chat_arguments(chat)
    chat.set_defaults(handler=run_chat, parser=chat)

    from .web import add_arguments as add_web_arguments
    from .web import run as run_web

    web = commands.add_parser("web", help="the live demo in a browser: type, hear, see each word")
    add_web_arguments(web)
    web.set_defaults(handler=run_web, parser=web)

    serve = commands.add_parser("serve", help="run the local CosyVoice-compatible server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8765)
    serve.add_argument(
        "--api-key", help="accept only this key (default VOICEBRIDGE_SERVER_API_KEY; none: any key)"
    )
    _add_engine_arguments(serve.add_argument_group("speech"))
    serve.set_defaults(handler=_cmd_serve, parser=serve)

    voices = commands.add_parser("voices", help="list the voices of each model")
    voices.add_argument("--model", choices=list(MODEL_VOICES), help="only this model's voices")
    voices.set_defaults(handler=_cmd_voices)

    devices = commands.add_parser("devices", help="list audio output devices")
    devices.set_defaults(handler=_cmd_devices)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if hasattr(args, "engine"):
        _engine(args.parser, args)
    if hasattr(args, "seed"):
        _check_task_options(args.parser, args)
    level = {0: logging.CRITICAL + 1, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        result: int = args.handler(args)
        return result
    except KeyboardInterrupt:
        print("voicebridge: interrupted", file=sys.stderr)
        return 130
    except (VoiceBridgeError, OSError) as exc:
        print(f"voicebridge: {error_line(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
