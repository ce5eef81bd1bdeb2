"""Issue 4: the extra latency a rollover or a reconnect adds to the next audio.

    .venv/bin/python benchmarks/bridge_resilience.py [--n 20] [--engine tone|espeak|both] [--quick]

For each engine of the local server (run in a child process, so the client owns its CPU and GIL),
the time from one text piece (a whole sentence, handed to the bridge by its source) to the first
audio byte of that piece at a sink (a CallbackSink stamping ``time.monotonic()`` on the pipeline's
dispatcher thread). Before each measured piece the previous audio has finished (no chunk for
``QUIET`` s), so the first chunk after the piece is the piece's own. Cases:

a. warm: the next sentence of a turn, the task still open (baseline of every ratio);
b. after an idle rollover: the source paused longer than ``rollover_after`` (0.5 s here), the
   task was finished and the next text opens a new task on the same connection;
c. after a dropped connection: the server aborts TCP on receiving the piece (FaultPlan
   ``drop_at=Trigger(TEXT, 2)``); the bridge reconnects and replays it;
c2. a drop right after the previous sentence ended (``drop_at=Trigger(SENTENCE_END, 1)``): the
   bridge reconnects before the next text comes;
d. a cold start whose first handshake is refused (503 once, then the default 0.1 s backoff);
e. a cold start (new bridge, no connection yet), then with ``preconnect()`` and with
   ``preconnect(start_task=True)`` done ``PRECONNECT_WAIT`` s before the piece.

Each case repeats ``--n`` times (fresh server and bridge per repetition in c-e) and prints
median/p90 and the ratio to case a measured in the same run, plus what the bridge reported
(rollovers, reconnects, handshake retries), so a case that did not happen shows. Asserts nothing.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from bridge_common import ServerHost, percentile, print_table

from voicebridge.audio import CallbackSink
from voicebridge.bridge import TurnMetrics, VoiceBridge
from voicebridge.llm import EndOfTurn
from voicebridge.server import FaultPlan, FaultPoint, Trigger
from voicebridge.session import SessionSettings

QUIET = 0.12  # seconds without audio that mean "the previous sentence has been delivered"
GAP = 0.05  # seconds of further silence before a warm piece (well under rollover_after)
AUDIO_TIMEOUT = 15.0  # seconds a piece may take to produce audio before it counts as lost
ROLLOVER_AFTER = 0.5  # seconds; only case b uses it, the others keep the default 8 s
ROLLOVER_MARGIN = 0.3  # seconds waited beyond rollover_after for the task to be finished
PRECONNECT_WAIT = 0.3  # seconds between preconnect() and the first piece
SENTENCES = (
    "The bridge keeps talking while the model is still writing. ",
    "Every sentence goes to the speech service as soon as it is complete. ",
    "Audio comes back in small chunks and is played at once. ",
    "A long pause in the model does not lose a single word. ",
    "When the network breaks, the unspoken text is sent again. ",
)


class AudioClock:
    """Stamps every chunk the pipeline hands to the sink (dispatcher thread) with monotonic time."""

    def __init__(self) -> None:
        self._times: list[float] = []
        self._changed = threading.Condition()

    def sink(self) -> CallbackSink:
        return CallbackSink(self._stamp)

    def _stamp(self, chunk: bytes) -> None:
        with self._changed:
            self._times.append(time.monotonic())
            self._changed.notify_all()

    def first_after(self, t0: float, timeout: float = AUDIO_TIMEOUT) -> float | None:
        """The first chunk time at or after ``t0``, waiting up to ``timeout`` s; None if none."""
        deadline = t0 + timeout
        with self._changed:
            while True:
                later = [t for t in self._times if t >= t0]
                if later:
                    return later[0]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._changed.wait(remaining)

    def wait_quiet(self, quiet: float = QUIET, timeout: float = AUDIO_TIMEOUT) -> None:
        """Return once no chunk has arrived for ``quiet`` s (at most ``timeout`` s)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while time.monotonic() < deadline:
                last = self._times[-1] if self._times else 0.0
                wait = last + quiet - time.monotonic()
                if wait <= 0:
                    return
                self._changed.wait(wait)


@dataclass
class Samples:
    """Latencies (seconds) of one case, and what the bridge reported while they were taken."""

    latencies: list[float] = field(default_factory=list)
    lost: int = 0  # pieces without audio within AUDIO_TIMEOUT
    rollovers: int = 0
    reconnects: int = 0
    retries: int = 0  # handshake / start attempts the session logged as failed

    def add(self, latency: float | None) -> None:
        if latency is None:
            self.lost += 1
        else:
            self.latencies.append(latency)

    def count(self, metrics: TurnMetrics) -> None:
        self.rollovers += metrics.rollovers
        self.reconnects += metrics.reconnects


class RetryCounter(logging.Handler):
    """Counts the session's "attempt N failed ... retrying" warnings."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("attempt "):
            self.count += 1


def script(
    clock: AudioClock,
    pieces: list[str],
    before: Callable[[int, float], None],
    fed: list[float],
) -> Iterator[object]:
    """A source: before piece i > 0, wait for the previous piece's audio to start and end, then
    call ``before(i, fed[i - 1])``; stamp each piece in ``fed`` right before handing it over.
    Each piece is followed by an end-of-turn marker so the fragmenter holds nothing back."""
    for i, piece in enumerate(pieces):
        if i > 0:
            clock.first_after(fed[-1])
            clock.wait_quiet()
            before(i, fed[-1])
        fed.append(time.monotonic())
        yield piece
        yield EndOfTurn("flush")


def sleep_until(deadline: float) -> None:
    delay = deadline - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def one_turn(
    url: str,
    pieces: list[str],
    before: Callable[[int, float], None],
    settings: SessionSettings | None = None,
    preconnect: bool | None = None,
) -> tuple[list[float | None], TurnMetrics]:
    """Speak ``pieces`` as one turn on a new bridge; latency of each piece (None if lost).
    ``preconnect``: None = cold, False/True = ``preconnect(start_task=...)`` first."""
    clock = AudioClock()
    fed: list[float] = []
    with VoiceBridge(url=url, sinks=[clock.sink()], settings=settings) as bridge:
        if preconnect is not None:
            bridge.preconnect(start_task=preconnect)
            time.sleep(PRECONNECT_WAIT)
        metrics = bridge.speak(script(clock, pieces, before, fed))
        latencies = []
        for t0 in fed:
            first = clock.first_after(t0, timeout=0.0)
            latencies.append(None if first is None else first - t0)
    return latencies, metrics


def warm_gap(i: int, previous: float) -> None:
    time.sleep(GAP)


def rollover_gap(i: int, previous: float) -> None:
    sleep_until(previous + ROLLOVER_AFTER + ROLLOVER_MARGIN)


def sentences(count: int) -> list[str]:
    return [SENTENCES[i % len(SENTENCES)] for i in range(count)]


def in_turn(
    host: ServerHost,
    engine: str,
    n: int,
    before: Callable[[int, float], None],
    settings: SessionSettings | None,
) -> Samples:
    """Cases a and b: one turn of n + 1 pieces on one server; the first piece is not counted."""
    samples = Samples()
    url = host.start_server(engine)
    try:
        latencies, metrics = one_turn(url, sentences(n + 1), before, settings)
    finally:
        host.stop_server()
    for latency in latencies[1:]:
        samples.add(latency)
    samples.count(metrics)
    return samples


def fresh_each_time(
    host: ServerHost,
    engine: str,
    n: int,
    faults: FaultPlan | None,
    pieces: int,
    preconnect: bool | None = None,
) -> Samples:
    """Cases c-e: per repetition a new server (``faults``) and bridge; the last piece counts."""
    samples = Samples()
    retries = RetryCounter()
    logger = logging.getLogger("voicebridge.session")
    level, propagate = logger.level, logger.propagate
    logger.setLevel(logging.WARNING)
    logger.propagate = False  # counted here, not printed
    logger.addHandler(retries)
    try:
        for _ in range(n):
            url = host.start_server(engine, faults=faults)
            try:
                latencies, metrics = one_turn(url, sentences(pieces), warm_gap, None, preconnect)
            finally:
                host.stop_server()
            samples.add(latencies[-1])
            samples.count(metrics)
    finally:
        logger.removeHandler(retries)
        logger.setLevel(level)
        logger.propagate = propagate
    samples.retries = retries.count
    return samples


def run_engine(host: ServerHost, engine: str, n: int) -> list[list[object]]:
    first_conn = frozenset({1})
    cases: list[tuple[str, Callable[[], Samples]]] = [
        ("a. warm task (baseline)", lambda: in_turn(host, engine, n, warm_gap, None)),
        (
            "b. after idle rollover",
            lambda: in_turn(
                host,
                engine,
                n,
                rollover_gap,
                SessionSettings(idle_flush_after=0.1, rollover_after=ROLLOVER_AFTER),
            ),
        ),
        (
            "c. drop on the piece -> reconnect + replay",
            lambda: fresh_each_time(
                host,
                engine,
                n,
                FaultPlan(connections=first_conn, drop_at=Trigger(FaultPoint.TEXT, 2)),
                pieces=2,
            ),
        ),
        (
            "c2. drop after previous sentence-end",
            lambda: fresh_each_time(
                host,
                engine,
                n,
                FaultPlan(connections=first_conn, drop_at=Trigger(FaultPoint.SENTENCE_END, 1)),
                pieces=2,
            ),
        ),
        (
            "d. cold, 1st handshake refused (503)",
            lambda: fresh_each_time(
                host, engine, n, FaultPlan(refuse_handshakes=1, refuse_status=503), pieces=1
            ),
        ),
        ("e. cold start", lambda: fresh_each_time(host, engine, n, None, pieces=1)),
        (
            "e. preconnect()",
            lambda: fresh_each_time(host, engine, n, None, pieces=1, preconnect=False),
        ),
        (
            "e. preconnect(start_task=True)",
            lambda: fresh_each_time(host, engine, n, None, pieces=1, preconnect=True),
        ),
    ]
    rows: list[list[object]] = []
    baseline = float("nan")
    for name, measure in cases:
        samples = measure()
        median = statistics.median(samples.latencies) if samples.latencies else float("nan")
        if not rows:
            baseline = median
        rows.append(
            [
                engine,
                name,
                f"{len(samples.latencies)}/{len(samples.latencies) + samples.lost}",
                f"{median * 1000:.1f}",
                f"{percentile(samples.latencies, 90) * 1000:.1f}",
                f"{(median - baseline) * 1000:+.1f}",
                f"{median / baseline:.1f} x",
                f"{samples.rollovers} / {samples.reconnects} / {samples.retries}",
            ]
        )
        print(f"  {engine}: {name} done", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=20, help="repetitions per case (default 20)")
    parser.add_argument("--engine", choices=("tone", "espeak", "both"), default="both")
    parser.add_argument("--quick", action="store_true", help="5 repetitions, tone engine only")
    args = parser.parse_args()
    n = 5 if args.quick else args.n
    engines = (
        ["tone"] if args.quick else ["tone", "espeak"] if args.engine == "both" else [args.engine]
    )
    logging.basicConfig(level=logging.ERROR)
    rows: list[list[object]] = []
    started = time.monotonic()
    with ServerHost() as host:
        for engine in engines:
            rows.extend(run_engine(host, engine, n))
    print_table(
        f"Time from a text piece to its first audio at the sink, {n} repetitions per case "
        f"(ms; ratio = median / median of case a, same engine, same run)",
        [
            "engine",
            "case",
            "pieces with audio",
            "median ms",
            "p90 ms",
            "extra vs a (ms)",
            "ratio to a",
            "rollovers / reconnects / handshake retries",
        ],
        rows,
    )
    print(f"\n(wall time {time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
