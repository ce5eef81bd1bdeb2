"""SessionDriver: the thin I/O around a :class:`~voicebridge.session.core.SessionCore`.

Threads:

- any thread (the bridge's, an event loop) calls :meth:`SessionDriver.call` with a core method:
  the core runs under the driver's lock and its actions are routed;
- each connection's receive thread reports frames: audio goes straight to ``deliver`` (with the
  replayed bytes trimmed), everything else through the core;
- one driver thread performs the I/O actions (connect, send, ping, close) in the order the core
  produced them, and otherwise waits on a condition with the core's next deadline as timeout.
  No polling: it wakes for an action, for a deadline, or when a call moved the deadline earlier.

Actions for the audio path (:class:`WordsPlaced`, :class:`TurnEnded`) run on the thread whose
call produced them, outside the lock; they only enqueue or set events. The lock is never held
during I/O.
"""

from __future__ import annotations

import logging
import select
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from ..config import ApiKey
from ..connection import Connection, open_connection
from ..errors import VoiceBridgeError
from ..turn import Turn, Word
from .actions import (
    IO_ACTIONS,
    Action,
    CheckStall,
    Close,
    Connect,
    Ping,
    Send,
    TurnEnded,
    WordsPlaced,
)
from .core import SessionCore

__all__ = ["SessionDriver"]

log = logging.getLogger("voicebridge.session")


class SessionDriver:
    """Runs one :class:`SessionCore` against the service at ``url`` (see the module docstring).

    ``deliver(turn, chunk)`` and ``words(turn, words)`` must not block: they run on receive
    threads. A turn's end shows on the :class:`~voicebridge.turn.Turn` itself (``done``).
    """

    def __init__(
        self,
        core: SessionCore,
        url: str,
        *,
        api_key: ApiKey | None,
        headers: Mapping[str, str] | None = None,
        connect_timeout: float = 5.0,
        deliver: Callable[[Turn, bytes], None],
        words: Callable[[Turn, tuple[Word, ...]], None] = lambda turn, words: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.core = core
        self.url = url
        self._api_key = api_key
        self._headers = dict(headers or {})
        self._connect_timeout = connect_timeout
        self._deliver = deliver
        self._words = words
        self._clock = clock
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._io: deque[Action] = deque()
        self._waiting_until: float | None = None  # the driver thread sleeps until then
        self._connections: dict[int, Connection] = {}
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="voicebridge-session", daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        """The driver thread runs (it stops only in :meth:`close`)."""
        return self._thread.is_alive()

    @property
    def connected(self) -> bool:
        return any(not c.closed.is_set() for c in list(self._connections.values()))

    def call(self, method: Callable[..., list[Action]], *args: Any) -> None:
        """Run ``core.method(*args, now)`` under the lock and route its actions."""
        with self._lock:
            actions = method(*args, self._clock())
            inline = self._route(actions)
        self._run_inline(inline)

    def close(self, timeout: float = 5.0) -> None:
        """Close the connection and stop the driver thread (joined, bounded)."""
        with self._lock:
            inline = self._route(self.core.close(self._clock()))
            self._stopping = True
            self._wake.notify()
        self._run_inline(inline)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("the session thread did not stop within %.1f s", timeout)
        for connection in list(self._connections.values()):
            connection.close()
        self._connections.clear()

    # ------------------------------------------------------------------ routing (lock held)

    def _route(self, actions: list[Action]) -> list[Action]:
        """Queue I/O actions for the driver thread; return the inline ones."""
        inline: list[Action] = [a for a in actions if not isinstance(a, IO_ACTIONS)]
        io = [a for a in actions if isinstance(a, IO_ACTIONS)]
        if io:
            self._io.extend(io)
            self._wake.notify()
        elif self._waiting_until is not None and self.core.sooner:
            self.core.sooner = False
            deadline = self.core.next_deadline()
            if deadline is not None and deadline < self._waiting_until:
                self._wake.notify()
        return inline

    def _run_inline(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, WordsPlaced):
                self._words(action.turn, action.words)
            elif isinstance(action, TurnEnded):
                log.debug("turn %d ended: %s", action.turn.number, action.turn.error or "ok")

    # ------------------------------------------------------------------ driver thread

    def _run(self) -> None:
        while True:
            inline: list[Action] = []
            with self._lock:
                while not self._io and not self._stopping:
                    now = self._clock()
                    deadline = self.core.next_deadline()
                    if deadline is not None and deadline <= now:
                        inline = self._route(self.core.tick(now))
                        if inline:
                            break
                        continue
                    self._waiting_until = float("inf") if deadline is None else deadline
                    self._wake.wait(None if deadline is None else deadline - now)
                    self._waiting_until = None
                if self._stopping and not self._io:
                    return
                batch = list(self._io)
                self._io.clear()
            self._run_inline(inline)
            for action in batch:
                self._perform(action)

    def _perform(self, action: Action) -> None:
        if isinstance(action, Connect):
            self._open(action.conn)
        elif isinstance(action, Send):
            connection = self._connections.get(action.conn)
            if connection is None:
                return
            try:
                connection.send(action.frame)
            except VoiceBridgeError as exc:
                self.call(self.core.send_failed, action.conn, exc)
        elif isinstance(action, Ping):
            if (connection := self._connections.get(action.conn)) is not None:
                connection.ping()
        elif isinstance(action, CheckStall):
            connection = self._connections.get(action.conn)
            unread = connection is not None and _unread(connection)
            self.call(self.core.stalled_unread, unread)
        elif isinstance(action, Close) and (connection := self._connections.pop(action.conn, None)):
            connection.close()

    def _open(self, conn: int) -> None:
        listener = _Listener(self, conn)
        try:
            connection = open_connection(
                self.url,
                listener,
                api_key=self._api_key,
                headers=self._headers,
                timeout=self._connect_timeout,
            )
        except VoiceBridgeError as exc:
            self.call(self.core.connect_failed, conn, exc)
            return
        self._connections[conn] = connection
        self.call(self.core.connected, conn)

    # ------------------------------------------------------------------ receive threads

    def _audio(self, conn: int, data: bytes) -> None:
        with self._lock:
            skip = self.core.audio_frame(conn, data, self._clock())
            turn = self.core.turn
        if turn is not None and 0 <= skip < len(data):
            self._deliver(turn, data[skip:] if skip else data)

    def _control(self, conn: int) -> None:
        with self._lock:
            self.core.control_frame(conn, self._clock())


def _unread(connection: Connection) -> bool:
    """True when the connection's socket holds data our receive thread has not read yet."""
    sock = connection.socket
    if sock is None:
        return False
    pending = getattr(sock, "pending", None)  # TLS: decrypted bytes buffered in the SSL object
    if callable(pending) and pending() > 0:
        return True
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return False
    return bool(readable)


class _Listener:
    """A connection's events, tagged with its id, into the driver (receive thread)."""

    def __init__(self, driver: SessionDriver, conn: int) -> None:
        self._driver = driver
        self._conn = conn

    def on_text(self, connection: Connection, text: str) -> None:
        self._driver.call(self._driver.core.text_frame, self._conn, text)

    def on_binary(self, connection: Connection, data: bytes) -> None:
        self._driver._audio(self._conn, data)

    def on_control(self, connection: Connection) -> None:
        self._driver._control(self._conn)

    def on_closed(self, connection: Connection, error: VoiceBridgeError | None) -> None:
        self._driver.call(self._driver.core.closed, self._conn, error)
