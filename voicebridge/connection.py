"""One WebSocket to the service and its receive thread (websocket-client), nothing more.

:func:`open_connection` does the handshake on the caller's thread (blocking, bounded by
``timeout``); the returned :class:`Connection` runs one receive thread that hands every frame to a
:class:`ConnectionListener` and, last, reports the close. Protocol rules live elsewhere
(:mod:`voicebridge.protocol`); this module only moves frames.

Secrets (docs/design.md): the API key stays inside :class:`~voicebridge.config.ApiKey` until the
handshake request is written, is sent only to the host the caller named (redirects are refused,
never followed), and is scrubbed from any text the server sends back before that text can reach
an exception or a log. Exceptions raised here never chain websocket-client's own, whose frames
hold the request headers.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Mapping
from typing import Any, Protocol

import websocket

from .config import ApiKey
from .errors import (
    AuthenticationError,
    ConnectionLost,
    HandshakeError,
    RemoteProtocolError,
    SynthesisTimeout,
    TransportError,
    VoiceBridgeError,
)

__all__ = ["Connection", "ConnectionListener", "open_connection"]

log = logging.getLogger("voicebridge.connection")

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_BODY_LIMIT = 300  # characters of a refusal's body kept in the error


class ConnectionListener(Protocol):
    """Receives a connection's frames; every method runs on its receive thread and must return
    quickly (enqueue, never wait)."""

    def on_text(self, connection: Connection, text: str) -> None: ...

    def on_binary(self, connection: Connection, data: bytes) -> None: ...

    def on_control(self, connection: Connection) -> None:
        """A ping or pong arrived: the peer is alive (nothing to deliver)."""

    def on_closed(self, connection: Connection, error: VoiceBridgeError | None) -> None:
        """Last call: the socket is gone. ``error`` is None after :meth:`Connection.close`."""


class _Header(str):
    """A request header line whose repr never shows its value (traceback locals, debuggers)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return repr(self.split(":", 1)[0] + ": ***")


def open_connection(
    url: str,
    listener: ConnectionListener,
    *,
    api_key: ApiKey | None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 5.0,
) -> Connection:
    """Open a WebSocket to ``url`` and start its receive thread.

    Raises :class:`AuthenticationError` (401/403), :class:`HandshakeError` (another refusal,
    redirects included), :class:`SynthesisTimeout` or :class:`TransportError`.
    """
    lines = [f"{name}: {value}" for name, value in (headers or {}).items()]
    lines.append("user-agent: voicebridge")
    # websocket-client validates UTF-8 in pure Python (a third of a busy client's CPU); the
    # receive loop decodes text frames strictly in C instead, and fails the frame if invalid.
    ws = websocket.WebSocket(enable_multithread=True, skip_utf8_validation=True)
    error: VoiceBridgeError | None = None
    try:
        ws.connect(  # type: ignore[no-untyped-call]
            url,
            header=[*lines, _Header(f"Authorization: {api_key.authorization()}")]
            if api_key
            else lines,
            timeout=timeout,
            redirect_limit=0,
        )
    except websocket.WebSocketBadStatusException as exc:
        error = _refusal(exc.status_code, exc.resp_body, api_key)
    except (websocket.WebSocketTimeoutException, TimeoutError):
        error = SynthesisTimeout(f"no WebSocket connection to {url} within {timeout:g} s")
    except (websocket.WebSocketException, OSError, ValueError) as exc:
        status = getattr(ws.handshake_response, "status", 0) or 0
        if status in _REDIRECTS:
            error = HandshakeError(
                status, "the server answered with a redirect, which voicebridge does not follow "
                "(the API key is only sent to the host you named): use the final URL"
            )  # fmt: skip
        else:
            error = TransportError(f"cannot connect to {url}: {_scrub(str(exc), api_key)}")
    if error is not None:
        with contextlib.suppress(Exception):
            ws.close()
        raise error  # outside the except blocks: no chained websocket-client frames
    ws.settimeout(None)
    connection = Connection(ws, listener, api_key)
    connection._thread.start()
    return connection


def _refusal(status: int, body: object, api_key: ApiKey | None) -> HandshakeError:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else ""
    detail = _scrub(text, api_key)[:_BODY_LIMIT] or "the server refused the connection"
    error_type = AuthenticationError if status in (401, 403) else HandshakeError
    return error_type(int(status or 0), detail)


def _scrub(text: str, api_key: ApiKey | None) -> str:
    return api_key.scrub(text) if api_key else text


class Connection:
    """An open WebSocket and its receive thread. ``send``, ``ping`` and ``close`` are safe from
    any thread; ``closed`` is set once the socket is gone (either side)."""

    def __init__(
        self, ws: websocket.WebSocket, listener: ConnectionListener, api_key: ApiKey | None
    ) -> None:
        self._ws = ws
        self._listener = listener
        self._api_key = api_key
        self.closed = threading.Event()
        self._thread = threading.Thread(
            target=self._receive_loop, name="voicebridge-receive", daemon=True
        )

    @property
    def socket(self) -> Any:
        """The underlying socket (None once closed), for readiness checks only."""
        return self._ws.sock

    def send(self, frame: str) -> None:
        """Write one text frame; :class:`ConnectionLost` if the socket is gone."""
        if self.closed.is_set():
            raise ConnectionLost("the connection is closed")
        try:
            self._ws.send(frame)
        except (websocket.WebSocketException, OSError) as exc:
            message = f"sending failed: {exc}"
        else:
            return
        self._shutdown()
        raise ConnectionLost(message)

    def ping(self) -> None:
        """Send a WebSocket ping (any frame that comes back proves the peer alive)."""
        with contextlib.suppress(websocket.WebSocketException, OSError):
            self._ws.ping()

    def close(self, timeout: float = 2.0) -> None:
        """Close the socket and join the receive thread (bounded by ``timeout``); the listener's
        ``on_closed`` gets no error. Stops the service's synthesis at once."""
        if not self.closed.is_set():
            self.closed.set()
            with contextlib.suppress(websocket.WebSocketException, OSError):
                self._ws.close(timeout=min(timeout, 1.0))
        self._shutdown()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("a receive thread did not stop within %.1f s", timeout)

    def _shutdown(self) -> None:
        with contextlib.suppress(websocket.WebSocketException, OSError):
            self._ws.shutdown()  # type: ignore[no-untyped-call]

    def _receive_loop(self) -> None:
        error: VoiceBridgeError | None = None
        try:
            while True:
                opcode, data = self._ws.recv_data(control_frame=True)
                if opcode == websocket.ABNF.OPCODE_TEXT:
                    text = data.decode("utf-8")  # strict: a corrupted frame ends the connection
                    self._listener.on_text(self, _scrub(text, self._api_key))
                elif opcode == websocket.ABNF.OPCODE_BINARY:
                    self._listener.on_binary(self, data)
                elif opcode in (websocket.ABNF.OPCODE_PING, websocket.ABNF.OPCODE_PONG):
                    self._listener.on_control(self)
                elif opcode == websocket.ABNF.OPCODE_CLOSE:
                    error = ConnectionLost("the server closed the connection")
                    break
        except UnicodeDecodeError as exc:
            error = RemoteProtocolError(f"the server sent a text frame that is not UTF-8: {exc}")
        except (websocket.WebSocketException, OSError, ValueError) as exc:
            error = ConnectionLost(f"connection lost: {_scrub(str(exc), self._api_key)}")
        except Exception as exc:  # a listener raised: report it, never leave the peer hanging
            log.exception("a connection listener raised; closing the connection")
            error = VoiceBridgeError(f"a connection listener raised {exc!r}")
        finally:
            expected = self.closed.is_set()
            self.closed.set()
            self._shutdown()
            self._listener.on_closed(self, None if expected else error)
