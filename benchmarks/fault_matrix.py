"""Issue 10: the bridge attacked from outside, counted exactly (the figures of README's promises).

    .venv/bin/python benchmarks/fault_matrix.py [--runs 10] [--restarts 6 25] [--deploys 4 20]
                                                [--minutes 10] [--speed 50] [--quick]

Every turn runs through a real ``VoiceBridge`` against the local server's ``text`` engine, whose
audio encodes the text it was given: decoding what the sink received gives exactly what a
listener heard, so words lost and repeated are counted, not estimated. The faults come from
outside the bridge (``tests/fault_tools``): a frame-aware TCP proxy (resets at any byte, stalls,
silence, corrupted frames, 503s during a deploy), a server process killed with SIGKILL and
started again on the same port, the server's fault plan, sources that fail.

Columns: *outcome* is how the turns ended (every word spoken, or an error that carries the
unspoken text, where no success is possible); *words lost* are words neither heard nor handed
back in ``unspoken_text``; *words repeated* are words heard more than once; *longest outage*
is the longest time the service was gone in a turn that still spoke every word; *answer heard
in full* is the longest answer (audio) heard completely; *connections* the most one turn opened.
Restart and deploy rows use the default ``SessionSettings`` (their retry budget is the point);
the others shorten the timers (``tests/fault_tools/scenarios.QUICK``).

The secrets table: each attack with the bridge and the SDK-shaped client; where the key showed
(another host, the error's text, its traceback rendered with every frame's locals, the logs).
The last rows pass a bad argument next to the key: the constructor's own frame is then in the
traceback.

Asserts nothing; binds only 127.0.0.1; every thread joined, every child process killed.
``--quick``: one run of each, a 2 s restart, a 2 s deploy, a 1-minute answer.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import random
import socket
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.fault_tools

from bridge_common import print_table

from tests.fault_tools.listening import FakeSpeaker, Recorder
from tests.fault_tools.proxy import (
    FaultProxy,
    Freeze,
    Hold,
    HttpResponder,
    Replace,
    ServerFrame,
    Verdict,
    accept_then_close,
    redirect_to,
    refuse_echoing,
)
from tests.fault_tools.scenarios import (
    ANSWER,
    QUICK,
    Outcome,
    after_first_audio,
    after_task_started,
    corrupt_text_frame,
    damage_frame_header,
    key_clients,
    long_answer,
    reset_at_random_bytes,
    secret_leaks,
    speak,
    speak_through_outage,
    tokens,
)
from tests.fault_tools.serve_process import ServeProcess, free_port
from voicebridge import VoiceBridge
from voicebridge.client import SpeechSynthesizer
from voicebridge.errors import VoiceBridgeError
from voicebridge.server import FaultPlan, FaultPoint, ServerThread, Trigger
from voicebridge.server.service import ServerLimits

FIRST = "The service is about to go away. It spoke this much first, and then"
SECOND = " it came back. Everything after the outage is spoken once, and nothing is lost."
KEY = "sk-3f9a1c77e0b24d5e8c1d2f4a6b8c0e13"  # made up


@dataclass
class Row:
    """The figures of one fault, over its runs."""

    fault: str
    expect_error: bool = False  # no success is possible: the turn must end in an error
    runs: int = 0
    spoken: int = 0  # turns that ended with every word spoken
    reported: int = 0  # turns that ended in an error carrying the unspoken text
    changed: int = 0  # turns that succeeded, but what was heard differs from the text
    lost: int = 0
    repeated: int = 0
    outage: float = 0.0
    heard_seconds: float = 0.0
    connections: int = 0
    seconds: float = 0.0

    def add(
        self, outcome: Outcome, expected: str, *, outage: float = 0.0, connections: int = 0
    ) -> None:
        self.runs += 1
        lost, repeated = outcome.count(expected)
        self.lost += lost
        self.repeated += repeated
        self.connections = max(self.connections, connections)
        self.seconds = max(self.seconds, outcome.seconds)
        if outcome.error is None and outcome.heard == expected:
            self.spoken += 1
            self.outage = max(self.outage, outage)
            if outcome.metrics is not None:
                self.heard_seconds = max(self.heard_seconds, outcome.metrics.audio_seconds)
        elif outcome.error is not None and expected.endswith(outcome.error.unspoken_text):
            self.reported += 1
        elif outcome.error is None:
            self.changed += 1

    def cells(self) -> list[object]:
        if self.expect_error:
            outcome = f"{self.reported}/{self.runs} error + unspoken text"
        else:
            outcome = f"{self.spoken}/{self.runs} every word spoken"
            if self.reported:
                outcome += f", {self.reported} error + unspoken text"
        if self.changed:
            outcome += f", {self.changed} heard other than written"
        return [
            self.fault,
            self.runs,
            outcome,
            self.lost,
            self.repeated,
            f"{self.outage:.1f} s" if self.outage else "-",
            _duration(self.heard_seconds),
            self.connections or "-",
            f"{self.seconds:.1f} s",
        ]


def _duration(seconds: float) -> str:
    if not seconds:
        return "-"
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


@contextlib.contextmanager
def text_server(**kwargs: object) -> Iterator[ServerThread]:
    with ServerThread(engine="text", **kwargs) as server:  # type: ignore[arg-type]
        yield server


def through_proxy(
    row: Row, rule: Callable[[ServerFrame], Verdict], text: str, **kw: object
) -> None:
    with text_server() as server, FaultProxy.to_url(server.url, rule) as proxy:
        outcome = speak(proxy.url, tokens(text), **kw)  # type: ignore[arg-type]
        row.add(outcome, text, connections=proxy.connections)


# ---------------------------------------------------------------------- the faults


def random_resets(runs: int) -> Row:
    row = Row("connection reset at a random byte of a random frame (2 per turn)")
    for seed in range(runs):
        through_proxy(row, reset_at_random_bytes(seed), ANSWER)
    return row


def corrupted_frames(runs: int) -> Row:
    row = Row("one corrupted frame mid-turn (not JSON, not UTF-8, bad header, unknown event)")
    payloads = [b'{"header": {"event": "result-gen', b'{"header":"\xff\xfe"}', b'{"header":{}}']
    rng = random.Random(1)
    for n in range(runs):
        position = rng.randint(2, 30)
        kind = n % 4
        rule = (
            damage_frame_header(position)
            if kind == 3
            else corrupt_text_frame(position // 2, payloads[kind])
        )
        through_proxy(row, rule, ANSWER)
    return row


def stalls(runs: int) -> tuple[Row, Row]:
    short = Row("network stall of 0.8 s (under the 1.5 s stall timeout)")
    silent = Row("connection goes silent, socket open (replaced after the stall timeout)")
    rng = random.Random(2)
    for _ in range(runs):
        index = rng.randint(1, 40)

        def hold(frame: ServerFrame, index: int = index) -> Verdict:
            return Hold(0.8) if frame.connection == 1 and frame.index == index else None

        def freeze(frame: ServerFrame, index: int = index) -> Verdict:
            return Freeze() if frame.connection == 1 and frame.index == index else None

        through_proxy(short, hold, ANSWER)
        through_proxy(silent, freeze, ANSWER)
    return short, silent


def server_faults(runs: int) -> Row:
    row = Row("server aborts TCP or fails the task at a random point (fault plan)")
    rng = random.Random(3)
    for _ in range(runs):
        point = rng.choice([FaultPoint.AUDIO, FaultPoint.SENTENCE_END, FaultPoint.TEXT])
        trigger = Trigger(point, rng.randint(1, 20 if point is FaultPoint.AUDIO else 4))
        kind = rng.choice(["drop_at", "fail_at"])
        plan = FaultPlan(connections=frozenset({1, 2}), **{kind: trigger})  # type: ignore[arg-type]
        with text_server(faults=plan) as server:
            outcome = speak(server.url, tokens(ANSWER))
            row.add(outcome, ANSWER, connections=len(server.transcripts))
    return row


def llm_pauses(runs: int) -> Row:
    row = Row("LLM pauses longer than the service's idle timer (1 s timer, 1.6 s pauses)")
    for seed in range(runs):
        pieces = tokens(ANSWER)
        pauses = set(random.Random(seed).sample(range(1, len(pieces)), 2))

        def paused(pieces: list[str] = pieces, pauses: set[int] = pauses) -> Iterator[str]:
            for i, piece in enumerate(pieces):
                if i in pauses:
                    time.sleep(1.6)
                yield piece

        with text_server(limits=ServerLimits(idle_timeout=1.0)) as server:
            settings = replace(QUICK, idle_flush_after=0.1, rollover_after=0.4)
            row.add(speak(server.url, paused(), settings), ANSWER)
    return row


def restarts(outages: list[float]) -> Row:
    row = Row("server process killed (SIGKILL), restarted on the same port (default budget)")
    for seconds in outages:
        measured: list[float] = []  # down until it listens again
        with ServeProcess(engine="text") as server:

            def crash_and_restart(
                seconds: float = seconds,
                server: ServeProcess = server,
                down: list[float] = measured,
            ) -> None:
                started = time.monotonic()
                server.kill()
                time.sleep(seconds)
                server.start()
                down.append(time.monotonic() - started)

            outcome = speak_through_outage(server.url, crash_and_restart, FIRST, SECOND)
            row.add(outcome, FIRST + SECOND, outage=measured[0] if measured else 0.0)
    return row


def deploys(outages: list[float]) -> Row:
    row = Row("rolling deploy: connections reset, then HTTP 503 for a while (default budget)")
    for seconds in outages:
        with text_server() as server, FaultProxy.to_url(server.url) as proxy:

            def deploy(seconds: float = seconds) -> None:
                proxy.refuse_for(seconds)
                proxy.reset_all()

            outcome = speak_through_outage(proxy.url, deploy, FIRST, SECOND)
            row.add(outcome, FIRST + SECOND, outage=seconds, connections=proxy.connections)
    return row


def long_answers(minutes: float, speed: float) -> Row:
    row = Row(f"a {minutes:g}-minute answer, played at {speed:g}x real time (paces sending)")
    text = long_answer(minutes)
    speaker = FakeSpeaker(speed, slice_seconds=1.0)
    settings = replace(
        QUICK, idle_flush_after=0.1, rollover_after=0.4, progress_timeout=2.0
    )  # real timers / 30 or less: at this speed a wait not bounded by progress would fire
    with text_server() as server:
        row.add(speak(server.url, tokens(text), settings, sinks=[speaker]), text)
    return row


def failing_sources(runs: int) -> Row:
    row = Row("the LLM stream raises mid-answer (speaker-like sink): what arrived is heard")
    for _ in range(runs):

        def source() -> Iterator[str]:
            yield from tokens(ANSWER)
            raise ConnectionResetError("the LLM's stream was reset")

        with text_server() as server:
            outcome = speak(server.url, source(), sinks=[FakeSpeaker(speed=8.0)])
        # Its SourceError carries no unspoken text: all that arrived was spoken.
        row.add(replace(outcome, error=None) if outcome.heard == ANSWER else outcome, ANSWER)
    return row


def hopeless(runs: int) -> list[Row]:
    rows = [
        Row("every connection reset just after task-started", expect_error=True),
        Row("every connection reset just after its first audio frame", expect_error=True),
        Row("garbage instead of every text frame", expect_error=True),
    ]

    def garbage(frame: ServerFrame) -> Verdict:
        return Replace(b"<html>502 Bad Gateway</html>") if frame.text else None

    closing = Row("gateway accepts every WebSocket and closes it at once", expect_error=True)
    for _ in range(runs):
        for row, rule in zip(rows, (after_task_started, after_first_audio, garbage), strict=True):
            through_proxy(row, rule, ANSWER)
        with HttpResponder(accept_then_close) as gateway:
            outcome = speak(gateway.url, tokens(ANSWER))
            closing.add(outcome, ANSWER, connections=len(gateway.requests))
    return [*rows, closing]


# ---------------------------------------------------------------------- secrets


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def attack(client: Callable[[str], None], url: str) -> list[str]:
    """Where the key showed after ``client`` failed at ``url``."""
    handler = _Records()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        client(url)
    except VoiceBridgeError as exc:
        return secret_leaks(KEY, exc, handler.records)
    else:
        return ["no error at all"]
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def secrets() -> list[list[object]]:
    rows: list[list[object]] = []
    for name, client in key_clients(KEY).items():
        with HttpResponder(refuse_echoing(401)) as elsewhere:
            location = f"ws://localhost:{elsewhere.port}/api-ws/v1/inference"
            with HttpResponder(redirect_to(location)) as gateway:
                places = attack(client, gateway.url)
            if elsewhere.requests:
                places.append("sent to the other host")
        rows.append(["307 redirect to another host during the handshake", name, places])
        with HttpResponder(refuse_echoing(401)) as echo:
            rows.append(["401 whose body echoes the request", name, attack(client, echo.url)])
        plan = FaultPlan(
            fail_at=Trigger(FaultPoint.TEXT, 1),
            fail_code="InvalidParameter",
            fail_message=f"key {KEY} has no access to this model",
        )
        with text_server(api_key=KEY, faults=plan) as server:
            rows.append(["task-failed quoting the key", name, attack(client, server.url)])
        closed = f"ws://127.0.0.1:{free_port()}/api-ws/v1/inference"
        rows.append(["connection refused", name, attack(client, closed)])
        with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers
            port = silent.getsockname()[1]
            url = f"ws://127.0.0.1:{port}/api-ws/v1/inference"
            rows.append(["handshake never answered (timeout)", name, attack(client, url)])
    for name, build in (
        ("VoiceBridge", lambda: VoiceBridge(api_key=KEY, volume=500, sinks=[Recorder()])),
        ("SpeechSynthesizer", lambda: SpeechSynthesizer("", "", api_key=KEY)),
    ):
        places = attack(lambda _url, build=build: build(), "")  # type: ignore[misc]
        rows.append(["a bad argument next to the key", name, places])
    return [[a, c, ", ".join(p) if p else "nowhere"] for a, c, p in rows]


# ---------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="runs of each random fault")
    parser.add_argument("--restarts", type=float, nargs="+", default=[6.0, 25.0])
    parser.add_argument("--deploys", type=float, nargs="+", default=[4.0, 20.0])
    parser.add_argument("--minutes", type=float, default=10.0, help="the long answer")
    parser.add_argument("--speed", type=float, default=50.0, help="the fake speaker's speed")
    parser.add_argument("--quick", action="store_true", help="smoke run: one of each, short")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.restarts, args.deploys, args.minutes = 1, [2.0], [2.0], 1.0
    logging.basicConfig(level=logging.CRITICAL)  # the retries' warnings would drown the tables
    for handler in logging.getLogger().handlers:
        handler.setLevel(logging.CRITICAL)  # also while attack() collects DEBUG records
    started = time.monotonic()
    rows = [
        random_resets(args.runs),
        corrupted_frames(args.runs),
        *stalls(max(1, args.runs // 2)),
        server_faults(args.runs),
        llm_pauses(max(1, args.runs // 5)),
        restarts(args.restarts),
        deploys(args.deploys),
        long_answers(args.minutes, args.speed),
        failing_sources(max(1, args.runs // 5)),
        *hopeless(max(1, args.runs // 5)),
    ]
    print_table(
        "Faults (text engine; words counted from the audio the sink received)",
        ["fault", "runs", "outcome", "words lost", "words repeated", "longest outage survived",
         "answer heard in full", "connections (max)", "longest turn"],
        [row.cells() for row in rows],
    )  # fmt: skip
    print_table("Secrets: where the key showed", ["attack", "client", "key found"], secrets())
    turns = sum(row.runs for row in rows)
    lost, repeated = sum(r.lost for r in rows), sum(r.repeated for r in rows)
    print(f"\n{turns} turns in {time.monotonic() - started:.0f} s: {lost} words lost, ", end="")
    print(f"{repeated} repeated.")


if __name__ == "__main__":
    main()
