"""The ``voicebridge`` command, run as a user runs it: a real process, real pipes, real servers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import wave
from pathlib import Path

from voicebridge.cli import read_stream
from voicebridge.client import AudioFormat, SpeechSynthesizer
from voicebridge.server import ServerThread

COMMAND = [sys.executable, "-m", "voicebridge"]
ENV = {k: v for k, v in os.environ.items() if not k.startswith("DASHSCOPE_")}


def run(
    *args: str, stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *args], input=stdin, capture_output=True, text=True, timeout=timeout, env=ENV
    )


def wav_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as wav:
        return wav.getnframes() / wav.getframerate()


def test_speak_an_argument_offline_into_a_wav(tmp_path: Path) -> None:
    out = tmp_path / "hello.wav"
    result = run("speak", "Hello there. 你好，世界。", "--out", str(out), "--no-play")
    assert result.returncode == 0, result.stderr
    assert 2.0 <= wav_seconds(out) <= 6.0
    assert "Traceback" not in result.stderr


def test_speak_a_file_and_stdin(tmp_path: Path) -> None:
    text_file = tmp_path / "notes.txt"
    text_file.write_text("From a file. 从文件来。", encoding="utf-8")
    with ServerThread(engine="tone") as server:
        from_file = run("speak", "--file", str(text_file), "--url", server.url, "--no-play",
                        "--out", str(tmp_path / "a.wav"))  # fmt: skip
        from_stdin = run("speak", "--url", server.url, "--no-play", "--out",
                         str(tmp_path / "b.wav"), stdin="Piped in. 管道。")  # fmt: skip
        spoken = [t.text for t in server.transcripts]
    assert from_file.returncode == 0 and from_stdin.returncode == 0, from_file.stderr
    assert spoken == ["From a file. 从文件来。", "Piped in. 管道。"]


def test_stdin_is_spoken_while_the_producer_is_still_writing(tmp_path: Path) -> None:
    with ServerThread(engine="tone") as server:
        process = subprocess.Popen(
            [*COMMAND, "speak", "--url", server.url, "--no-play", "--out", str(tmp_path / "s.wav")],
            stdin=subprocess.PIPE, env=ENV, stderr=subprocess.PIPE,
        )  # fmt: skip
        assert process.stdin is not None
        process.stdin.write(b"The first sentence is ready. ")
        process.stdin.flush()
        deadline = time.monotonic() + 30
        while "The first sentence is ready. " not in "".join(t.text for t in server.transcripts):
            assert time.monotonic() < deadline, "nothing was spoken before the producer finished"
            assert process.poll() is None
            time.sleep(0.05)
        process.stdin.write(b"The second comes later.")
        process.stdin.close()
        assert process.wait(30) == 0
        assert server.transcripts[0].text == "The first sentence is ready. The second comes later."


def test_read_stream_yields_before_the_writer_is_done() -> None:
    read_fd, write_fd = os.pipe()
    os.write(write_fd, "半个".encode()[:4])  # a UTF-8 sequence cut in the middle
    pieces = read_stream(os.fdopen(read_fd, "rb"))
    assert next(pieces) == "半"
    threading.Timer(
        0.1, lambda: (os.write(write_fd, "个 and more".encode()[1:]), os.close(write_fd))
    ).start()
    assert "".join(pieces) == "个 and more"


def test_serve_answers_sdk_clients_and_stops_on_ctrl_c() -> None:
    with ServerThread(engine="tone") as probe:  # find a free port, then give it back
        port = int(probe.url.split(":")[2].split("/")[0])
    process = subprocess.Popen(
        [*COMMAND, "serve", "--port", str(port), "--engine", "tone"],
        stderr=subprocess.PIPE, text=True, env=ENV,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        banner = process.stderr.readline()
        assert f"ws://127.0.0.1:{port}/api-ws/v1/inference" in banner
        synth = SpeechSynthesizer(
            "cosyvoice-v2", "longxiaochun_v2", format=AudioFormat.PCM_16000HZ_MONO_16BIT,
            url=f"ws://127.0.0.1:{port}/api-ws/v1/inference/",
        )  # fmt: skip
        audio = synth.call("Served to another program.")
        synth.close()
        assert audio is not None and len(audio) > 0
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(20) == 0


def test_no_output_at_all_is_one_clear_line() -> None:
    result = run("speak", "Nothing to do.", "--no-play")
    assert result.returncode == 1
    assert result.stderr.strip() == "voicebridge: nothing to do: --no-play without --out"


def test_ctrl_c_stops_speak_cleanly(tmp_path: Path) -> None:
    with ServerThread(engine="tone") as server:
        process = subprocess.Popen(
            [*COMMAND, "speak", "--url", server.url, "--no-play", "--out", str(tmp_path / "c.wav")],
            stdin=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV,
        )  # fmt: skip
        assert process.stdin is not None and process.stderr is not None
        process.stdin.write(b"A sentence that is spoken. And then the producer hangs")
        process.stdin.flush()
        deadline = time.monotonic() + 30
        while "A sentence that is spoken. " not in "".join(t.text for t in server.transcripts):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        assert process.wait(15) == 130
        stderr = process.stderr.read().decode()
        process.stdin.close()
    assert "interrupted" in stderr and "Traceback" not in stderr
