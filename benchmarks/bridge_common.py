"""Shared parts of the bridge benchmarks: a server host process, percentiles, Markdown tables.

The local server runs in a child process (:class:`ServerHost`), so its CPU time and its GIL are
not the client's: the client's measurements are of the bridge alone. The child starts and stops
one :class:`voicebridge.server.ServerThread` at a time, on request over a pipe; it ignores Ctrl-C
(the parent stops it) and exits by itself when the parent goes away.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import random
import re
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from multiprocessing.connection import Connection
from typing import Any

from voicebridge.server import FaultPlan, ServerThread
from voicebridge.server.service import ServerLimits

__all__ = [
    "ServerHost",
    "percentile",
    "print_table",
    "rss_mb",
    "thread_cpu",
    "thread_kind",
]

_REPLY_TIMEOUT = 30.0  # seconds the parent waits for the child to start or stop a server
_CHILD_LIFETIME = 1800.0  # seconds after which an abandoned child gives up


def _host_main(conn: Connection) -> None:
    """Child process: serve requests until "exit", the parent's end closes, or the lifetime ends."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    server: ServerThread | None = None
    deadline = time.monotonic() + _CHILD_LIFETIME
    try:
        while time.monotonic() < deadline:
            if not conn.poll(1.0):
                continue
            request, args = conn.recv()
            if request == "start":
                engine, limits, faults = args
                server = ServerThread(engine=engine, limits=limits, faults=faults).start()
                conn.send(server.url)
            elif request == "stop":
                accepted = len(server.transcripts) if server is not None else 0
                if server is not None:
                    server.stop()
                    server = None
                conn.send(accepted)
            elif request == "cpu":
                conn.send(time.process_time())
            else:
                break
    except (EOFError, OSError):
        pass  # the parent went away
    finally:
        if server is not None:
            server.stop()


class ServerHost:
    """A child process that runs the local server; use as a context manager."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child_conn = context.Pipe()
        self._process = context.Process(
            target=_host_main, args=(child_conn,), name="bench-server-host", daemon=True
        )
        self._process.start()
        child_conn.close()

    def __enter__(self) -> ServerHost:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def start_server(
        self,
        engine: str = "tone",
        limits: ServerLimits | None = None,
        faults: FaultPlan | None = None,
    ) -> str:
        """Start a fresh server (the previous one must be stopped); returns its URL."""
        url = self._ask("start", (engine, limits, faults))
        assert isinstance(url, str)
        return url

    def stop_server(self) -> int:
        """Stop the server; returns how many connections it accepted."""
        accepted = self._ask("stop", None)
        assert isinstance(accepted, int)
        return accepted

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the child has used so far, engine and server included."""
        cpu = self._ask("cpu", None)
        assert isinstance(cpu, float)
        return cpu

    def close(self) -> None:
        """Stop the child (bounded); kill it if it does not exit."""
        if self._process.is_alive():
            with contextlib.suppress(OSError):
                self._conn.send(("exit", None))
            self._process.join(_REPLY_TIMEOUT)
            if self._process.is_alive():
                self._process.kill()
                self._process.join(5.0)
        self._conn.close()

    def _ask(self, request: str, args: Any) -> object:
        self._conn.send((request, args))
        if not self._conn.poll(_REPLY_TIMEOUT):
            raise TimeoutError(f"the server host did not answer {request!r} in {_REPLY_TIMEOUT} s")
        return self._conn.recv()


def thread_kind(name: str) -> str:
    """A thread's name without its number ("bench-driver-12" -> "bench-driver")."""
    return re.sub(r"[-_]\d+$", "", name)


def thread_cpu() -> dict[int, tuple[str, float]]:
    """CPU seconds (user + system, ns precision) of this process's live Python threads, by
    ident, with their kind (:func:`thread_kind`)."""
    cpu: dict[int, tuple[str, float]] = {}
    for thread in threading.enumerate():
        if thread.ident is None:
            continue
        try:
            clock = time.pthread_getcpuclockid(thread.ident)
            cpu[thread.ident] = (thread_kind(thread.name), time.clock_gettime(clock))
        except OSError:
            continue  # the thread ended meanwhile
    return cpu


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print a Markdown table under a title line."""
    print(f"\n{title}\n")
    print("| " + " | ".join(headers) + " |")
    print("|" + "|".join("---" for _ in headers) + "|")
    for row in rows:
        print("| " + " | ".join(str(cell) for cell in row) + " |")


def rss_mb() -> float:
    """Resident memory of this process in MiB (VmRSS from /proc/self/status)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def tokens(text: str, seed: int = 0, max_step: int = 6) -> list[str]:
    """``text`` cut into tokens of 1 to ``max_step`` characters, reproducibly."""
    rng = random.Random(seed)
    out, i = [], 0
    while i < len(text):
        step = rng.randint(1, max_step)
        out.append(text[i : i + step])
        i += step
    return out


def paced(pieces: list[str], rate: float) -> Iterator[str]:
    """Yield ``pieces`` at ``rate`` per second (on a fixed schedule, so no drift)."""
    start = time.monotonic()
    for i, piece in enumerate(pieces):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        yield piece
