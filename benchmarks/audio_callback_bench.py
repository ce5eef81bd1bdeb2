"""Audio path benchmarks (issue 5): the receive callback while the device stalls, and the queue hop.

    .venv/bin/python benchmarks/audio_callback_bench.py [--seconds 2] [--turns 40] [--stand-in]

1. Receive-callback time: a thread calls ``AudioPipeline.receive`` once a millisecond with 0.1 s
   chunks, first while the sinks keep up, then while the playback device is stalled for
   ``--seconds`` (the player is paused: its buffer fills, the dispatcher blocks, the janus queue
   grows). Baseline in the same run: a bare janus ``put_nowait`` with a consumer thread.
   Goal: p99 under 100 us, max under 1 ms.
2. Queue hop: from the first ``receive`` of a turn to the first write to the device (the player
   starts the stream and writes), and to the dispatcher's first ``Sink.write``. Goal: p99 < 5 ms.

The device is real PyAudio on a private PulseAudio null sink (``.ci/pulse.sh``) when pulseaudio,
parec and PyAudio are installed; otherwise (or with ``--stand-in``) a stand-in device that is
named as such in the tables. Prints tables; asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import janus
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.audio.pulse

from tests.audio.pulse import PulseUnavailable, private_pulse
from voicebridge.audio import (
    AudioPipeline,
    CallbackSink,
    NullSink,
    PcmFormat,
    PyAudioSink,
    Sink,
)

FMT = PcmFormat(22050)
CHUNK = bytes(int(0.1 * FMT.sample_rate) * FMT.frame_size)  # 0.1 s of audio per frame
INTERVAL = 0.001  # seconds between receive calls


class StandInDevice(CallbackSink):
    """A stand-in for a device (no PyAudio/PulseAudio here): ``pause()`` blocks its writes."""

    def __init__(self) -> None:
        self._playing = threading.Event()
        self._playing.set()
        self.run_started_at: float | None = None
        super().__init__(self._play)

    def _play(self, chunk: bytes) -> None:
        if self.run_started_at is None:
            self.run_started_at = time.monotonic()
        self._playing.wait(30.0)

    def abort(self) -> None:
        self._playing.set()

    def pause(self) -> None:
        self._playing.clear()

    def resume(self) -> None:
        self._playing.set()


def percentiles(samples: list[float]) -> tuple[float, float, float]:
    values = np.asarray(samples)
    return float(np.percentile(values, 50)), float(np.percentile(values, 99)), float(values.max())


def time_calls(call: Callable[[], None], seconds: float) -> list[float]:
    """Call ``call`` once per INTERVAL for ``seconds``; each call's duration in microseconds."""
    durations: list[float] = []
    clock = time.perf_counter_ns
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        before = clock()
        call()
        durations.append((clock() - before) / 1000)
        time.sleep(INTERVAL)
    return durations


def bare_janus(seconds: float) -> list[float]:
    queue: janus.Queue[bytes | None] = janus.Queue()

    def consume() -> None:
        while queue.sync_q.get() is not None:
            pass

    consumer = threading.Thread(target=consume)
    consumer.start()
    try:
        return time_calls(lambda: queue.sync_q.put_nowait(CHUNK), seconds)
    finally:
        queue.sync_q.put_nowait(None)
        consumer.join(5)
        queue.close()


def pipeline_receive(
    sink: Sink, seconds: float, stall: StandInDevice | PyAudioSink | None
) -> list[float]:
    with AudioPipeline([sink], FMT) as pipe:
        turn = pipe.begin_turn()
        if stall is not None:
            stall.pause()
        try:
            durations = time_calls(lambda: pipe.receive(turn, CHUNK), seconds)
            queued = pipe.buffered_seconds
        finally:
            if stall is not None:
                stall.resume()
            pipe.interrupt()  # do not play the minutes of audio that piled up
        print(f"    ({len(durations)} calls, {queued:.0f} s of audio buffered at the end)")
        return durations


def queue_hops(sink: StandInDevice | PyAudioSink, turns: int) -> tuple[list[float], list[float]]:
    """Milliseconds from the first receive() to the first Sink.write() and to the device."""
    to_sink: list[float] = []
    to_device: list[float] = []
    with AudioPipeline([sink], FMT) as pipe:
        for _ in range(turns):
            turn = pipe.begin_turn()
            sink.run_started_at = None
            received_at = time.monotonic()
            pipe.receive(turn, CHUNK[: len(CHUNK) // 2])
            pipe.end_turn(turn)
            pipe.wait_turn_done(turn, timeout=10)
            first_write = pipe.turn_stats(turn).first_write_at
            assert first_write is not None and sink.run_started_at is not None
            to_sink.append((first_write - received_at) * 1000)
            to_device.append((sink.run_started_at - received_at) * 1000)
    return to_sink, to_device


def row(name: str, samples: list[float], unit: str, baseline_p99: float | None, goal: str) -> str:
    p50, p99, worst = percentiles(samples)
    ratio = f"{p99 / baseline_p99:6.1f}x" if baseline_p99 else "     - "
    return f"  {name:<44} {p50:9.1f} {p99:9.1f} {worst:9.1f} {unit:<3} {ratio}  {goal}"


@contextlib.contextmanager
def device(stand_in: bool) -> Iterator[tuple[str, Callable[[], StandInDevice | PyAudioSink]]]:
    if not stand_in:
        try:
            with private_pulse(FMT.sample_rate):
                yield "PyAudio on a PulseAudio null sink", lambda: PyAudioSink("pulse")
            return
        except PulseUnavailable as exc:
            print(f"no real device ({exc}); using the stand-in device")
    yield "stand-in device (no real audio output)", StandInDevice


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="length of the device stall")
    parser.add_argument("--turns", type=int, default=40, help="turns for the queue hop")
    parser.add_argument("--stand-in", action="store_true", help="do not use PyAudio")
    parser.add_argument("--quick", action="store_true", help="smoke mode: 0.2 s stall, 3 turns")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.turns = 0.2, 3

    with device(args.stand_in) as (label, make_device):
        print(f"device: {label}")
        print("\n1. receive() callback time (microseconds)")
        baseline = bare_janus(args.seconds)
        base_p99 = percentiles(baseline)[1]
        flowing = pipeline_receive(NullSink(), args.seconds, None)
        stalled_device = make_device()
        stalled = pipeline_receive(stalled_device, args.seconds, stalled_device)
        header = f"  {'':<44} {'p50':>9} {'p99':>9} {'max':>9} {'':<3} {'p99/base':>7}  goal"
        print(header)
        print(row("bare janus put_nowait (baseline)", baseline, "us", None, ""))
        print(row("receive(), sinks keeping up", flowing, "us", base_p99, ""))
        print(
            row(
                f"receive(), device stalled {args.seconds:g} s",
                stalled,
                "us",
                base_p99,
                "p99 < 100 us, max < 1000 us",
            )
        )

        print(f"\n2. queue hop over {args.turns} turns (milliseconds)")
        to_sink, to_device = queue_hops(make_device(), args.turns)
        print(header)
        print(row("first receive() -> first Sink.write()", to_sink, "ms", None, ""))
        print(row("first receive() -> first device write", to_device, "ms", None, "p99 < 5 ms"))


if __name__ == "__main__":
    main()
