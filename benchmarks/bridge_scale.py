"""Issue 5, scale: N concurrent bridges in one process against the local server (tone engine).

    .venv/bin/python benchmarks/bridge_scale.py [--n 1 10 50 200] [--rate 30] [--sink null|realtime]
        [--speed X] [--preconnect] [--quick]

Goal: 200 sessions on this 2-core machine with no missed deadline. The server runs in a child
process. Each of N bridges (created up front, one driver thread each, started within
``--jitter`` s of each other, seeded) speaks one turn of four sentences fed token by token
(1-6 characters, ``--rate`` tokens/s) into a NullSink (default) or, with ``--sink realtime``, a
CallbackSink that sleeps as long as each chunk would play (real-time playback without a device).
``--preconnect`` opens every bridge's WebSocket before the turns start (``preconnect()``).
The tone server sends audio as fast as it can make it (a worst-case burst); ``--speed X`` paces
each connection's audio at X times real time (FaultPlan ``delay_audio`` before every 0.1 s frame).

Per N it prints: completed/failed turns, wall time, threads per session (voicebridge-* threads
at the peak thread count / N), the receive-callback time p50/p99/max, the time to first audio
(first token read -> first audio at the sink; note that the bridge's "first fragment sent" stamp
comes after connect + task start), the first package delay (first fragment sent -> first audio
byte received), the WebSocket connect and run-task -> task-started times, CPU seconds per wall
second of this process and of the server's (and, below the table, this process's CPU split by
thread kind, from the threads' CPU clocks), peak RSS growth, and missed deadlines = failed turns
+ turns unfinished after ``--timeout`` + reconnects + fragments sent more than 20 s after the
previous fragment of their session. Ratios are to the first N (1 by default) in the same run.

Measuring hooks, installed by this script only (monkeypatches, removed at the end):
``SpeechSession._deliver`` (the receive callback: receive thread -> ``VoiceBridge._on_audio`` ->
``AudioPipeline.receive``) is timed with ``perf_counter``; ``SpeechSynthesizer.streaming_call``
stamps when each fragment is sent; ``SpeechSynthesizer.connect`` and ``.start`` are timed.
Asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import random
import statistics
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

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

from voicebridge.audio import CallbackSink, NullSink, Sink
from voicebridge.bridge import TurnMetrics, VoiceBridge
from voicebridge.client import SpeechSynthesizer
from voicebridge.server import FaultPlan
from voicebridge.session import SpeechSession

BYTES_PER_SECOND = 22050 * 2  # 16-bit mono PCM at 22,050 Hz
FRAGMENT_DEADLINE = 20.0  # seconds between two fragments of a session that count as a miss
JOIN_TIMEOUT = 15.0  # seconds for all driver threads to end after the run
SAMPLE_EVERY = 0.05  # seconds between thread-count / RSS samples
TONE_CHUNK_SECONDS = 0.1  # audio per frame of the tone engine (ToneEngine's chunk_seconds)
TEXT = (
    "The bridge keeps talking while the model is still writing its answer. "
    "Every sentence goes to the speech service as soon as it is complete. "
    "Audio comes back in small chunks, and a playback thread plays it at once. "
    "A long pause in the model does not lose a single word of the answer. "
)


def realtime_sink() -> Sink:
    return CallbackSink(lambda chunk: time.sleep(len(chunk) / BYTES_PER_SECOND))


@dataclass
class Probe:
    """What the hooks saw: callback durations (s), per synthesizer the fragment send times, and
    the durations (s) of WebSocket connects and of run-task -> task-started (connect excluded)."""

    callbacks: list[float] = field(default_factory=list)
    sends: dict[int, list[float]] = field(default_factory=dict)
    connects: list[float] = field(default_factory=list)
    starts: list[float] = field(default_factory=list)

    def max_gap(self) -> tuple[float, int]:
        """The longest gap between two fragments of one session, and how many gaps > deadline."""
        gaps = [b - a for times in self.sends.values() for a, b in itertools.pairwise(times)]
        return max(gaps, default=0.0), sum(g > FRAGMENT_DEADLINE for g in gaps)


@contextlib.contextmanager
def hooks(probe: Probe) -> Iterator[None]:
    deliver, call = SpeechSession._deliver, SpeechSynthesizer.streaming_call
    connect, start_task = SpeechSynthesizer.connect, SpeechSynthesizer.start
    in_start = threading.local()  # connect time spent inside the current start() call

    def timed_deliver(self: SpeechSession, data: bytes) -> None:
        start = time.perf_counter()
        deliver(self, data)
        probe.callbacks.append(time.perf_counter() - start)  # list.append is atomic

    def stamped_call(self: SpeechSynthesizer, text: str) -> None:
        probe.sends.setdefault(id(self), []).append(time.monotonic())
        call(self, text)

    def timed_connect(self: SpeechSynthesizer) -> None:
        was_connected = self.connected
        start = time.perf_counter()
        connect(self)
        if not was_connected:
            took = time.perf_counter() - start
            probe.connects.append(took)
            in_start.connect = getattr(in_start, "connect", 0.0) + took

    def timed_start(self: SpeechSynthesizer, task_id: str | None = None) -> str:
        in_start.connect = 0.0
        start = time.perf_counter()
        started = start_task(self, task_id)
        probe.starts.append(time.perf_counter() - start - in_start.connect)
        return started

    originals = (deliver, call, connect, start_task)
    SpeechSession._deliver = timed_deliver  # type: ignore[method-assign]
    SpeechSynthesizer.streaming_call = stamped_call  # type: ignore[method-assign]
    SpeechSynthesizer.connect = timed_connect  # type: ignore[method-assign]
    SpeechSynthesizer.start = timed_start  # type: ignore[method-assign]
    try:
        yield
    finally:
        (
            SpeechSession._deliver,  # type: ignore[method-assign]
            SpeechSynthesizer.streaming_call,  # type: ignore[method-assign]
            SpeechSynthesizer.connect,  # type: ignore[method-assign]
            SpeechSynthesizer.start,  # type: ignore[method-assign]
        ) = originals


def wait_connected(bridges: list[VoiceBridge], timeout: float) -> None:
    """Wait (bounded) until every bridge's WebSocket is open after ``preconnect()``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(b._session.synthesizer.connected for b in bridges):  # benchmark-only peek
            return
        time.sleep(SAMPLE_EVERY)


@dataclass
class Result:
    n: int
    completed: int
    failed: int
    unfinished: int
    errors: Counter[str]
    wall: float
    threads_per_session: float
    peak_kinds: Counter[str]
    all_threads_peak: int
    callback: list[float]
    connects: list[float]
    starts: list[float]
    first_audio: list[float]
    first_package: list[float]
    first_fragment: list[float]
    client_cpu: float
    cpu_by_kind: dict[str, float]  # CPU seconds per thread kind
    server_cpu: float
    audio_seconds: list[float]
    reconnects: int
    max_gap: float
    late_fragments: int
    rss_growth: float


def run(
    host: ServerHost,
    n: int,
    rate: float,
    jitter: float,
    timeout: float,
    make_sink: Callable[[], Sink],
    speed: float,
    preconnect: bool,
) -> Result:
    faults = FaultPlan(delay_audio=TONE_CHUNK_SECONDS / speed) if speed > 0 else None
    url = host.start_server("tone", faults=faults)
    base_threads, base_rss = threading.active_count(), rss_mb()
    probe = Probe()
    metrics: list[TurnMetrics | None] = [None] * n
    errors: Counter[str] = Counter()
    rng = random.Random(n)
    delays = [rng.uniform(0, jitter) for _ in range(n)]
    bridges: list[VoiceBridge] = []
    drivers: list[threading.Thread] = []
    peak_threads, peak_names, peak_rss = 0, Counter[str](), base_rss
    start = time.monotonic()
    client_cpu = server_cpu = 0.0
    cpu_before: dict[int, tuple[str, float]] = {}
    cpu_after: dict[int, tuple[str, float]] = {}
    driver_cpu: list[float] = []  # each driver's own thread_time() at its end
    try:
        with hooks(probe):
            bridges = [VoiceBridge(url=url, sinks=[make_sink()]) for _ in range(n)]
            if preconnect:
                for bridge in bridges:
                    bridge.preconnect()
                wait_connected(bridges, timeout)

            def drive(i: int) -> None:
                time.sleep(delays[i])
                try:
                    metrics[i] = bridges[i].speak(paced(tokens(TEXT, i), rate))
                except Exception as exc:  # counted and shown, never hidden
                    errors[f"{type(exc).__name__}: {str(exc)[:60]}"] += 1
                finally:
                    driver_cpu.append(time.thread_time())

            drivers = [
                threading.Thread(target=drive, args=(i,), name=f"bench-driver-{i}")
                for i in range(n)
            ]
            cpu_before = thread_cpu()
            client_cpu, server_cpu = time.process_time(), host.cpu_seconds()
            start = time.monotonic()
            for driver in drivers:
                driver.start()
            deadline = start + timeout
            while any(d.is_alive() for d in drivers) and time.monotonic() < deadline:
                count = threading.active_count()
                if count > peak_threads:
                    peak_threads = count
                    peak_names = Counter(thread_kind(t.name) for t in threading.enumerate())
                peak_rss = max(peak_rss, rss_mb())
                time.sleep(SAMPLE_EVERY)
            wall = time.monotonic() - start
            client_cpu = time.process_time() - client_cpu
            server_cpu = host.cpu_seconds() - server_cpu
            cpu_after = thread_cpu()  # bridge threads still alive; drivers have ended
            unfinished = sum(d.is_alive() for d in drivers)
    finally:  # also on Ctrl-C: barge in on the turns still running, then join (bounded)
        for driver, bridge in zip(drivers, bridges, strict=False):
            if driver.is_alive():
                bridge.interrupt()
        join_by = time.monotonic() + JOIN_TIMEOUT
        for driver in drivers:
            driver.join(max(0.0, join_by - time.monotonic()))
        for bridge in bridges:
            bridge.close()
        host.stop_server()
    done = [m for m in metrics if m is not None]
    cpu_by_kind: dict[str, float] = defaultdict(float)
    for ident, (kind, seconds) in cpu_after.items():
        if kind != "bench-driver":  # drivers report their own clocks when they end
            cpu_by_kind[kind] += seconds - cpu_before.get(ident, (kind, 0.0))[1]
    cpu_by_kind["bench-driver (speak callers, ended)"] = sum(driver_cpu)
    cpu_by_kind["other (ended, non-Python)"] = client_cpu - sum(cpu_by_kind.values())
    max_gap, late = probe.max_gap()
    sessions = sum(c for name, c in peak_names.items() if name.startswith("voicebridge"))
    return Result(
        n=n,
        completed=len(done),
        failed=sum(errors.values()),
        unfinished=unfinished,
        errors=errors,
        wall=wall,
        threads_per_session=sessions / n,
        peak_kinds=peak_names,
        all_threads_peak=peak_threads - base_threads,
        callback=probe.callbacks,
        connects=probe.connects,
        starts=probe.starts,
        first_audio=[m.time_to_first_audio for m in done if m.time_to_first_audio is not None],
        first_package=[m.first_package_delay for m in done if m.first_package_delay is not None],
        first_fragment=[
            m.time_to_first_fragment for m in done if m.time_to_first_fragment is not None
        ],
        client_cpu=client_cpu,
        cpu_by_kind=cpu_by_kind,
        server_cpu=server_cpu,
        audio_seconds=[m.audio_seconds for m in done],
        reconnects=sum(m.reconnects for m in done),
        max_gap=max_gap,
        late_fragments=late,
        rss_growth=peak_rss - base_rss,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[1, 10, 50, 200])
    parser.add_argument("--rate", type=float, default=30.0, help="tokens per second per bridge")
    parser.add_argument("--jitter", type=float, default=1.0, help="start spread in seconds")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds allowed per N")
    parser.add_argument("--sink", choices=("null", "realtime"), default="null")
    parser.add_argument(
        "--speed",
        type=float,
        default=0.0,
        help="server audio pace, x real time per connection (default 0: as fast as it can)",
    )
    parser.add_argument(
        "--preconnect", action="store_true", help="connect every bridge before the turns start"
    )
    parser.add_argument("--quick", action="store_true", help="N = 1, 10, 50")
    args = parser.parse_args()
    sizes = [1, 10, 50] if args.quick else args.n
    make_sink: Callable[[], Sink] = NullSink if args.sink == "null" else realtime_sink
    results = []
    with ServerHost() as host:
        for n in sizes:
            results.append(
                run(
                    host,
                    n,
                    args.rate,
                    args.jitter,
                    args.timeout,
                    make_sink,
                    args.speed,
                    args.preconnect,
                )
            )
            print(f"  N = {n} done", flush=True)
    base = results[0]
    base_cb = percentile(base.callback, 99)
    base_ttfa = statistics.median(base.first_audio) if base.first_audio else float("nan")
    rows = []
    for r in results:
        missed = r.failed + r.unfinished + r.reconnects + r.late_fragments
        ttfa = statistics.median(r.first_audio) if r.first_audio else float("nan")
        cb99 = percentile(r.callback, 99)
        rows.append(
            [
                r.n,
                f"{r.completed}/{r.failed}/{r.unfinished}",
                f"{r.wall:.1f}",
                f"{r.threads_per_session:.1f} ({r.all_threads_peak})",
                f"{percentile(r.callback, 50) * 1e6:.0f} / {cb99 * 1e6:.0f} / "
                f"{max(r.callback, default=float('nan')) * 1e6:.0f}",
                f"{cb99 / base_cb:.1f} x",
                f"{ttfa * 1000:.0f} / {percentile(r.first_audio, 99) * 1000:.0f}",
                f"{ttfa / base_ttfa:.1f} x",
                f"{percentile(r.first_fragment, 50) * 1000:.0f} / "
                f"{percentile(r.first_package, 50) * 1000:.0f}",
                f"{percentile(r.connects, 50) * 1000:.0f} / {percentile(r.connects, 99) * 1000:.0f}"
                f" ; {percentile(r.starts, 50) * 1000:.0f} / {percentile(r.starts, 99) * 1000:.0f}",
                f"{r.client_cpu / r.wall:.2f} / {r.server_cpu / r.wall:.2f}",
                f"{min(r.audio_seconds, default=0):.2f}-{max(r.audio_seconds, default=0):.2f}",
                f"{r.rss_growth:.0f} ({r.rss_growth / r.n:.2f})",
                f"{r.reconnects} / {r.late_fragments} (max gap {r.max_gap:.1f} s)",
                missed,
            ]
        )
    pace = f"{args.speed:g} x real time" if args.speed > 0 else "unpaced"
    print_table(
        f"N concurrent bridges, one turn each ({len(TEXT)} characters, {args.rate:g} tokens/s, "
        f"sink: {args.sink}, server audio pace: {pace}, preconnect: {args.preconnect}, "
        f"starts spread over {args.jitter:g} s; ratios to N = {base.n})",
        [
            "N",
            "completed/failed/unfinished",
            "wall s",
            "threads per session (all new threads at peak)",
            "callback p50 / p99 / max us",
            "callback p99 ratio",
            "first audio p50 / p99 ms",
            "first audio p50 ratio",
            "p50 ms: first token -> fragment sent / fragment -> first audio byte",
            "ms p50 / p99: WebSocket connect ; run-task -> task-started",
            "CPU cores used: client / server",
            "audio s per turn (min-max)",
            "peak RSS growth MiB (per session)",
            "reconnects / fragments > 20 s apart",
            "missed deadlines",
        ],
        rows,
    )
    for r in results:
        kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(r.peak_kinds.items()))
        print(f"N = {r.n}: threads at the peak: {kinds}")
        cpu = ", ".join(f"{kind} {sec:.2f}" for kind, sec in sorted(r.cpu_by_kind.items()))
        print(f"N = {r.n}: client CPU s by thread (of {r.client_cpu:.2f} s): {cpu}")
        for error, count in r.errors.items():
            print(f"N = {r.n}: {count} x {error}")


if __name__ == "__main__":
    main()
