"""The local server's listener: the HTTP handshake checks (path, key) and the accepted sockets.

:class:`LocalServer` owns the engine (through :mod:`.lifecycle`), the one
:class:`EngineScheduler` that shares it between connections, and the transcripts; each accepted
socket becomes a :class:`~voicebridge.server.connection.Connection` with its own
:class:`ServerProtocol`.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from websockets.asyncio.server import Server, ServerConnection
from websockets.asyncio.server import serve as websockets_serve
from websockets.http11 import Request, Response

from ..errors import ConfigurationError
from ..voices import voice_language
from .connection import Connection, Transcript
from .engines import Engine
from .faults import FaultPlan
from .lifecycle import check_engine_choice, open_engine
from .scheduler import EngineScheduler
from .service import ServerLimits, ServerProtocol
from .words import WordReporting

__all__ = ["PATH", "LocalServer"]

PATH = "/api-ws/v1/inference"
_CLOSE_TIMEOUT = 2.0  # seconds a closing peer gets to answer the close frame and drop TCP
_JOIN_TIMEOUT = 15.0  # seconds the synthesis thread gets to stop

# websockets logs every request header at DEBUG (clients' Authorization included) and each
# connection at INFO: its logger here says only warnings and errors, so no log level shows a
# client's key (the server's own log says what matters).
_WIRE_LOG = logging.getLogger("voicebridge.server.wire")
_WIRE_LOG.setLevel(logging.WARNING)


class LocalServer:
    """CosyVoice-compatible server on ``ws://host:port/api-ws/v1/inference`` (asyncio).

    ``api_key=None`` (or empty) accepts any key. ``engine`` is ``"espeak"`` (default),
    ``"tone"``, ``"text"``, ``"piper"`` (with ``piper_voice=PATH.onnx``) or an :class:`Engine`
    object (owned by the caller). ``port=0`` picks a free port; read :attr:`url`. ``words``
    places word timestamps (see :class:`WordReporting`).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        engine: str | Engine = "espeak",
        limits: ServerLimits | None = None,
        faults: FaultPlan | None = None,
        piper_voice: str | Path | None = None,
        words: WordReporting | None = None,
    ) -> None:
        check_engine_choice(engine, piper_voice)
        self.host = host
        self.port = port
        self.limits = limits or ServerLimits()
        self.faults = faults or FaultPlan()
        self.words = words or WordReporting()
        self._api_key = api_key.encode() if api_key else None  # compared as UTF-8 bytes
        self._engine_choice = engine
        self._piper_voice = piper_voice
        self._engine: Engine | None = None
        self._close_engine: Callable[[], None] = lambda: None
        self._scheduler: EngineScheduler | None = None
        self._server: Server | None = None
        self._transcripts: list[Transcript] = []
        self._handshakes_refused = 0
        self._accepted = 0

    def __repr__(self) -> str:  # never shows the key
        return f"LocalServer(url={self.url!r}, engine={self._engine_choice!r})"

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        host = f"[{host}]" if ":" in host else host
        return f"ws://{host}:{self.port}{PATH}"

    @property
    def transcripts(self) -> list[Transcript]:
        """A copy of the transcripts, one per accepted connection (call on the loop's thread)."""
        return [
            Transcript(t.connection, {k: list(v) for k, v in t.tasks.items()})
            for t in self._transcripts
        ]

    async def start(self) -> None:
        """Open the engine and listen; :attr:`port` is the real port afterwards."""
        if self._server is not None:
            return
        self._engine, self._close_engine = open_engine(self._engine_choice, self._piper_voice)
        self._scheduler = EngineScheduler(self._engine)
        try:
            self._server = await websockets_serve(
                self._handle,
                self.host,
                self.port,
                process_request=self._check_request,
                compression=None,
                close_timeout=_CLOSE_TIMEOUT,
                logger=_WIRE_LOG,
            )
        except OSError as exc:
            await self.stop()
            raise ConfigurationError(f"cannot listen on {self.host}:{self.port}: {exc}") from exc
        self.port = next(iter(self._server.sockets)).getsockname()[1]

    async def __aenter__(self) -> LocalServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def stop(self) -> None:
        """Close every connection, wait for their coroutines, join the synthesis thread, close
        the engine."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()
        if self._scheduler is not None:
            self._scheduler.close(_JOIN_TIMEOUT)
            self._scheduler = None
        if self._engine is not None:
            self._close_engine()
        self._engine = None
        self._close_engine = lambda: None

    def _check_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path not in (PATH, PATH + "/"):
            return connection.respond(404, "Not Found\n")
        if self._handshakes_refused < self.faults.refuse_handshakes:
            self._handshakes_refused += 1
            return connection.respond(self.faults.refuse_status, "Refused (fault injection)\n")
        if self._api_key is None or _bearer_matches(request, self._api_key):
            return None
        body = {
            "code": "InvalidApiKey",
            "message": "Invalid API-key provided.",
            "request_id": str(uuid.uuid4()),
        }
        response = connection.respond(401, json.dumps(body))
        del response.headers["Content-Type"]
        response.headers["Content-Type"] = "application/json"
        return response

    async def _handle(self, websocket: ServerConnection) -> None:
        assert self._scheduler is not None and self._engine is not None
        self._accepted += 1
        number = self._accepted
        plan = self.faults if self.faults.applies_to(number) else FaultPlan()
        limits = self.limits
        if plan.idle_timeout is not None:
            limits = replace(limits, idle_timeout=plan.idle_timeout)
        transcript = Transcript(number)
        self._transcripts.append(transcript)
        protocol = ServerProtocol(
            now=asyncio.get_running_loop().time(),
            limits=limits,
            voice_language=voice_language,
            formats=self._engine.formats,
            faults=plan,
            words=self.words,
        )
        await Connection(websocket, protocol, self._scheduler, plan, transcript).run()


def _bearer_matches(request: Request, api_key: bytes) -> bool:
    """Constant-time check of ``Authorization: Bearer <key>`` on the header's raw bytes (which
    websockets decodes as ISO-8859-1), so any byte in a key is a mismatch, never an error."""
    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    given = token.strip().encode("iso-8859-1")
    return scheme.lower() == "bearer" and hmac.compare_digest(given, api_key)
