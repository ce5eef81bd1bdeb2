"""The local server off the caller's event loop: :class:`ServerThread` (context manager) and
:func:`serve` (``voicebridge serve``, until Ctrl-C or SIGTERM)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ..errors import SynthesisTimeout
from .connection import Transcript
from .engines import Engine
from .listener import LocalServer

__all__ = ["ServerThread", "serve"]

_log = logging.getLogger("voicebridge.server")
_T = TypeVar("_T")
_STOP_TIMEOUT = 30.0  # seconds the server thread gets to close connections and join threads


class ServerThread:
    """A :class:`LocalServer` on its own event loop in a background thread (context manager).

    ``with ServerThread(engine="tone") as server: connect(server.url)``; leaving the block stops
    the server and joins the thread. Arguments are those of :class:`LocalServer`.
    """

    def __init__(self, *args: Any, start_timeout: float = 15.0, **kwargs: Any) -> None:
        self.server = LocalServer(*args, **kwargs)
        self._timeout = start_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def transcripts(self) -> list[Transcript]:
        """A snapshot of the transcripts (taken on the server's loop while it runs)."""
        if self._thread is None or not self._thread.is_alive():
            return self.server.transcripts
        return self._call(lambda: self.server.transcripts)

    def start(self) -> ServerThread:
        """Start the thread and wait (bounded) until the server listens; idempotent."""
        if self._thread is not None:
            return self
        self._thread = threading.Thread(target=self._run, name="voicebridge-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(self._timeout):
            raise SynthesisTimeout(f"the local server did not start within {self._timeout} s")
        if self._error is not None:
            self._thread.join(self._timeout)
            raise self._error
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            thread.join(_STOP_TIMEOUT + self._timeout)
            if thread.is_alive():
                _log.error("the local server thread did not stop in time")

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self.server.start())
        except BaseException as exc:  # reported to start()'s caller
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self.server.stop())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    def _call(self, func: Callable[[], _T]) -> _T:
        assert self._loop is not None

        async def call() -> _T:
            return func()

        return asyncio.run_coroutine_threadsafe(call(), self._loop).result(self._timeout)


def serve(
    host: str = "127.0.0.1",
    port: int = 8765,
    api_key: str | None = None,
    engine: str | Engine = "espeak",
    piper_voice: str | Path | None = None,
) -> None:
    """Run a local server until Ctrl-C or SIGTERM (for ``voicebridge serve``); returns after a
    clean stop (connections closed, threads joined)."""

    async def main() -> None:
        stopping = asyncio.Event()
        with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows loops
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
        server = LocalServer(host, port, api_key=api_key, engine=engine, piper_voice=piper_voice)
        async with server:
            print(f"voicebridge: serving {server.url} (Ctrl-C stops)", file=sys.stderr, flush=True)
            await stopping.wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
