"""The ``voicebridge`` command: ``speak``, ``serve``, ``devices``, ``chat``.

With no ``DASHSCOPE_API_KEY`` and no ``--url``, ``speak`` and ``chat`` use the embedded local
server (offline speech); with a key, the real CosyVoice service.
"""

from __future__ import annotations

import argparse
import codecs
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from typing import BinaryIO

from . import __version__
from .audio import Sink, WavFileSink
from .bridge import TurnMetrics, VoiceBridge
from .errors import AudioError, VoiceBridgeError

__all__ = ["main"]

_READ_SIZE = 4096


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


def _text_source(args: argparse.Namespace) -> object:
    if args.text is not None:
        return args.text
    if args.file not in (None, "-"):
        handle = open(args.file, "rb")  # noqa: SIM115 - closed when the stream ends
        return _closing(read_stream(handle), handle)
    if args.file is None and sys.stdin.isatty():
        raise SystemExit("voicebridge speak: give TEXT, --file PATH, or pipe text into stdin")
    return read_stream(sys.stdin.buffer)


def _closing(texts: Iterator[str], handle: BinaryIO) -> Iterator[str]:
    with handle:
        yield from texts


def _sinks(args: argparse.Namespace) -> list[Sink]:
    sinks: list[Sink] = []
    if args.out:
        sinks.append(WavFileSink(args.out))
    if not args.no_play:
        device = int(args.device) if args.device and args.device.isdigit() else args.device
        try:
            _probe_output_device(device)
            from .audio.player import PyAudioSink

            sinks.append(PyAudioSink(device=device))
        except AudioError as exc:
            if not sinks:
                raise
            print(f"voicebridge: not playing ({exc}); writing {args.out}", file=sys.stderr)
    if not sinks:
        raise AudioError("nothing to do: --no-play without --out")
    return sinks


def _probe_output_device(device: int | str | None) -> None:
    """Raise :class:`AudioError` (one line) unless PyAudio is installed and ``device`` exists."""
    from .audio.devices import open_pyaudio, resolve_output_device

    pa = open_pyaudio()
    try:
        resolve_output_device(pa, device)
    finally:
        pa.terminate()


def _bridge_options(args: argparse.Namespace) -> dict[str, object]:
    return {
        "voice": args.voice,
        "model": args.model,
        "sample_rate": args.sample_rate,
        "volume": args.volume,
        "rate": args.rate,
        "pitch": args.pitch,
        "url": args.url,
        "engine": args.engine,
    }


def format_metrics(metrics: TurnMetrics) -> str:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value * 1000:.0f} ms"

    return (
        f"audio {metrics.audio_seconds:.2f} s, first audio after {ms(metrics.time_to_first_audio)}"
        f", {metrics.billed_characters} billed characters, {len(metrics.task_ids)} task(s)"
        + (", interrupted" if metrics.interrupted else "")
    )


def _cmd_speak(args: argparse.Namespace) -> int:
    source = _text_source(args)
    bridge = VoiceBridge(sinks=_sinks(args), **_bridge_options(args))  # type: ignore[arg-type]
    try:
        metrics = bridge.speak(source)  # Ctrl-C: speak() barges in, main() reports it
    finally:
        bridge.close()
    if not args.quiet:
        print(f"voicebridge: {format_metrics(metrics)}", file=sys.stderr)
        if args.out:
            print(f"voicebridge: wrote {args.out}", file=sys.stderr)
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from .server import serve

    api_key = args.api_key or os.environ.get("VOICEBRIDGE_SERVER_API_KEY") or None
    serve(host=args.host, port=args.port, api_key=api_key, engine=args.engine)
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


def _add_voice_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("voice")
    group.add_argument("--voice", default="longxiaochun_v2", help="CosyVoice voice name")
    group.add_argument("--model", default="cosyvoice-v2")
    group.add_argument("--sample-rate", type=int, default=22050, help="Hz (default 22050)")
    group.add_argument("--volume", type=int, default=50, help="0-100 (default 50)")
    group.add_argument("--rate", type=float, default=1.0, help="speech rate 0.5-2.0")
    group.add_argument("--pitch", type=float, default=1.0, help="pitch 0.5-2.0")
    group.add_argument(
        "--url", help="service URL (default: DASHSCOPE_WEBSOCKET_BASE_URL, or the embedded server)"
    )
    group.add_argument(
        "--engine", default="espeak", choices=("espeak", "tone"), help="embedded server engine"
    )
    out = parser.add_argument_group("output")
    out.add_argument("--out", metavar="WAV", help="also write the audio to this WAV file")
    out.add_argument("--no-play", action="store_true", help="do not play on the speaker")
    out.add_argument("--device", help="output device index or name (see `voicebridge devices`)")
    out.add_argument("-q", "--quiet", action="store_true", help="no metrics line")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voicebridge", description="Make an LLM speak while it is still writing."
    )
    parser.add_argument("--version", action="version", version=f"voicebridge {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log more (-vv: debug)")
    commands = parser.add_subparsers(dest="command", required=True)

    speak = commands.add_parser("speak", help="speak text from an argument, a file or stdin")
    speak.add_argument("text", nargs="?", help="the text (default: read stdin as it arrives)")
    speak.add_argument("--file", help="read text from this file ('-' for stdin)")
    _add_voice_options(speak)
    speak.set_defaults(handler=_cmd_speak)

    serve = commands.add_parser("serve", help="run the local CosyVoice-compatible server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8765)
    serve.add_argument(
        "--api-key", help="accept only this key (default VOICEBRIDGE_SERVER_API_KEY; none: any key)"
    )
    serve.add_argument("--engine", default="espeak", choices=("espeak", "tone"))
    serve.set_defaults(handler=_cmd_serve)

    from .chat import add_arguments as add_chat_arguments
    from .chat import run as run_chat

    chat = commands.add_parser("chat", help="talk with an LLM that speaks while it writes")
    add_chat_arguments(chat)
    chat.set_defaults(handler=run_chat)

    devices = commands.add_parser("devices", help="list audio output devices")
    devices.set_defaults(handler=_cmd_devices)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        result: int = args.handler(args)
        return result
    except KeyboardInterrupt:
        print("voicebridge: interrupted", file=sys.stderr)
        return 130
    except (VoiceBridgeError, OSError) as exc:
        print(f"voicebridge: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
