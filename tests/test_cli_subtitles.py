"""Subtitles and word timings (issue 12): the cue rules of ``voicebridge.subtitles`` on made-up
word timings, then ``voicebridge speak --subtitles/--words`` end to end against the real local
server with the espeak engine."""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
import unicodedata
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.user_errors import one_error_line
from voicebridge.cli import publish_files
from voicebridge.errors import VoiceBridgeError
from voicebridge.server import ServerThread
from voicebridge.subtitles import (
    Cue,
    build_cues,
    format_srt,
    format_vtt,
    subtitle_format,
    words_json,
)
from voicebridge.turn import Word

COMMAND = [sys.executable, "-m", "voicebridge"]
ENV = {k: v for k, v in os.environ.items() if not k.startswith("DASHSCOPE_")}


def timed(
    text: str, seconds_per_char: float = 0.06, gaps: dict[int, float] | None = None
) -> list[Word]:
    """Words of ``text`` (runs of letters or digits; each CJK character alone) timed in order:
    ``seconds_per_char`` each, 0.1 s between words, plus ``gaps[i]`` before word ``i``."""
    words = []
    clock = 0.0
    pattern = r"[\u4e00-\u9fff]|[^\W\u4e00-\u9fff]+"
    for index, match in enumerate(re.finditer(pattern, text)):
        clock += (gaps or {}).get(index, 0.0)
        end = clock + seconds_per_char * len(match.group())
        words.append(Word(match.group(), clock, end, match.start(), match.end()))
        clock = end + 0.1
    return words


def width(line: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in line)


def check_readable(cues: list[Cue], text: str, max_width: int = 42) -> None:
    """Every rule a reader relies on: at most two lines that fit, at most 7 s, in order, not
    overlapping, and all the text in order (whitespace aside)."""
    for cue in cues:
        assert 1 <= len(cue.lines) <= 2, cue
        assert all(width(line) <= max_width for line in cue.lines), cue
        assert 0 < cue.end - cue.start <= 7.0, cue
    for earlier, later in itertools.pairwise(cues):
        assert earlier.end <= later.start, (earlier, later)
    shown = "".join("".join(" ".join(cue.lines) for cue in cues).split())
    assert shown == "".join(text.split())


STORY = (
    "Once upon a time, in a small village by the sea, there lived an old fisherman. Every "
    "morning he rowed out before dawn; every evening he came back with his nets full. One day, "
    "a storm rose without warning and the waves grew taller than his house. Yes. He sang."
)


def test_cues_are_readable_and_end_at_sentence_or_clause_ends() -> None:
    cues = build_cues(STORY, timed(STORY))
    check_readable(cues, STORY)
    assert [cue.lines[-1][-1] for cue in cues] == [".", ";", ".", ".", "."]
    assert cues[0].lines[-1].endswith("fisherman.")
    assert any(cue.lines[-1] == "Yes. He sang." for cue in cues)  # a short sentence joins the next


def test_a_full_cue_is_cut_at_its_last_clause_end() -> None:
    text = (
        "The quick brown fox from the farm, who had been running all day long through the forest "
        "and over the hills without a rest, finally lay down."
    )
    cues = build_cues(text, timed(text))
    check_readable(cues, text)
    assert cues[0].lines == ("The quick brown fox from the farm,",)  # not "... forest and"


def test_chinese_counts_two_columns_a_character_and_keeps_its_punctuation() -> None:
    text = (
        "今天天气很好，我们去公园散步吧。公园里有很多花，红的黄的白的都有，非常漂亮。"
        "晚上我们回家吃饭。"
    )
    cues = build_cues(text, timed(text, 0.2))
    check_readable(cues, text)
    assert cues[0].lines == ("今天天气很好，我们去公园散步吧。",)
    assert all(cue.lines[-1][-1] in "，。" for cue in cues)


def test_a_pause_or_seven_seconds_end_a_cue() -> None:
    text = "First part here and then after a long pause the second part."
    cues = build_cues(text, timed(text, gaps={5: 3.0}))
    assert [" ".join(c.lines) for c in cues] == [
        "First part here and then",
        "after a long pause the second part.",
    ]
    slow = "a b c d e f g h i j k l m n o p"
    cues = build_cues(slow, timed(slow, seconds_per_char=0.9))  # 1 s per word
    check_readable(cues, slow)
    assert len(cues) == 3


def test_times_follow_the_words_and_stop_at_the_audio_end() -> None:
    text = "Hello there. Bye."
    words = timed(text)
    assert [c.lines for c in build_cues(text, words)] == [("Hello there. Bye.",)]
    assert build_cues(text, words)[0].end == 1.0  # held for a second (the words end sooner)
    [cue] = build_cues(text, words, audio_end=words[-1].end + 0.01)
    assert cue.start == words[0].start
    assert cue.end == words[-1].end + 0.01  # but never past the end of the audio
    assert build_cues("", []) == []


def test_srt_vtt_and_json_formats() -> None:
    cues = [Cue(0.0, 1.5, ("One line",)), Cue(61.25, 3725.0049, ("Two", "lines"))]
    assert format_srt(cues) == (
        "1\n00:00:00,000 --> 00:00:01,500\nOne line\n\n"
        "2\n00:01:01,250 --> 01:02:05,005\nTwo\nlines\n\n"
    )
    assert format_vtt(cues) == (
        "WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nOne line\n\n"
        "00:01:01.250 --> 01:02:05.005\nTwo\nlines\n\n"
    )
    words = [Word("你好", 0.0, 0.4004, 0, 2), Word("there", 0.5, 0.9, 3, 8)]
    assert json.loads(words_json(words)) == [
        {"text": "你好", "start": 0.0, "end": 0.4},
        {"text": "there", "start": 0.5, "end": 0.9},
    ]
    assert words_json([]) == "[]\n"
    assert (subtitle_format("a.SRT"), subtitle_format("dir.x/b.vtt")) == ("srt", "vtt")
    with pytest.raises(ValueError, match=r"subtitles are \.srt or \.vtt files"):
        subtitle_format("c.txt")


# --------------------------------------------------------------------------- end to end

SPOKEN = (
    "Welcome to the evening news. Tonight, the city council approved a new budget for parks, "
    "libraries and public transport. The vote was close; seven members said yes, five said no. "
    "Weather next: clear skies, with a light wind from the west. 明天天气晴朗，气温二十度。"
)
CLOCK = re.compile(r"(\d\d):(\d\d):(\d\d)[,.](\d\d\d) --> (\d\d):(\d\d):(\d\d)[,.](\d\d\d)")


def seconds(h: str, m: str, s: str, ms: str) -> float:
    return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000


def parse_cues(text: str) -> list[tuple[float, float, list[str]]]:
    cues = []
    for block in text.strip().split("\n\n"):
        lines = block.splitlines()
        index = next(i for i, line in enumerate(lines) if CLOCK.fullmatch(line))
        parts = CLOCK.fullmatch(lines[index]).groups()  # type: ignore[union-attr]
        cues.append((seconds(*parts[:4]), seconds(*parts[4:]), lines[index + 1 :]))
    return cues


@pytest.fixture(scope="module")
def spoken(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Two ``speak`` runs, each in its own folder named after its subtitle file (``out.srt``,
    ``out.vtt``), writing its WAV, its subtitles and its words. Audio lengths differ between runs
    by a few milliseconds (flush timing), so a run's files are only checked against each other."""
    folder = tmp_path_factory.mktemp("subtitles")
    with ServerThread(engine="espeak") as server:
        for subtitles in ("out.srt", "out.vtt"):
            run = folder / subtitles
            run.mkdir()
            result = subprocess.run(
                [*COMMAND, "speak", SPOKEN, "--url", server.url, "--no-play", "--out", "out.wav",
                 "--subtitles", subtitles, "--words", "words.json"],
                capture_output=True, text=True, env=ENV, cwd=run, timeout=120,
            )  # fmt: skip
            assert result.returncode == 0, result.stderr
            assert result.stderr.rstrip().endswith(
                f"subtitles written to {subtitles}; words written to words.json"
            )
    yield folder


def wav_seconds(path: Path) -> float:
    with wave.open(str(path)) as wav:
        return wav.getnframes() / wav.getframerate()


@pytest.mark.parametrize("name", ["out.srt", "out.vtt"])
def test_cues_lie_within_the_wav_and_rise(spoken: Path, name: str) -> None:
    text = (spoken / name / name).read_text(encoding="utf-8")
    if name.endswith(".vtt"):
        assert text.startswith("WEBVTT\n\n")
        text = text.removeprefix("WEBVTT\n\n")
    else:
        assert [b.splitlines()[0] for b in text.strip().split("\n\n")] == [
            str(i) for i in range(1, text.count(" --> ") + 1)
        ]
    cues = parse_cues(text)
    audio = wav_seconds(spoken / name / "out.wav")
    assert len(cues) >= 5
    for start, end, lines in cues:
        assert 0 <= start < end <= audio + 0.001
        assert end - start <= 7.0 and 1 <= len(lines) <= 2
        assert all(width(line) <= 42 for line in lines)
    starts = [c[0] for c in cues]
    assert starts == sorted(starts)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(cues))
    assert "".join(" ".join(" ".join(c[2]) for c in cues).split()) == "".join(SPOKEN.split())


@pytest.mark.parametrize("run", ["out.srt", "out.vtt"])
def test_the_words_file_gives_the_words_in_order_within_the_wav(spoken: Path, run: str) -> None:
    words = json.loads((spoken / run / "words.json").read_text(encoding="utf-8"))
    audio = wav_seconds(spoken / run / "out.wav")
    assert [set(w) for w in words] == [{"text", "start", "end"}] * len(words)
    assert all(0 <= w["start"] <= w["end"] <= audio + 0.001 for w in words)
    starts = [w["start"] for w in words]
    assert starts == sorted(starts)
    spoken_words = re.findall(r"[\u4e00-\u9fff]|\w+", SPOKEN)
    assert "".join(w["text"] for w in words) == "".join(spoken_words)
    written = sorted(p.name for p in (spoken / run).iterdir())
    assert written == sorted([run, "out.wav", "words.json"])  # no temporary file left


def test_a_failed_run_leaves_no_subtitle_file(tmp_path: Path) -> None:
    with ServerThread(engine="tone") as server:  # the voice does not exist: the task fails
        result = subprocess.run(
            [*COMMAND, "speak", "Hello.", "--url", server.url, "--voice", "nosuch", "--no-play",
             "--out", "x.wav", "--subtitles", "x.srt", "--words", "x.json"],
            capture_output=True, text=True, env=ENV, cwd=tmp_path, timeout=60,
        )  # fmt: skip
    one_error_line(result, 1)
    assert list(tmp_path.iterdir()) == []


SPEAK = ("speak",)
BOTH = ("speak", "chat")


@pytest.mark.parametrize(
    ("commands", "arguments", "named"),
    [
        (SPEAK, ["--subtitles", "x.txt"], "--subtitles: 'x.txt': subtitles are .srt or .vtt files"),
        (SPEAK, ["--subtitles", "missing/x.srt"], "--subtitles: no such directory"),
        (SPEAK, ["--words", "."], "--words: '.' is a directory"),
        (BOTH, ["--seed", "70000"], "seed must be an integer from 0 to 65535, got 70000"),
        (BOTH, ["--language-hint", "xx"], "unknown language hint 'xx'"),
        (
            BOTH,
            ["--instruction", "x" * 129],
            "instruction is 129 characters long; the limit is 128",
        ),
        (BOTH, ["--hot-fix", "{nope"], "--hot-fix: not JSON"),
        (
            BOTH,
            ["--hot-fix", '{"spell": []}'],
            'hot_fix takes the keys "pronunciation" and "replace"',
        ),
        (BOTH, ["--hot-fix", '["replace"]'], "--hot-fix: a JSON object is expected"),
    ],
)
def test_bad_options_are_one_line_and_status_2_before_anything_runs(
    tmp_path: Path, commands: tuple[str, ...], arguments: list[str], named: str
) -> None:
    """Files named badly, and the run-task options checked by the library (speak and chat)."""
    for command in commands:
        result = subprocess.run(
            [*COMMAND, command, "Hello.", "--no-play", "--out", "x.wav", *arguments],
            capture_output=True, text=True, env=ENV, cwd=tmp_path, timeout=60,
        )  # fmt: skip
        line = one_error_line(result, 2)
        assert line.startswith(f"voicebridge {command}: error: ") and named in line, line
        assert result.stderr.count("\n") == 1
        assert list(tmp_path.iterdir()) == []


def test_run_task_options_reach_the_server(tmp_path: Path) -> None:
    """The local server checks every option as the service does (a wrong shape fails the task)
    and honours ``hot_fix.replace``: the replaced word takes the replacement's time."""

    def first_word_seconds(*options: str) -> float:
        result = subprocess.run(
            [*COMMAND, "speak", "Hello there.", "--url", server.url, "--no-play", "--out",
             "x.wav", "--words", "w.json", *options],
            capture_output=True, text=True, env=ENV, cwd=tmp_path, timeout=60,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        first = json.loads((tmp_path / "w.json").read_text(encoding="utf-8"))[0]
        assert first["text"] == "Hello"
        return float(first["end"] - first["start"])

    with ServerThread(engine="tone") as server:
        plain = first_word_seconds()
        replaced = first_word_seconds("--hot-fix", '{"replace": [{"Hello": "Good evening all"}]}')
        every = first_word_seconds(
            "--language-hint", "en", "--seed", "7", "--instruction", "Speak slowly.",
            "--markdown-filter", "--hot-fix", '{"pronunciation": [{"there": "dei"}]}',
        )  # fmt: skip
    assert replaced > 2 * plain
    assert every == pytest.approx(plain)


def test_a_file_that_cannot_be_written_is_named_and_nothing_is_left(tmp_path: Path) -> None:
    """The folder went away while the turn was spoken: the error names the file asked for (not
    its hidden part), and the other file, written first, is not left behind either."""
    kept, gone = tmp_path / "out.srt", tmp_path / "gone" / "words.json"
    with pytest.raises(VoiceBridgeError) as error:
        publish_files({str(kept): "1\n", str(gone): "[]\n"})
    assert str(error.value) == f"cannot write {str(gone)!r}: No such file or directory"
    assert list(tmp_path.iterdir()) == []
