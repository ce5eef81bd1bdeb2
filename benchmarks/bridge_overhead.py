"""Issue 5, overhead: the bridge's own CPU per second of audio, engine excluded.

    .venv/bin/python benchmarks/bridge_overhead.py [--turns 50] [--paced-turns 3] [--quick]

The local server (tone engine) runs in a child process, so this process's CPU time is the client's
alone. Three runs over the same text (a paragraph cut into 1-6 character tokens, fixed seed):

1. bare client (baseline): a SpeechSynthesizer sends the fragments the Fragmenter would cut
   (computed beforehand), one continue-task each, and counts the audio in its callback;
   no bridge, no fragmenter, no session thread, no audio pipeline;
2. bridge, unpaced: ``VoiceBridge.speak(tokens)`` with a NullSink, tokens as fast as they come;
3. bridge, paced: the same at ``--rate`` tokens per second (a realistic LLM), so the idle timers
   and polling of a real turn are included.

Each run does one unmeasured warm-up turn first. Client CPU is ``time.process_time()``; the
per-thread split reads each live thread's CPU clock (``pthread_getcpuclockid``), grouped by thread
name.
Prints CPU-ms per second of audio and the ratio to the bare client. Asserts nothing.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from bridge_common import ServerHost, paced, print_table, thread_cpu, tokens

from voicebridge.audio import NullSink
from voicebridge.bridge import VoiceBridge
from voicebridge.client import AudioFormat, ResultCallback, SpeechSynthesizer
from voicebridge.text.fragmenter import Fragmenter

BYTES_PER_SECOND = 22050 * 2  # 16-bit mono PCM at 22,050 Hz, the bridge's default
PARAGRAPH = (
    "Sure, here is a quick overview of how the process works, step by step, so you can follow "
    "along easily. First, the client opens a connection to the server and sends its request. "
    "Then it streams the text in small pieces, and the server answers with audio as soon as it "
    "can. The playback thread writes the audio to the speaker while the model keeps writing. "
    "语音合成服务会把文本切成句子，每个句子的音频都会立刻返回。"
    "Is that fast enough? For most people, yes, and the pauses between sentences stay short. "
    "When the network breaks, the unspoken text is sent again, and nothing is heard twice."
)


@dataclass
class Measured:
    name: str
    turns: int
    audio_seconds: float
    wall: float
    cpu: float  # client process CPU seconds
    server_cpu: float  # child process CPU seconds (server and engine)
    threads: dict[str, float]  # CPU seconds per thread name (threads alive at the end)


def measure(name: str, host: ServerHost, turns: int, turn: Callable[[], int]) -> Measured:
    """Run ``turn`` (returns audio bytes) once to warm up, then ``turns`` times measured."""
    turn()
    before = thread_cpu()
    server_before = host.cpu_seconds()
    wall, cpu = time.monotonic(), time.process_time()
    audio = sum(turn() for _ in range(turns))
    cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    server_cpu = host.cpu_seconds() - server_before
    per_name: dict[str, float] = defaultdict(float)
    for ident, (thread, seconds) in thread_cpu().items():
        per_name[thread] += seconds - before.get(ident, (thread, 0.0))[1]
    return Measured(name, turns, audio / BYTES_PER_SECOND, wall, cpu, server_cpu, dict(per_name))


class _Counter(ResultCallback):
    def __init__(self) -> None:
        self.bytes = 0

    def on_data(self, data: bytes) -> None:
        self.bytes += len(data)


def bare_client(url: str, host: ServerHost, turns: int) -> Measured:
    fragmenter = Fragmenter()
    fragments = [f.text for t in tokens(PARAGRAPH) for f in fragmenter.feed(t)]
    fragments += [f.text for f in fragmenter.flush()]
    counter = _Counter()
    synth = SpeechSynthesizer(
        "cosyvoice-v2", "longxiaochun_v2", format=AudioFormat.PCM_22050HZ_MONO_16BIT,
        callback=counter, url=url,
    )  # fmt: skip

    def turn() -> int:
        start = counter.bytes
        for fragment in fragments:
            synth.streaming_call(fragment)
        synth.streaming_complete(60_000)
        return counter.bytes - start

    try:
        return measure("bare client (baseline)", host, turns, turn)
    finally:
        synth.close()


def bridge(url: str, host: ServerHost, turns: int, rate: float | None) -> Measured:
    sink = NullSink()
    pieces = tokens(PARAGRAPH)
    with VoiceBridge(url=url, sinks=[sink]) as voice:

        def turn() -> int:
            start = sink.bytes_written  # cumulative while the pipeline lives
            voice.speak(pieces if rate is None else paced(pieces, rate))
            return sink.bytes_written - start

        name = "bridge, unpaced" if rate is None else f"bridge, paced {rate:g} tokens/s"
        return measure(name, host, turns, turn)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=50, help="unpaced turns (default 50)")
    parser.add_argument("--paced-turns", type=int, default=3, help="paced turns (default 3)")
    parser.add_argument("--rate", type=float, default=30.0, help="tokens per second when paced")
    parser.add_argument("--quick", action="store_true", help="5 unpaced turns, 1 paced turn")
    args = parser.parse_args()
    turns, paced_turns = (5, 1) if args.quick else (args.turns, args.paced_turns)
    with ServerHost() as host:
        url = host.start_server("tone")
        try:
            runs = [
                bare_client(url, host, turns),
                bridge(url, host, turns, None),
                bridge(url, host, paced_turns, args.rate),
            ]
        finally:
            host.stop_server()
    base = runs[0].cpu / runs[0].audio_seconds
    rows = []
    for run in runs:
        per_audio = run.cpu / run.audio_seconds
        rows.append(
            [
                run.name,
                run.turns,
                f"{run.audio_seconds:.0f}",
                f"{run.wall:.1f}",
                f"{run.cpu * 1000:.0f}",
                f"{per_audio * 1000:.2f}",
                f"{per_audio / base:.2f} x",
                f"{(per_audio - base) * 1000:+.2f}",
                f"{per_audio * 100:.2f} %",
                f"{run.server_cpu / run.audio_seconds * 1000:.2f}",
            ]
        )
    print_table(
        f"Client CPU per second of audio (tone engine, server in a child process; "
        f"{len(tokens(PARAGRAPH))} tokens per turn)",
        [
            "run",
            "turns",
            "audio s",
            "wall s",
            "client CPU ms",
            "client CPU-ms per audio s",
            "ratio to bare client",
            "bridge's own CPU-ms per audio s",
            "share of one core at real time",
            "server+engine CPU-ms per audio s (child)",
        ],
        rows,
    )
    names = sorted({name for run in runs for name in run.threads})
    print_table(
        "Per thread: CPU-ms per second of audio "
        "('unaccounted' = process CPU minus live Python threads: threads that ended, others)",
        ["run", *names, "unaccounted"],
        [
            [
                run.name,
                *(f"{run.threads.get(name, 0.0) / run.audio_seconds * 1000:.2f}" for name in names),
                f"{(run.cpu - sum(run.threads.values())) / run.audio_seconds * 1000:.2f}",
            ]
            for run in runs
        ],
    )


if __name__ == "__main__":
    main()
