"""The demo's HTTP + WebSocket server: one ``websockets`` server answers the page's plain GETs
(``process_request``) and its WebSocket (``/ws``), one :class:`WebSession` per connection.

Bounded: at most ``limits.max_sessions`` sessions at once (one more gets an error message and a
1013 close), frames above ``limits.max_frame_bytes`` close their connection (1009), every other
bad message is answered by its session. A WebSocket from another origin is refused (403), so a
web page elsewhere cannot use this server's LLM and speech. With ``embedded_engine`` set, one
local speech server (:class:`~voicebridge.server.LocalServer`) on the same loop serves every
session.
"""

from __future__ import annotations

import email.utils
import logging
from dataclasses import replace
from importlib import resources
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from websockets.asyncio.server import Server, ServerConnection
from websockets.asyncio.server import serve as websockets_serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from ..errors import ConfigurationError
from .messages import encode
from .session import SessionConfig, WebSession

if TYPE_CHECKING:
    import openai

    from ..server import LocalServer

__all__ = ["WS_PATH", "WebServer"]

log = logging.getLogger(__name__)

WS_PATH = "/ws"
_PAGES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/player.js": ("player.js", "text/javascript; charset=utf-8"),
    "/icon.svg": ("icon.svg", "image/svg+xml"),
}
_SECURITY_HEADERS = [
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Content-Security-Policy", "default-src 'self'; object-src 'none'; frame-ancestors 'none'"),
]
_TRY_AGAIN_LATER = 1013


def _static_files() -> dict[str, tuple[str, bytes]]:
    """Path -> (content type, body), read once from the package data."""
    folder = resources.files(__package__).joinpath("static")
    files = {}
    for path, (name, kind) in _PAGES.items():
        files[path] = (kind, folder.joinpath(name).read_bytes())
    return files


class WebServer:
    """``async with WebServer(config) as server:`` serves ``server.url`` until the block ends.

    ``port`` 0 picks a free port (:attr:`port` holds it after start). ``embedded_engine``
    ("espeak", "tone", "piper" with ``piper_voice``) starts a local speech server for the
    sessions; None uses ``config.speech_url`` (None there: the bridge's own choice, e.g.
    ``DASHSCOPE_API_KEY``).
    """

    def __init__(
        self,
        config: SessionConfig,
        *,
        host: str = "127.0.0.1",
        port: int = 8000,
        embedded_engine: str | None = None,
        piper_voice: str | None = None,
    ) -> None:
        self.config = config
        self.host = host
        self.port = port
        self._embedded_engine = embedded_engine
        self._piper_voice = piper_voice
        self._files = _static_files()
        self._server: Server | None = None
        self._speech: LocalServer | None = None
        self._client: openai.AsyncOpenAI | None = None
        self._sessions = 0

    def __repr__(self) -> str:
        return f"WebServer(url={self.url!r}, sessions={self._sessions})"

    @property
    def url(self) -> str:
        """The page's address."""
        host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}/"

    @property
    def sessions(self) -> int:
        """Sessions open now (read on the server's loop)."""
        return self._sessions

    async def start(self) -> None:
        """Start the embedded speech server (if any) and the LLM client, then listen."""
        import openai

        from ..server import LocalServer

        if self._server is not None:
            return
        try:
            if self._embedded_engine is not None:
                self._speech = LocalServer(
                    engine=self._embedded_engine, piper_voice=self._piper_voice
                )
                await self._speech.start()
                label = f"embedded local server ({self._embedded_engine}, offline)"
                self.config = replace(self.config, speech_url=self._speech.url, speech_label=label)
            llm = self.config.llm
            self._client = openai.AsyncOpenAI(
                base_url=llm.base_url, api_key=llm.api_key, max_retries=1, timeout=60.0
            )
            self._server = await websockets_serve(
                self._handle,
                self.host,
                self.port,
                process_request=self._process_request,
                max_size=self.config.limits.max_frame_bytes,
                compression=None,
            )
        except OSError as exc:
            await self.stop()
            raise ConfigurationError(f"cannot listen on {self.host}:{self.port}: {exc}") from exc
        except BaseException:
            await self.stop()
            raise
        self.port = next(iter(self._server.sockets)).getsockname()[1]

    async def stop(self) -> None:
        """Close every connection and wait for its session to end (turns cancelled, bridges
        closed), then the LLM client and the speech server."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()
        client, self._client = self._client, None
        if client is not None:
            await client.close()
        speech, self._speech = self._speech, None
        if speech is not None:
            await speech.stop()

    async def __aenter__(self) -> WebServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path == WS_PATH:
            origin = request.headers.get("Origin")
            if origin is not None and urlsplit(origin).netloc != request.headers.get("Host"):
                return connection.respond(403, "cross-origin WebSocket refused\n")
            return None
        page = self._files.get(path)
        if page is None:
            return connection.respond(404, "Not Found\n")
        kind, body = page
        headers = Headers(
            [
                ("Date", email.utils.formatdate(usegmt=True)),
                ("Connection", "close"),
                ("Content-Length", str(len(body))),
                ("Content-Type", kind),
                *_SECURITY_HEADERS,
            ]
        )
        return Response(200, "OK", headers, body)

    async def _handle(self, websocket: ServerConnection) -> None:
        assert self._client is not None
        if self._sessions >= self.config.limits.max_sessions:
            limit = self.config.limits.max_sessions
            message = f"the server is busy: {limit} sessions are open; try again later"
            await websocket.send(encode("error", source="server", message=message, turn=None))
            await websocket.close(_TRY_AGAIN_LATER, "too many sessions")
            return
        self._sessions += 1
        try:
            await WebSession(websocket, self.config, self._client).run()
        finally:
            self._sessions -= 1
