"""A real server process, as ``voicebridge serve`` runs it (:func:`voicebridge.server.serve`),
that a test can kill -9 and start again on the same port (a crashed and restarted server, a
redeployed pod)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time

__all__ = ["ServeProcess", "free_port"]

_START_TIMEOUT = 30.0  # seconds a child gets to print that it listens (a loaded 2-core machine)
# What ``voicebridge serve`` runs (its --engine choices leave out the test-only "text" engine).
_MAIN = (
    "import sys; from voicebridge.server import serve; "
    "serve(port=int(sys.argv[1]), engine=sys.argv[2], api_key=sys.argv[3] or None)"
)


def free_port() -> int:
    """A port that was free a moment ago on 127.0.0.1 (the child binds it with SO_REUSEADDR)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServeProcess:
    """:func:`voicebridge.server.serve` on ``port`` with ``engine`` in a child process
    (``api_key``: the only key it accepts).

    :meth:`start` returns once the child listens; :meth:`kill` sends SIGKILL (no clean close:
    the kernel resets its sockets) and reaps it; :meth:`stop` kills whatever still runs.
    ``starts`` counts the children started.
    """

    def __init__(
        self, port: int | None = None, engine: str = "text", api_key: str | None = None
    ) -> None:
        self.port = port or free_port()
        self.engine = engine
        self.api_key = api_key
        self.starts = 0
        self._process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self.log: list[str] = []

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api-ws/v1/inference"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> ServeProcess:
        assert not self.running, "already running"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        process = subprocess.Popen(
            [sys.executable, "-c", _MAIN, str(self.port), self.engine, self.api_key or ""],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self._process = process
        self.starts += 1
        listening = threading.Event()

        def read() -> None:
            assert process.stderr is not None
            for line in process.stderr:
                self.log.append(line.rstrip())
                if "serving" in line:
                    listening.set()

        self._reader = threading.Thread(target=read, name="serve-process-stderr")
        self._reader.start()
        deadline = time.monotonic() + _START_TIMEOUT
        while not listening.wait(0.05):
            if process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"voicebridge serve did not start: {self.log[-5:]}")
        return self

    def kill(self) -> None:
        """SIGKILL the child and reap it (its port is free again when this returns)."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
        if self._reader is not None:
            self._reader.join(10)
        self._process = None

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.kill()

    def __enter__(self) -> ServeProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
