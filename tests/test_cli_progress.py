"""``voicebridge speak``'s live progress line (issue 16): drawn on a terminal, erased at the end,
followed by the one-line summary; absent when stderr is a pipe; ``-q`` silences both.

The end-to-end tests run the real command against the real local server (tone engine). The
server paces its audio (``FaultPlan(delay_audio=...)``, a real server option) so that a long
text takes a few seconds, long enough for several redraws at 4 Hz on any machine.
"""

from __future__ import annotations

import fcntl
import io
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from voicebridge.progress import StatusLine, describe_speaking, eta_seconds
from voicebridge.server import FaultPlan, ServerThread
from voicebridge.text import speakable
from voicebridge.turn import TurnProgress

COMMAND = [sys.executable, "-m", "voicebridge"]
ENV = {k: v for k, v in os.environ.items() if not k.startswith("DASHSCOPE_")}
LONG_TEXT = " ".join(f"This is sentence number {i}, with a clause and an end." for i in range(60))
COLUMNS = 100
UPDATE = re.compile(r"\rspeaking: sent ([\d,]+)/([\d,]+) chars · spoken ([\d,]+) \((\d+)%\)")


def run_on_terminal(
    args: list[str], timeout: float = 60, env: dict[str, str] = ENV
) -> tuple[int, str]:
    """Run ``args`` with stderr on a pseudo-terminal ``COLUMNS`` wide (stdout discarded,
    stdin empty); return the exit status and everything the terminal received."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, COLUMNS, 0, 0))
    attributes = termios.tcgetattr(slave)
    attributes[1] &= ~termios.ONLCR  # keep "\n" as the program wrote it
    termios.tcsetattr(slave, termios.TCSANOW, attributes)
    process = subprocess.Popen(
        args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave, env=env
    )
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if select.select([master], [], [], 0.2)[0]:
                try:
                    data = os.read(master, 4096)
                except OSError:  # EIO: the child closed the terminal
                    data = b""
                if not data:
                    break
                seen += data
        return process.wait(timeout=10), seen.decode("utf-8", "replace")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
        os.close(master)


@pytest.fixture(scope="module")
def paced_server() -> Iterator[ServerThread]:
    with ServerThread(engine="tone", faults=FaultPlan(delay_audio=0.001)) as server:
        yield server


@pytest.fixture
def long_file(tmp_path: Path) -> Path:
    path = tmp_path / "long.txt"
    path.write_text(LONG_TEXT, encoding="utf-8")
    return path


def speak_args(server: ServerThread, text_file: Path, *extra: str) -> list[str]:
    out = str(text_file.with_suffix(".wav"))
    return [*COMMAND, "speak", "--file", str(text_file), "--url", server.url, "--no-play",
            "--out", out, *extra]  # fmt: skip


def test_a_markdown_files_total_is_what_will_be_spoken(
    paced_server: ServerThread, tmp_path: Path
) -> None:
    markdown = "\n\n".join(
        f"## Part {i}\n\nThis is **sentence** number {i}, with [a link](https://example.com/{i})."
        for i in range(60)
    )
    path = tmp_path / "notes.md"
    path.write_text(markdown, encoding="utf-8")
    status, screen = run_on_terminal(speak_args(paced_server, path))
    assert status == 0, screen
    totals = {int(m.group(2).replace(",", "")) for m in UPDATE.finditer(screen)}
    assert totals == {len(speakable(markdown))}, screen  # the marks and links' targets are not
    assert len(speakable(markdown)) < 0.8 * len(markdown)


def test_on_a_terminal_progress_is_redrawn_then_erased_and_the_summary_stays(
    paced_server: ServerThread, long_file: Path
) -> None:
    status, screen = run_on_terminal(speak_args(paced_server, long_file))
    assert status == 0, screen
    updates = [tuple(int(n.replace(",", "")) for n in m.groups()) for m in UPDATE.finditer(screen)]
    assert len(updates) >= 3, screen  # several redraws while the text was spoken
    assert all(total == len(LONG_TEXT) for _, total, _, _ in updates)  # a file's total is known
    sent = [u[0] for u in updates]
    spoken = [u[2] for u in updates]
    assert sent == sorted(sent) and spoken == sorted(spoken) and spoken[-1] > spoken[0]
    assert all(s <= t for s, t in zip(spoken, sent, strict=True))  # spoken never passes sent
    assert re.search(r" · [\d.]+ s of audio · RTF [\d.]+ · ETA \d+:\d\d", screen), screen
    drawn = screen.split("\r")[:-1]  # the redraws (the summary comes last)
    assert all(len(line) < COLUMNS for line in drawn)  # cut to the terminal: never wraps
    # The last redraw is overwritten by spaces, and the summary is alone on its line after it.
    before, erased, summary = screen.rpartition("\r")
    assert erased == "\r" and before.rsplit("\r", 1)[-1].strip() == ""
    assert re.fullmatch(
        r"voicebridge: spoke 3,\d{3} characters, [\d.]+ s of audio in [\d.]+ s \(real-time "
        r"factor [\d.]+\), first audio after \d+ ms, [\d,]+ billed characters, \d+ task\(s\); "
        r"audio written to .*long\.wav\n",
        summary,
    ), summary


def test_through_a_pipe_only_the_summary_and_with_q_nothing(
    paced_server: ServerThread, long_file: Path
) -> None:
    piped = subprocess.run(
        speak_args(paced_server, long_file), capture_output=True, text=True, env=ENV, timeout=60
    )
    assert piped.returncode == 0, piped.stderr
    assert piped.stderr.startswith("voicebridge: spoke ") and piped.stderr.count("\n") == 1
    assert "\r" not in piped.stderr and "speaking:" not in piped.stderr
    status, screen = run_on_terminal(speak_args(paced_server, long_file, "-q"))
    assert status == 0 and screen == ""


# --------------------------------------------------------------------------- the pieces


def progress(sent: int, spoken: int, audio: float, elapsed: float) -> TurnProgress:
    return TurnProgress(
        characters_read=sent,
        characters_sent=sent,
        characters_spoken=spoken,
        audio_seconds=audio,
        elapsed=elapsed,
    )


def test_the_line_names_sent_spoken_audio_rtf_and_eta() -> None:
    now = progress(sent=1200, spoken=1000, audio=60.0, elapsed=6.0)
    assert describe_speaking(now, 4000) == (
        "speaking: sent 1,200/4,000 chars · spoken 1,000 (25%) · 60.0 s of audio · RTF 0.10 · "
        "ETA 0:18"
    )
    assert describe_speaking(now, None) == (
        "speaking: sent 1,200 chars · spoken 1,000 · 60.0 s of audio · RTF 0.10"
    )
    assert describe_speaking(None, 4000) == "speaking: starting"


def test_eta_waits_for_the_audio_when_it_plays_in_real_time() -> None:
    now = progress(sent=1200, spoken=1000, audio=60.0, elapsed=6.0)
    assert eta_seconds(now, 4000) == pytest.approx(18.0)  # 3,000 characters at 1,000 per 6 s
    # Played in real time: 20 s still queued, then 3,000 characters at 0.06 s of audio each.
    assert eta_seconds(now, 4000, unplayed=20.0) == pytest.approx(200.0)
    assert eta_seconds(now, None) is None
    assert eta_seconds(progress(sent=50, spoken=0, audio=0.0, elapsed=1.0), 4000) is None


def test_a_status_line_off_a_terminal_draws_nothing_and_starts_no_thread() -> None:
    stream = io.StringIO()
    with StatusLine(stream, lambda: "never drawn") as line:
        assert not line.enabled and line._thread is None
    assert stream.getvalue() == ""


def test_a_failing_render_is_shown_not_raised_cut_to_the_width_and_erased() -> None:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 25, 0, 0))

    def render() -> str:
        raise RuntimeError("boom")

    shown = "(RuntimeError in the status line)"[:24]  # 25 columns: cut so that it cannot wrap
    seen = b""
    with os.fdopen(slave, "w") as terminal:
        with StatusLine(terminal, render, interval=0.01) as line:
            assert line.enabled
            deadline = time.monotonic() + 10
            while shown.encode() not in seen and time.monotonic() < deadline:
                if select.select([master], [], [], 0.2)[0]:
                    seen += os.read(master, 4096)
        while select.select([master], [], [], 0.2)[0]:
            seen += os.read(master, 4096)
    os.close(master)
    assert seen.startswith(b"\r" + shown.encode() + b"\r")
    assert seen.endswith(b"\r" + b" " * len(shown) + b"\r")
