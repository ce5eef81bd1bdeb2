"""``voicebridge web``: the live demo in a browser. Type; the reply streams in as text and as
speech at once, each word lit while it is said; Stop cuts the voice at once.

One page and one WebSocket from one ``websockets`` server (:mod:`.server`), bound to loopback
by default; one session, with its own VoiceBridge, per WebSocket (:mod:`.session`); the protocol
in :mod:`.messages`; the page is plain HTML, CSS and JS shipped as package data (``static/``),
with no build step and nothing fetched from elsewhere, so it works offline.

The LLM is chosen as for ``voicebridge chat`` (:func:`voicebridge.chat.choose_llm`); speech comes
from one embedded local server shared by the sessions, unless ``--url``, ``DASHSCOPE_API_KEY`` or
``DASHSCOPE_WEBSOCKET_BASE_URL`` say otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from ..chat import DEFAULT_SYSTEM, add_llm_arguments, choose_llm
from ..cli import add_speech_arguments, positive_int
from ..config import resolve_api_key
from ..errors import ConfigurationError
from ..voices import model_voices
from .messages import WebLimits
from .server import WebServer
from .session import SessionConfig

__all__ = ["SessionConfig", "WebLimits", "WebServer", "add_arguments", "run"]

_LOOPBACK = ("127.0.0.1", "::1", "localhost")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``voicebridge web`` arguments: ``chat``'s LLM and speech choices (the voice and rate
    are the page's defaults), and the server's own."""
    add_llm_arguments(parser)
    add_speech_arguments(parser, model_flag="--tts-model")
    web = parser.add_argument_group("web demo")
    web.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    web.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free)")
    web.add_argument(
        "--max-sessions", type=positive_int, default=8, help="browser tabs served at once (8)"
    )


def run(args: argparse.Namespace) -> int:
    """Serve the demo until Ctrl-C or SIGTERM; returns the exit status. A bad argument or a busy
    port raises :class:`~voicebridge.errors.ConfigurationError` (one line)."""
    voices = model_voices(args.tts_model)
    if voices and args.voice not in {v.name for v in voices}:
        raise ConfigurationError(f"voice {args.voice!r} does not exist for {args.tts_model}")
    embedded = (
        args.url is None
        and resolve_api_key() is None
        and not os.environ.get("DASHSCOPE_WEBSOCKET_BASE_URL")
    )
    endpoint = choose_llm(args.base_url, args.model, args.api_key)
    with contextlib.ExitStack() as stack:
        system = DEFAULT_SYSTEM
        if endpoint.local:
            from ..local_llm import SYSTEM_PROMPT, LocalLLM

            system = SYSTEM_PROMPT
            print(f"starting the {endpoint.label}...", file=sys.stderr, flush=True)
            endpoint = replace(endpoint, base_url=stack.enter_context(LocalLLM()).base_url)
        config = SessionConfig(
            llm=endpoint,
            voices=voices,
            voice=args.voice,
            rate=args.rate,
            volume=args.volume,
            pitch=args.pitch,
            sample_rate=args.sample_rate,
            tts_model=args.tts_model,
            speech_url=args.url,
            speech_label=args.url or "the CosyVoice service",
            system=(system if args.system is None else args.system) or None,
            max_tokens=args.max_tokens,
            limits=WebLimits(max_sessions=args.max_sessions),
        )
        server = WebServer(
            config,
            host=args.host,
            port=args.port,
            embedded_engine=(args.engine or "espeak") if embedded else None,
            piper_voice=args.piper_voice,
        )
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_serve(server))
    return 0


async def _serve(server: WebServer) -> None:
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows loops
        loop.add_signal_handler(signal.SIGTERM, stopping.set)
    # Each running turn holds one executor thread (the bridge waits for its worker there), and
    # bridges are built and closed there: room for every session at once.
    workers = 2 * server.config.limits.max_sessions + 4
    loop.set_default_executor(ThreadPoolExecutor(workers, thread_name_prefix="voicebridge-web"))
    async with server:
        config = server.config
        print(
            f"voicebridge web: open {server.url} (Ctrl-C stops)\n"
            f"  LLM: {config.llm.label}, model {config.llm.model}\n"
            f"  speech: {config.speech_label}",
            file=sys.stderr,
            flush=True,
        )
        if server.host not in _LOOPBACK:
            print(
                f"  warning: listening on {server.host}: whoever reaches this port uses this "
                "server's LLM and speech service",
                file=sys.stderr,
                flush=True,
            )
        await stopping.wait()
