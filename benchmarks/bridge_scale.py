"""Issue 9, scale: N concurrent sessions of voicebridge against N of the official SDK's pattern.

    .venv/bin/python benchmarks/bridge_scale.py [--n 1 10 50 200] [--runs 1] [--rate 30]
        [--load 0] [--preconnect] [--quick] [--plot FILE.png]

Both clients run in this process, one after the other, against one local server (tone engine) in
a child process, with the same paced token streams:

- **SDK pattern**: the official dashscope SDK's streaming sample — one
  ``dashscope.audio.tts_v2.SpeechSynthesizer`` per session, ``streaming_call(token)`` for every
  token as the LLM writes it, then ``streaming_complete()``; the audio goes to a callback that
  keeps nothing (as a NullSink does).
- **voicebridge**: one ``VoiceBridge(sinks=[NullSink()])`` per session, ``speak(tokens)``.

Each of N driver threads (started within ``--jitter`` s of each other, seeded) feeds one turn of
four sentences, token by token (1-6 characters, ``--rate`` tokens/s). Per N and client it prints
completed/failed turns, wall time, client CPU seconds (this process, the server excluded) and the
ratio to the SDK pattern, threads per session at the peak, first audio (first token fed -> first
audio delivered) p50/p99, reconnects and peak RSS growth; below the table, the client CPU split by
thread kind. ``--runs R`` repeats every N R times; ``--load K`` keeps K busy processes running
(a loaded machine). Asserts nothing; the ratio to the SDK pattern is measured in the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import random
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from bridge_common import (
    ServerHost,
    paced,
    percentile,
    print_table,
    rss_mb,
    thread_cpu,
    thread_kind,
    tokens,
)
from plotting import line_chart

from voicebridge.audio import NullSink
from voicebridge.bridge import VoiceBridge

SAMPLE_EVERY = 0.05  # seconds between thread-count / RSS samples
JOIN_TIMEOUT = 30.0  # seconds for the driver threads to end after the timeout
TEXT = (
    "The bridge keeps talking while the model is still writing its answer. "
    "Every sentence goes to the speech service as soon as it is complete. "
    "Audio comes back in small chunks, and a playback thread plays it at once. "
    "A long pause in the model does not lose a single word of the answer. "
)


@dataclass
class Session:
    """One driver's outcome: seconds from its first token to its first audio, or an error."""

    first_audio: float | None = None
    reconnects: int = 0
    error: str | None = None


@dataclass
class Result:
    client: str
    n: int
    run: int
    sessions: list[Session]
    wall: float
    cpu: float
    cpu_by_kind: dict[str, float]
    threads_per_session: float
    rss_growth: float
    unfinished: int
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def completed(self) -> int:
        return sum(s.error is None and s.first_audio is not None for s in self.sessions)

    @property
    def first_audio(self) -> list[float]:
        return [s.first_audio for s in self.sessions if s.first_audio is not None]


def sdk_session(url: str, pieces: Iterator[str], session: Session) -> Callable[[], None]:
    """The official SDK's streaming pattern, as its sample writes it."""
    from dashscope.audio.tts_v2 import AudioFormat, ResultCallback, SpeechSynthesizer

    first_token: list[float] = []

    class Callback(ResultCallback):  # type: ignore[misc]
        def on_data(self, data: bytes) -> None:
            if session.first_audio is None and first_token:
                session.first_audio = time.monotonic() - first_token[0]

        def on_error(self, message: Any) -> None:
            session.error = f"on_error: {str(message)[:60]}"

    def drive() -> None:
        synthesizer = SpeechSynthesizer(
            model="cosyvoice-v2",
            voice="longxiaochun_v2",
            format=AudioFormat.PCM_22050HZ_MONO_16BIT,
            callback=Callback(),
            url=url,
        )
        for piece in pieces:
            if not first_token:
                first_token.append(time.monotonic())
            synthesizer.streaming_call(piece)
        synthesizer.streaming_complete()

    return drive


def bridge_session(
    bridge: VoiceBridge, pieces: Iterator[str], session: Session
) -> Callable[[], None]:
    def drive() -> None:
        metrics = bridge.speak(pieces)
        session.first_audio = metrics.time_to_first_audio
        session.reconnects = metrics.reconnects

    return drive


def run(host: ServerHost, client: str, n: int, run_index: int, args: argparse.Namespace) -> Result:
    url = host.start_server("tone")
    rng = random.Random(n * 1000 + run_index)
    delays = [rng.uniform(0, args.jitter) for _ in range(n)]
    sessions = [Session() for _ in range(n)]
    base_threads, base_rss = threading.active_count(), rss_mb()
    bridges: list[VoiceBridge] = []
    if client == "voicebridge":
        bridges = [VoiceBridge(url=url, sinks=[NullSink()]) for _ in range(n)]
        if args.preconnect:
            for bridge in bridges:
                bridge.preconnect()
    errors: Counter[str] = Counter()

    def drive(i: int) -> None:
        time.sleep(delays[i])
        pieces = paced(tokens(TEXT, i), args.rate)
        body = (
            bridge_session(bridges[i], pieces, sessions[i])
            if client == "voicebridge"
            else sdk_session(url, pieces, sessions[i])
        )
        try:
            body()
        except Exception as exc:  # counted and shown, never hidden
            sessions[i].error = f"{type(exc).__name__}: {str(exc)[:60]}"
        if sessions[i].error:
            errors[sessions[i].error] += 1

    drivers = [
        threading.Thread(target=drive, args=(i,), name=f"bench-driver-{i}") for i in range(n)
    ]
    peak, peak_kinds, peak_rss = 0, Counter[str](), base_rss
    cpu_before = thread_cpu()
    cpu_start = time.process_time()
    start = time.monotonic()
    try:
        for driver in drivers:
            driver.start()
        deadline = start + args.timeout
        while any(d.is_alive() for d in drivers) and time.monotonic() < deadline:
            count = threading.active_count()
            if count > peak:
                peak = count
                peak_kinds = Counter(thread_kind(t.name) for t in threading.enumerate())
            peak_rss = max(peak_rss, rss_mb())
            time.sleep(SAMPLE_EVERY)
        wall = time.monotonic() - start
        cpu = time.process_time() - cpu_start
        cpu_after = thread_cpu()
        unfinished = sum(d.is_alive() for d in drivers)
    finally:  # also on Ctrl-C: barge in on what still runs, then join (bounded)
        for bridge in bridges:
            bridge.interrupt()
        join_by = time.monotonic() + JOIN_TIMEOUT
        for driver in drivers:
            driver.join(max(0.0, join_by - time.monotonic()))
        for bridge in bridges:
            bridge.close()
        host.stop_server()
    by_kind: dict[str, float] = defaultdict(float)
    for ident, (kind, seconds) in cpu_after.items():
        by_kind[kind] += seconds - cpu_before.get(ident, (kind, 0.0))[1]
    by_kind["ended threads"] = cpu - sum(by_kind.values())
    session_threads = (
        peak
        - base_threads
        - sum(count for kind, count in peak_kinds.items() if kind.startswith("bench-driver"))
    )
    return Result(
        client=client,
        n=n,
        run=run_index,
        sessions=sessions,
        wall=wall,
        cpu=cpu,
        cpu_by_kind=dict(by_kind),
        threads_per_session=max(session_threads, 0) / n,
        rss_growth=peak_rss - base_rss,
        unfinished=unfinished,
        errors=errors,
    )


def _busy(stop: Any) -> None:
    while not stop.is_set():
        sum(range(10_000))


@contextlib.contextmanager
def load(processes: int) -> Iterator[None]:
    """Keep ``processes`` busy-looping child processes running (a loaded machine)."""
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    workers = [context.Process(target=_busy, args=(stop,), daemon=True) for _ in range(processes)]
    for worker in workers:
        worker.start()
    try:
        yield
    finally:
        stop.set()
        for worker in workers:
            worker.join(5.0)
            if worker.is_alive():
                worker.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[1, 10, 50, 200])
    parser.add_argument("--runs", type=int, default=1, help="repeat every N this many times")
    parser.add_argument("--rate", type=float, default=30.0, help="tokens per second per session")
    parser.add_argument("--jitter", type=float, default=1.0, help="start spread in seconds")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds allowed per N")
    parser.add_argument("--load", type=int, default=0, help="busy processes during the runs")
    parser.add_argument("--preconnect", action="store_true", help="voicebridge: preconnect()")
    parser.add_argument("--quick", action="store_true", help="smoke mode: N = 1, 5, one run")
    parser.add_argument("--plot", metavar="PNG", help="also draw CPU and first audio against N")
    args = parser.parse_args()
    sizes = [1, 5] if args.quick else args.n
    runs = 1 if args.quick else args.runs
    import dashscope

    dashscope.api_key = "sk-benchmark"  # the local server accepts any key
    results: list[Result] = []
    with ServerHost() as host, load(args.load):
        for n in sizes:
            for run_index in range(runs):
                for client in ("SDK pattern", "voicebridge"):
                    results.append(run(host, client, n, run_index, args))
                print(f"  N = {n}, run {run_index + 1} done", flush=True)
    report(results, args)
    if args.plot:
        plot(results, args.plot)


def report(results: list[Result], args: argparse.Namespace) -> None:
    sdk = {(r.n, r.run): r for r in results if r.client == "SDK pattern"}
    rows = []
    for r in results:
        base = sdk[(r.n, r.run)]
        reconnects = sum(s.reconnects for s in r.sessions)
        rows.append(
            [
                r.n,
                r.run + 1,
                r.client,
                f"{r.completed}/{r.n}",
                f"{r.wall:.1f}",
                f"{r.cpu:.2f}",
                f"{r.cpu / base.cpu:.2f} x" if base.cpu else "-",
                f"{r.threads_per_session:.1f}",
                f"{percentile(r.first_audio, 50) * 1000:.0f} / "
                f"{percentile(r.first_audio, 99) * 1000:.0f}",
                reconnects if r.client == "voicebridge" else "-",
                f"{r.rss_growth:.0f}",
            ]
        )
    print_table(
        f"N concurrent sessions, one turn each ({len(TEXT)} characters at {args.rate:g} tokens/s, "
        f"starts spread over {args.jitter:g} s, {args.load} busy processes, "
        f"preconnect: {args.preconnect}); CPU ratio to the SDK pattern in the same run",
        [
            "N",
            "run",
            "client",
            "completed",
            "wall s",
            "client CPU s",
            "CPU / SDK",
            "threads per session",
            "first audio p50 / p99 ms",
            "reconnects",
            "peak RSS growth MiB",
        ],
        rows,
    )
    for r in results:
        cpu = ", ".join(f"{kind} {sec:.2f}" for kind, sec in sorted(r.cpu_by_kind.items()))
        print(f"N = {r.n}, run {r.run + 1}, {r.client}: CPU s by thread: {cpu}")
        for error, count in r.errors.items():
            print(f"N = {r.n}, run {r.run + 1}, {r.client}: {count} x {error}")
        if r.unfinished:
            print(f"N = {r.n}, run {r.run + 1}, {r.client}: {r.unfinished} unfinished")


def plot(results: list[Result], path: str) -> None:
    """CPU seconds and first-audio p99 against N, voicebridge against the SDK pattern."""
    sizes = sorted({r.n for r in results})
    series: dict[str, dict[str, list[float]]] = {}
    for client in ("SDK pattern", "voicebridge"):
        cpu, p99 = [], []
        for n in sizes:
            mine = [r for r in results if r.client == client and r.n == n]
            cpu.append(sum(r.cpu for r in mine) / len(mine))
            p99.append(max(percentile(r.first_audio, 99) for r in mine) * 1000)
        series[client] = {"client CPU s": cpu, "first audio p99 ms": p99}
    line_chart(
        path, "Concurrent sessions, one turn each", "sessions (N)", sizes, series, log_x=True
    )


if __name__ == "__main__":
    main()
