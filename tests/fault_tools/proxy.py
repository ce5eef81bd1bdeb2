"""An unfriendly network between the bridge and a real server: a TCP proxy that sees frames.

:class:`FaultProxy` listens on 127.0.0.1 (port 0) and relays each accepted connection to the
upstream server over a new TCP connection. Client-to-server bytes are copied as they are. The
server's HTTP reply to the handshake is copied too; after it, each server WebSocket frame
(unmasked, no extensions: websocket-client negotiates none) is parsed and handed to the proxy's
``rule``, which decides what the client gets (a :data:`Verdict`): the frame unchanged, a
corrupted copy, part of it and then a reset, the frame after a stall, or nothing more at all.

:class:`HttpResponder` is a bare HTTP listener that answers every request the same way (a
redirect, a 401 that echoes the request) and records the request heads it got, so a test can
see exactly which headers reached which host.

Threads: one accept thread per listener; two per proxied connection. :meth:`FaultProxy.stop`
closes every socket and joins every thread (bounded).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "Cut",
    "FaultProxy",
    "Freeze",
    "Hold",
    "HttpResponder",
    "Raw",
    "Replace",
    "ServerFrame",
    "Verdict",
    "accept_then_close",
    "forward_all",
    "redirect_to",
    "refuse_echoing",
]

OPCODE_TEXT, OPCODE_BINARY = 0x1, 0x2
_JOIN = 5.0  # seconds stop() waits for each thread
_HEAD_LIMIT = 65_536  # bytes of an HTTP head read before giving up
_WEBSOCKET_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455, section 1.3


@dataclass(frozen=True)
class ServerFrame:
    """One WebSocket frame from the server: ``connection`` counts accepted connections from 1;
    ``index`` counts this connection's frames from 0, ``text_index`` its text frames, and
    ``binary_index`` its binary frames. ``raw`` is the frame as sent (header included)."""

    connection: int
    index: int
    text_index: int
    binary_index: int
    opcode: int
    payload: bytes
    raw: bytes

    @property
    def text(self) -> str:
        return self.payload.decode("utf-8", "replace") if self.opcode == OPCODE_TEXT else ""


@dataclass(frozen=True)
class Replace:
    """Send this payload instead (same opcode, header rebuilt for its length)."""

    payload: bytes


@dataclass(frozen=True)
class Raw:
    """Send these bytes instead of the frame (to damage the frame header itself)."""

    data: bytes


@dataclass(frozen=True)
class Cut:
    """Send the first ``keep`` bytes of the frame as sent, then reset both sides (TCP RST: no
    close frame, no FIN). ``keep`` may exceed the frame: then all of it goes first."""

    keep: int


@dataclass(frozen=True)
class Hold:
    """Send nothing for ``seconds`` (the network stalls), then this frame and go on."""

    seconds: float


@dataclass(frozen=True)
class Freeze:
    """Send nothing more on this connection, keep it open (a server that stopped answering)."""


Verdict = Replace | Raw | Cut | Hold | Freeze | None  # None: forward the frame unchanged
Rule = Callable[[ServerFrame], Verdict]


def forward_all(frame: ServerFrame) -> Verdict:
    return None


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """A final, unmasked server frame."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 65_536:
        head = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return head + payload


def _abort(sock: socket.socket) -> None:
    """Close with a reset (SO_LINGER 0): the peer sees the connection drop, not a clean close.
    ``shutdown(SHUT_RD)`` first wakes a thread blocked in ``recv`` on it (sends nothing), so the
    reset goes out now rather than when that read would have returned."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RD)
    with contextlib.suppress(OSError):
        sock.close()


class _Reader:
    """Exact reads from a socket with a buffer; None at EOF or error."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = b""

    def exactly(self, n: int) -> bytes | None:
        while len(self._buffer) < n:
            try:
                data = self._sock.recv(65_536)
            except OSError:
                return None
            if not data:
                return None
            self._buffer += data
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out

    def until(self, marker: bytes) -> bytes | None:
        while marker not in self._buffer:
            if len(self._buffer) > _HEAD_LIMIT:
                return None
            try:
                data = self._sock.recv(65_536)
            except OSError:
                return None
            if not data:
                return None
            self._buffer += data
        end = self._buffer.index(marker) + len(marker)
        out, self._buffer = self._buffer[:end], self._buffer[end:]
        return out


class _Listener:
    """A listening socket on 127.0.0.1 and its accept thread; subclasses handle each client."""

    def __init__(self, name: str) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._sockets: set[socket.socket] = set()
        self._name = name
        self._accept_thread = threading.Thread(target=self._accept, name=f"{name}-accept")

    def start(self) -> None:
        self._accept_thread.start()

    def stop(self) -> None:
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)
        self._server.close()
        self._accept_thread.join(_JOIN)
        with self._lock:
            sockets, threads = list(self._sockets), list(self._threads)
        for sock in sockets:
            _abort(sock)
        for thread in threads:
            thread.join(_JOIN)
        assert not any(t.is_alive() for t in [self._accept_thread, *threads]), "a thread is stuck"

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            self._track(client)
            self._spawn(self._handle, client)

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=f"{self._name}-conn")
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)

    def _untrack(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)

    def _handle(self, client: socket.socket) -> None:
        raise NotImplementedError


class FaultProxy(_Listener):
    """A TCP proxy to ``upstream`` (host, port) that applies ``rule`` to every server frame.

    ``url`` is the proxy's WebSocket URL (path of the CosyVoice service). Attributes a test may
    change while it runs: ``rule``; ``slow_handshakes`` holds the handshake reply of chosen
    connections; :meth:`refuse_for` answers new connections with HTTP 503 for a while (a rolling
    deploy behind a load balancer); :meth:`reset_all` drops every live connection. When the
    upstream refuses, the client's socket is reset.
    """

    def __init__(self, upstream: tuple[str, int], rule: Rule = forward_all) -> None:
        super().__init__("fault-proxy")
        self.upstream = upstream
        self.rule = rule
        self.connections = 0  # accepted, counting refused ones
        self.refused = 0  # answered 503 or reset because the upstream was down
        self._refuse_until = 0.0
        self._live: dict[int, tuple[socket.socket, socket.socket]] = {}
        self.slow_handshakes: dict[int, float] = {}  # connection -> seconds its 101 is held

    @property
    def live(self) -> int:
        """Connections open right now (both sides)."""
        with self._lock:
            return len(self._live)

    @classmethod
    def to_url(cls, url: str, rule: Rule = forward_all) -> FaultProxy:
        host_port = url.split("/")[2]
        host, port = host_port.rsplit(":", 1)
        return cls((host, int(port)), rule)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api-ws/v1/inference"

    def __enter__(self) -> FaultProxy:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def refuse_for(self, seconds: float) -> None:
        self._refuse_until = time.monotonic() + seconds

    def reset_all(self) -> None:
        with self._lock:
            pairs = list(self._live.values())
        for client, upstream in pairs:
            _abort(client)
            _abort(upstream)

    def _handle(self, client: socket.socket) -> None:
        with self._lock:
            self.connections += 1
            number = self.connections
        if time.monotonic() < self._refuse_until:
            self.refused += 1
            _Reader(client).until(b"\r\n\r\n")
            with contextlib.suppress(OSError):
                client.sendall(
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                    b"Connection: close\r\n\r\n"
                )
            self._untrack(client)
            client.close()
            return
        try:
            upstream = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            self.refused += 1
            self._untrack(client)
            _abort(client)
            return
        upstream.settimeout(None)
        self._track(upstream)
        with self._lock:
            self._live[number] = (client, upstream)
        self._spawn(self._copy, client, upstream)
        try:
            self._relay(number, upstream, client)
        finally:
            with self._lock:
                self._live.pop(number, None)
            for sock in (client, upstream):
                self._untrack(sock)
                _abort(sock)

    def _copy(self, source: socket.socket, target: socket.socket) -> None:
        """Client to server, byte for byte, until either side goes."""
        while True:
            try:
                data = source.recv(65_536)
                if not data:
                    break
                target.sendall(data)
            except OSError:
                break
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)

    def _relay(self, number: int, upstream: socket.socket, client: socket.socket) -> None:
        """Server to client: the HTTP head as is, then frame by frame through the rule."""
        reader = _Reader(upstream)
        head = reader.until(b"\r\n\r\n")
        if head is None or self._stopping.wait(self.slow_handshakes.get(number, 0.0)):
            return
        client.sendall(head)
        if not head.startswith(b"HTTP/1.1 101"):
            return
        counts = [0, 0, 0]  # frames, text frames, binary frames
        frozen = False
        while not self._stopping.is_set():
            frame = _read_frame(reader)
            if frame is None:
                return
            opcode, payload, raw = frame
            if frozen:
                continue  # read and ignore: the server may go on, the client hears nothing
            seen = ServerFrame(number, counts[0], counts[1], counts[2], opcode, payload, raw)
            counts[0] += 1
            counts[1] += opcode == OPCODE_TEXT
            counts[2] += opcode == OPCODE_BINARY
            verdict = self.rule(seen)
            if isinstance(verdict, Freeze):
                frozen = True
                continue
            if isinstance(verdict, Hold):
                if self._stopping.wait(verdict.seconds):
                    return
                verdict = None
            if isinstance(verdict, Cut):
                with contextlib.suppress(OSError):
                    client.sendall(raw[: verdict.keep])
                return  # the finally block resets both sides
            data = (
                raw
                if verdict is None
                else verdict.data
                if isinstance(verdict, Raw)
                else encode_frame(opcode, verdict.payload)
            )
            try:
                client.sendall(data)
            except OSError:
                return


def _read_frame(reader: _Reader) -> tuple[int, bytes, bytes] | None:
    """(opcode, payload, raw bytes) of the next server frame; None at EOF."""
    head = reader.exactly(2)
    if head is None:
        return None
    length = head[1] & 0x7F
    extra = b""
    if length == 126:
        extra = reader.exactly(2) or b""
        length = struct.unpack("!H", extra)[0] if len(extra) == 2 else -1
    elif length == 127:
        extra = reader.exactly(8) or b""
        length = struct.unpack("!Q", extra)[0] if len(extra) == 8 else -1
    if length < 0 or head[1] & 0x80:  # cut short, or masked (a server never masks)
        return None
    payload = reader.exactly(length) if length else b""
    if payload is None:
        return None
    return head[0] & 0x0F, payload, head + extra + payload


@dataclass(frozen=True)
class Request:
    """An HTTP request head as a listener received it."""

    head: str

    def header(self, name: str) -> str | None:
        for line in self.head.split("\r\n")[1:]:
            key, _, value = line.partition(":")
            if key.strip().lower() == name.lower():
                return value.strip()
        return None


class HttpResponder(_Listener):
    """Answers every HTTP request with ``respond(request) -> bytes`` (status line, headers and
    body) and closes; ``requests`` records what arrived, in order."""

    def __init__(self, respond: Callable[[Request], bytes]) -> None:
        super().__init__("http-responder")
        self.respond = respond
        self.requests: list[Request] = []

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api-ws/v1/inference"

    def __enter__(self) -> HttpResponder:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _handle(self, client: socket.socket) -> None:
        try:
            client.settimeout(5)
            head = _Reader(client).until(b"\r\n\r\n")
            if head is None:
                return
            request = Request(head.decode("latin-1"))
            with self._lock:
                self.requests.append(request)
            with contextlib.suppress(OSError):
                client.sendall(self.respond(request))
        finally:
            self._untrack(client)
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)
            client.close()


def accept_then_close(request: Request) -> bytes:
    """Accept the WebSocket upgrade (a valid 101), then close at once: a gateway whose backend
    is gone, or a server that closes every connection it is not using."""
    accept = hashlib.sha1(
        (request.header("Sec-WebSocket-Key") or "").encode() + _WEBSOCKET_GUID
    ).digest()
    return (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {base64.b64encode(accept).decode()}\r\n\r\n"
    ).encode()


def redirect_to(location: str) -> Callable[[Request], bytes]:
    """A 307 to ``location`` (what a misconfigured gateway or a hostile host answers)."""

    def respond(request: Request) -> bytes:
        return (
            f"HTTP/1.1 307 Temporary Redirect\r\nLocation: {location}\r\n"
            "Content-Length: 0\r\nConnection: close\r\n\r\n"
        ).encode()

    return respond


def refuse_echoing(status: int = 401) -> Callable[[Request], bytes]:
    """Refuse with ``status`` and a body that echoes the Authorization header, then the whole
    request (a server that reflects what it got)."""

    def respond(request: Request) -> bytes:
        authorization = request.header("Authorization")
        body = json.dumps(
            {"code": "InvalidApiKey", "message": f"no such key: {authorization}",
             "request": request.head}
        ).encode()  # fmt: skip
        return (
            f"HTTP/1.1 {status} Unauthorized\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode() + body

    return respond
