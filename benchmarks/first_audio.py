"""Issue 11: time to first audio against the clause floor, measured in the same run.

    .venv/bin/python benchmarks/first_audio.py [--repeats 7] [--engine espeak|tone] [--quick]
        [--plot FILE.png]

The local server (espeak-ng by default) runs in a child process. Every client gets the same
paced token stream and first audio is timed from its first token to its first audio byte:

- **clause floor** (oracle): a bare client (voicebridge.client.SpeechSynthesizer) that connected
  and started its task before the first token, streams every token as it comes, and flushes right
  after the first clause of three words or more — the earliest any client can be heard;
- **sentence floor**: the same client without the flush (the service waits for a sentence end);
- **official SDK pattern**: the dashscope SDK's streaming sample as written, a
  ``SpeechSynthesizer`` made when the answer starts and ``streaming_call(token)`` for every token
  (it connects and starts its task at the first token);
- **voicebridge**: ``VoiceBridge.speak(tokens)`` as a user calls it;
- **voicebridge + preconnect**: the same after ``preconnect(start_task=True)``.

Cells: English and Chinese, 40 and 200 tokens/s. Then three cases against punctuated English at
40 tokens/s: run-on English without punctuation, Thai (spaces between phrases only), and a clause
followed by a 5 s pause (a tool call: timed from the start of the pause). Medians of
``--repeats`` runs, ratio to the clause floor. Asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial

from bridge_common import ServerHost, paced, print_table, tokens
from plotting import bar_chart

from voicebridge.audio import CallbackSink
from voicebridge.bridge import VoiceBridge
from voicebridge.client import AudioFormat, ResultCallback, SpeechSynthesizer

ENGLISH = (
    "Well, the capital of France is Paris, a city on the river Seine. It has been the heart "
    "of the country for centuries, and millions of people visit it every year."
)
CHINESE = (
    "好的，法国的首都是巴黎，它位于塞纳河畔。"
    "几个世纪以来，巴黎一直是法国的中心，每年有数百万人来访。"
)
RUN_ON = (
    "well the capital of France is Paris a city on the river Seine and it has been the heart of "
    "the country for centuries and millions of people visit it every year and they come back"
)
THAI = (
    "สวัสดีครับ เมืองหลวงของประเทศฝรั่งเศสคือปารีส ซึ่งตั้งอยู่ริมแม่น้ำแซน "
    "ปารีสเป็นศูนย์กลางของประเทศมาหลายศตวรรษ และมีผู้คนหลายล้านคนมาเยือนทุกปี"
)
PAUSE_BEFORE = "Let me check the weather for you, "
PAUSE_AFTER = "and it will be sunny in Paris tomorrow."
PAUSE = 5.0
VOICES = {"en": "loongeva_v2", "zh": "longxiaochun_v2", "th": "longxiaochun_v2"}
TIMEOUT = 60.0  # seconds one measurement may take


class _FirstAudio(ResultCallback):
    def __init__(self) -> None:
        self.at: float | None = None
        self.done = threading.Event()

    def on_data(self, data: bytes) -> None:
        if self.at is None:
            self.at = time.monotonic()
            self.done.set()


def first_clause_end(text: str) -> int:
    """Where the first clause of three words or more ends (what the oracle flushes after)."""
    words = 0
    for i, char in enumerate(text):
        if char == " " or char in "，。":
            words += 1 if char == " " else 2
        if char in ",.，。" and words >= 3:
            return i + 1
    return len(text)


def oracle(url: str, text: str, voice: str, pieces: list[str], rate: float, flush: bool) -> float:
    """The bare client, connected and started before the first token; seconds to first audio."""
    callback = _FirstAudio()
    synthesizer = SpeechSynthesizer(
        "cosyvoice-v2",
        voice,
        format=AudioFormat.PCM_22050HZ_MONO_16BIT,
        callback=callback,
        url=url,
    )
    try:
        synthesizer.start()
        clause_end, sent, flushed = first_clause_end(text), 0, False
        started = time.monotonic()
        for piece in paced(pieces, rate):
            synthesizer.streaming_call(piece)
            sent += len(piece)
            if flush and not flushed and sent >= clause_end:
                synthesizer.streaming_flush()
                flushed = True
        callback.done.wait(TIMEOUT)
        synthesizer.streaming_cancel()
        assert callback.at is not None, "no audio"
        return callback.at - started
    finally:
        synthesizer.close()


def sdk_pattern(url: str, voice: str, pieces: list[str], rate: float) -> float:
    """The official dashscope SDK's streaming sample: seconds to first audio."""
    from dashscope.audio.tts_v2 import AudioFormat as SdkFormat
    from dashscope.audio.tts_v2 import SpeechSynthesizer as SdkSynthesizer

    callback = _FirstAudio()  # voicebridge's ResultCallback has the SDK's method names
    synthesizer = SdkSynthesizer(
        model="cosyvoice-v2",
        voice=voice,
        format=SdkFormat.PCM_22050HZ_MONO_16BIT,
        callback=callback,  # type: ignore[arg-type]
        url=url,
    )
    started = time.monotonic()
    for piece in paced(pieces, rate):
        synthesizer.streaming_call(piece)
    callback.done.wait(TIMEOUT)
    synthesizer.streaming_complete()
    assert callback.at is not None, "no audio"
    return callback.at - started


def bridge(url: str, voice: str, pieces: list[str], rate: float, preconnect: bool) -> float:
    """``VoiceBridge.speak``; seconds from the first token read to the first audio."""
    with VoiceBridge(url=url, voice=voice, sinks=[CallbackSink(lambda chunk: None)]) as speaker:
        if preconnect:
            speaker.preconnect(start_task=True)
            deadline = time.monotonic() + TIMEOUT
            while not speaker.connected and time.monotonic() < deadline:
                time.sleep(0.01)
        metrics = speaker.speak(paced(pieces, rate))
    assert metrics.time_to_first_audio is not None, "no audio"
    return metrics.time_to_first_audio


def paused(before: str, after: str, marks: list[float]) -> Iterator[str]:
    """The clause, then a pause whose start is recorded in ``marks``, then the rest."""
    yield from tokens(before, 1, 4)
    marks.append(time.monotonic())
    time.sleep(PAUSE)
    yield from tokens(after, 2, 4)


def pause_case(url: str, preconnect: bool) -> float:
    """Seconds from the start of the pause to the first audio (negative: heard before it)."""
    marks: list[float] = []
    heard: list[float] = []

    def sink(chunk: bytes) -> None:
        if not heard:
            heard.append(time.monotonic())

    with VoiceBridge(url=url, voice=VOICES["en"], sinks=[CallbackSink(sink)]) as speaker:
        if preconnect:
            speaker.preconnect(start_task=True)
        speaker.speak(paused(PAUSE_BEFORE, PAUSE_AFTER, marks))
    return heard[0] - marks[0]


def median(measure: Callable[[], float], repeats: int) -> float:
    return statistics.median(measure() for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--engine", choices=("espeak", "tone"), default="espeak")
    parser.add_argument("--quick", action="store_true", help="smoke mode: one repeat, one cell")
    parser.add_argument("--plot", metavar="PNG", help="also draw first audio per cell")
    args = parser.parse_args()
    import dashscope

    dashscope.api_key = "sk-benchmark"  # the local server accepts any key
    repeats = 1 if args.quick else args.repeats
    cells = (
        [("en", ENGLISH, 40.0)]
        if args.quick
        else [
            (lang, text, rate)
            for lang, text in (("en", ENGLISH), ("zh", CHINESE))
            for rate in (40.0, 200.0)
        ]
    )
    rows, chart = [], {}
    with ServerHost() as host:
        url = host.start_server(args.engine)
        try:
            for lang, text, rate in cells:
                voice, step = VOICES[lang], 4 if lang == "en" else 2
                pieces = tokens(text, 0, step)
                results = {
                    "clause floor": median(
                        partial(oracle, url, text, voice, pieces, rate, True), repeats
                    ),
                    "sentence floor": median(
                        partial(oracle, url, text, voice, pieces, rate, False), repeats
                    ),
                    "official SDK pattern": median(
                        partial(sdk_pattern, url, voice, pieces, rate), repeats
                    ),
                    "voicebridge": median(
                        partial(bridge, url, voice, pieces, rate, False), repeats
                    ),
                    "voicebridge + preconnect": median(
                        partial(bridge, url, voice, pieces, rate, True), repeats
                    ),
                }
                floor = results["clause floor"]
                cell = f"{'English' if lang == 'en' else 'Chinese'} {rate:g} tok/s"
                rows.append(
                    [cell, *(f"{v * 1000:.0f} ({v / floor:.2f} x)" for v in results.values())]
                )
                chart[cell] = results
                print(f"  {cell} done", flush=True)
            punctuated = chart[next(iter(chart))]["voicebridge"] if chart else float("nan")
            extra = []
            for name, text, lang in (("run-on English", RUN_ON, "en"), ("Thai", THAI, "th")):
                value = median(
                    partial(bridge, url, VOICES[lang], tokens(text, 0, 4), 40.0, False), repeats
                )
                extra.append([name, f"{value * 1000:.0f}", f"{value / punctuated:.2f} x"])
            pause = median(lambda: pause_case(url, False), repeats)
            extra.append(
                ["clause, then a 5 s pause (from the pause's start)", f"{pause * 1000:.0f}", "-"]
            )
        finally:
            host.stop_server()
    print_table(
        f"Time to first audio, median of {repeats} (ms, ratio to the clause floor; "
        f"{args.engine} engine, server in a child process)",
        ["cell", *next(iter(chart.values()))],
        rows,
    )
    print_table(
        "Text without sentence ends, and a tool-call pause (voicebridge, 40 tokens/s)",
        ["case", "first audio ms", "ratio to punctuated English"],
        extra,
    )
    if args.plot:
        clients = list(next(iter(chart.values())))
        series = {c: {"first audio ms": [chart[cell][c] * 1000 for cell in chart]} for c in clients}
        bar_chart(args.plot, "Time to first audio, against the floors", list(chart), series)


if __name__ == "__main__":
    main()
