"""Fragmenter benchmark: voicebridge's Fragmenter against stream2sentence (RealtimeTTS's splitter).

Feeds the same token streams (1-4 characters per token, fixed seed) to both and prints Markdown
tables: where the first fragment is released, how many fragments and how large, the time per token,
and total time on growing copies of a decimals-heavy stress text, of run-on English and of Thai
(linearity: the ratios must stay near the size ratios). Timings are measured in this run only
(garbage collector paused while timing); nothing is asserted.

    .venv/bin/pip install stream2sentence==1.1.0   # benchmark-only dependency
    .venv/bin/python benchmarks/fragmenter_bench.py [--quick] [--plot FILE.png]

``--quick`` is a smoke run: one repetition per measurement, linearity up to 21,000 characters,
and stream2sentence (quadratic: about a minute on 2,100 decimals characters) left out of the
decimals rows.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from bridge_common import tokens
from stream2sentence import SentenceSplitter

from voicebridge.text.fragmenter import Fragmenter
from voicebridge.text.segmenter import default_segmenter

ENGLISH = (
    "Sure, here is a quick overview of how the process works, step by step, so you can follow "
    "along easily. First, the client opens a connection to the server and sends its credentials. "
    "Then it streams the text in small pieces, and the server answers with audio as soon as it "
    "can. Dr. Smith, who designed it in the U.S.A., says the latency is about 0.3 s on average. "
    "Is that fast enough? For most people, yes."
)
CHINESE = (
    "好的，我来帮你规划一下这次旅行，首先我们需要确定出发的时间和预算，然后再挑选合适的酒店和交通"
    "方式，最后安排每天的行程。京都的秋天非常漂亮，红叶一般在十一月中旬到下旬最美，建议你提前一个月"
    "预订住宿。如果预算有限，可以考虑住在大阪，每天坐电车往返，大约三十分钟就能到。"
)
JAPANESE = (
    "こんにちは、今日はお手伝いできてうれしいです。まず、必要な書類を準備してください。次に、"
    "オンラインで申し込みを行い、確認メールを待ちます。手続きは通常三日ほどで完了します。"
    "何か質問があれば、いつでも聞いてくださいね！"
)
MIXED = (
    "我们先用Python写一个简单的demo，然后用pip install安装依赖，最后运行pytest检查结果。"
    "If everything passes, we deploy it to the staging server. 部署完成后，记得检查日志，"
    "确认没有error。"
)
MARKDOWN = (
    "## Installation\n\n1. **Install** the package with `pip install voicebridge`.\n"
    "2. Set the `DASHSCOPE_API_KEY` variable, see "
    "[the docs](https://help.aliyun.com/zh/model-studio/cosyvoice).\n3. Run the demo:\n\n"
    '```bash\nvoicebridge speak "Hello"\n```\n\n| Option | Meaning |\n|---|---|\n'
    "| `--voice` | the voice name |\n\n> **Note:** the *first* run downloads nothing 🎉.\n"
)

RUN_ON = (
    "so what I was thinking is that we could go to the beach tomorrow and then maybe have lunch "
    "at that little place near the pier that you liked so much last summer and after that we "
    "could walk along the cliffs until the sun goes down and then drive back home before it gets "
    "too dark to see the road and we would still be in bed at a reasonable hour for once"
)
THAI = (
    "สวัสดีครับ วันนี้อากาศดีมากเราจะไปเที่ยวทะเลกันไหมครับผมคิดว่าน่าจะสนุกมากเพราะว่าทะเลที่นั่น"
    "สวยงามและน้ำใสมาก เราสามารถว่ายน้ำและดำน้ำดูปะการังได้ด้วย หลังจากนั้นเราจะไปกินอาหารทะเลที่"
    "ร้านอร่อยที่สุดในเมืองแล้วค่อยเดินเล่นริมหาดจนพระอาทิตย์ตกดิน"
)


# Markdown that should not reach a speech engine (counted in every fragment's text).
MARKUP = ("**", "#", "`", "|", "](", "- ", "1. ", "http")


def decimals(size: int) -> str:
    """A stress text full of decimals and commas, ``size`` characters long."""
    rng = random.Random(7)
    parts = ["The measured values are"]
    while sum(len(p) + 1 for p in parts) < size:
        parts.append(f"{rng.randint(0, 99)}.{rng.randint(0, 99999):05d},")
    return " ".join(parts)[:size]


def tokens_of(text: str) -> list[str]:
    """Tokens of 1-4 characters, like an LLM's."""
    return tokens(text, seed=1, max_step=4)


@dataclass
class Run:
    first_at: int | None  # input characters consumed when the first fragment came out
    first_token: int | None  # index of the token that released it
    first_text: str
    fragments: list[str]
    per_token_ns: list[int]
    total_ns: int


Splitter = Callable[[], tuple[Callable[[str], list[str]], Callable[[], list[str]]]]


def voicebridge_splitter() -> tuple[Callable[[str], list[str]], Callable[[], list[str]]]:
    fragmenter = Fragmenter()

    def feed(token: str) -> list[str]:
        return [f.text for f in fragmenter.feed(token)]

    def flush() -> list[str]:
        return [f.text for f in fragmenter.flush()]

    return feed, flush


def stream2sentence_splitter() -> tuple[Callable[[str], list[str]], Callable[[], list[str]]]:
    splitter = SentenceSplitter()  # its own defaults, like RealtimeTTS

    def feed(token: str) -> list[str]:
        splitter.add(token)
        return list(splitter.stream())

    def flush() -> list[str]:
        return list(splitter.flush())

    return feed, flush


SPLITTERS: dict[str, Splitter] = {
    "voicebridge": voicebridge_splitter,
    "stream2sentence 1.1.0": stream2sentence_splitter,
}


def repeated(text: str, size: int) -> str:
    """``text`` repeated (joined by a space) and cut to ``size`` characters."""
    return ((text + " ") * (size // len(text) + 1))[:size]


def measure(make: Splitter, tokens: list[str], repeats: int = 5) -> Run:
    """The fastest of ``repeats`` runs (other processes share the machine)."""
    return min((measure_once(make, tokens) for _ in range(repeats)), key=lambda r: r.total_ns)


def measure_once(make: Splitter, tokens: list[str]) -> Run:
    feed, flush = make()
    fragments: list[str] = []
    per_token: list[int] = []
    first_at = first_token = None
    consumed = 0
    gc.collect()
    gc.disable()
    try:
        for index, token in enumerate(tokens):
            start = time.perf_counter_ns()
            out = feed(token)
            per_token.append(time.perf_counter_ns() - start)
            consumed += len(token)
            if out and first_at is None:
                first_at, first_token = consumed, index
            fragments += out
        start = time.perf_counter_ns()
        fragments += flush()
        flush_ns = time.perf_counter_ns() - start
    finally:
        gc.enable()
    return Run(
        first_at,
        first_token,
        fragments[0] if fragments else "",
        fragments,
        per_token,
        sum(per_token) + flush_ns,
    )


def lag_after_boundary(text: str, tokens: list[str], run: Run) -> str:
    """Tokens fed after the one holding the first fragment's last visible character (only when
    the fragment is a prefix of the raw text, i.e. not for Markdown)."""
    spoken = run.first_text.rstrip()
    if run.first_token is None or not text.startswith(spoken):
        return "n/a"
    offsets: Iterator[int] = iter(range(len(tokens)))
    end, token_index = 0, 0
    for token_index in offsets:
        end += len(tokens[token_index])
        if end >= len(spoken):
            break
    return str(run.first_token - token_index)


def plot_cost(path: str, quick: bool) -> None:
    """``--plot FILE.png``: total time against input length on the decimals stress text, both
    splitters, and time per input character (flat when linear, rising when quadratic); prints
    the points drawn. stream2sentence stops at 2,100 characters (quadratic: ~6 s there)."""
    from plotting import line_chart

    sizes = [262, 525, 1050, 2100, 21_000, 210_000] if not quick else [131, 262, 525, 5250]
    largest_quadratic = 525 if quick else 2100
    repetition = "One run" if quick else "Fastest of 3 runs"
    series: dict[str, dict[str, list[float]]] = {}
    for name, make in SPLITTERS.items():
        runs = [
            measure(make, tokens_of(decimals(size)), 1 if quick else 3).total_ns / 1e6
            if make is voicebridge_splitter or size <= largest_quadratic
            else float("nan")  # not measured: no point drawn
            for size in sizes
        ]
        series[name] = {
            "total time (ms, log scale)": runs,
            "time per input character (µs, log scale)": [
                ms * 1000 / size for ms, size in zip(runs, sizes, strict=True)
            ],
        }
    print("\n| characters | " + " | ".join(f"{name} ms" for name in series) + " |")
    print("|---:|" + "---:|" * len(series))
    for index, size in enumerate(sizes):
        cells = [f"{m['total time (ms, log scale)'][index]:.1f}" for m in series.values()]
        print(f"| {size:,} | " + " | ".join(c.replace("nan", "-") for c in cells) + " |")
    line_chart(
        path,
        "Fragmenter cost against input length (decimals stress text, tokens of 1-4 characters)",
        "input length (characters, log scale)",
        sizes,
        series,
        log_x=True,
        log_y=True,
        note=f"Linear cost is a flat line on the right. {repetition}; stream2sentence is "
        f"measured up to {largest_quadratic:,} characters (quadratic).",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 repetition, small sizes")
    parser.add_argument("--plot", metavar="FILE.png", help="also draw the cost against length")
    args = parser.parse_args()
    repeats = 1 if args.quick else 5
    corpora = {
        "English": ENGLISH,
        "Chinese": CHINESE,
        "Japanese": JAPANESE,
        "mixed zh/en": MIXED,
        "Markdown": MARKDOWN,
        "decimals (2,100)": decimals(2100),
        "run-on English": RUN_ON,
        "Thai": THAI,
    }
    print(f"segmenter for Thai, Lao, Khmer, Myanmar: {type(default_segmenter()).__name__}\n")
    for make in SPLITTERS.values():  # warm up imports and caches
        measure(make, tokens_of(ENGLISH), repeats)
        measure(make, tokens_of(THAI), repeats)
    print(
        "| corpus | chars | tokens | splitter | first fragment at char | tokens after its "
        "boundary | fragments | size (chars) min/median/max | markup left | µs/token median "
        "| mean | max |"
    )
    print("|---|---:|---:|---|---:|---:|---:|---|---:|---:|---:|---:|")
    medians: dict[tuple[str, str], float] = {}
    means: dict[tuple[str, str], float] = {}
    firsts: dict[tuple[str, str], int | None] = {}
    for corpus, text in corpora.items():
        tokens = tokens_of(text)
        for name, make in SPLITTERS.items():
            if args.quick and corpus.startswith("decimals") and make is not voicebridge_splitter:
                continue
            run = measure(make, tokens, repeats)
            median_us = statistics.median(run.per_token_ns) / 1000
            medians[corpus, name] = median_us
            means[corpus, name] = statistics.mean(run.per_token_ns) / 1000
            firsts[corpus, name] = run.first_at
            lengths = [len(f) for f in run.fragments]
            sizes = f"{min(lengths)}/{statistics.median(lengths):g}/{max(lengths)}"
            lag = lag_after_boundary(text, tokens, run) if name == "voicebridge" else ""
            markup = sum("".join(run.fragments).count(m) for m in MARKUP)
            print(
                f"| {corpus} | {len(text)} | {len(tokens)} | {name} | "
                f"{run.first_at if run.first_at is not None else 'end'} | {lag} | "
                f"{len(lengths)} | {sizes} | {markup} | {median_us:.1f} | "
                f"{statistics.mean(run.per_token_ns) / 1000:.1f} | "
                f"{max(run.per_token_ns) / 1000:.0f} |"
            )
    print()
    print("| splitter | total ms, 525 chars | 1,050 | 2,100 | ratio 2,100 / 525 (linear = 4) |")
    print("|---|---:|---:|---:|---:|")
    for name, make in SPLITTERS.items():
        if args.quick and make is not voicebridge_splitter:
            continue
        # Sub-millisecond runs are noisy: many repetitions for the fast splitter.
        times = 1 if args.quick else 21 if make is voicebridge_splitter else 3
        totals = [
            measure(make, tokens_of(decimals(size)), times).total_ns / 1e6
            for size in (525, 1050, 2100)
        ]
        print(
            f"| {name} | {totals[0]:.1f} | {totals[1]:.1f} | {totals[2]:.1f} | "
            f"{totals[2] / totals[0]:.1f} |"
        )
    scales = (2100, 21_000) if args.quick else (2100, 21_000, 210_000)
    print()
    print("| voicebridge, characters | " + " | ".join(f"{s:,} ms" for s in scales) + " | ratios |")
    print("|---|" + "---:|" * (len(scales) + 1))
    for label, text_of in (
        ("decimals", decimals),
        ("run-on English", lambda size: repeated(RUN_ON, size)),
        ("Thai", lambda size: repeated(THAI, size)),
    ):
        totals = [
            measure(voicebridge_splitter, tokens_of(text_of(s)), repeats).total_ns / 1e6
            for s in scales
        ]
        ratios = ", ".join(f"{t / totals[0]:.1f}" for t in totals[1:])
        linear = ", ".join(f"{s // scales[0]}" for s in scales[1:])
        print(
            f"| {label} | " + " | ".join(f"{t:.1f}" for t in totals) + f" | {ratios} "
            f"(linear = {linear}) |"
        )
    ours, theirs = SPLITTERS
    print()
    for corpus in ("English", "Chinese"):
        a, b = firsts[corpus, ours], firsts[corpus, theirs]
        print(f"first fragment, {corpus}: {a} vs {b} characters")
    for label, table in (("median", medians), ("mean", means)):
        speedups = ", ".join(
            f"{c} {table[c, theirs] / table[c, ours]:.1f}x" for c in corpora if (c, theirs) in table
        )
        print(f"{label} per-token speed-up: {speedups}")
    if args.plot:
        plot_cost(args.plot, args.quick)


if __name__ == "__main__":
    main()
