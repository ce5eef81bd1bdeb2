"""The ``voicebridge`` command, run as a user runs it: a real process, real pipes, real servers.

Every user error is one line on stderr, no traceback, an exit status (2 for a bad argument, 1 for
what fails later), and leaves no WAV behind (or the previous one untouched).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import wave
from pathlib import Path

import pytest

from tests.user_errors import closed_port, env_without, one_error_line
from voicebridge.cli import read_stream
from voicebridge.client import AudioFormat, SpeechSynthesizer
from voicebridge.server import ServerThread

COMMAND = [sys.executable, "-m", "voicebridge"]
ENV = {k: v for k, v in os.environ.items() if not k.startswith("DASHSCOPE_")}


def run(
    *args: str,
    stdin: str | None = None,
    timeout: float = 60,
    cwd: Path | None = None,
    env: dict[str, str] = ENV,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=cwd,
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


@pytest.mark.usefixtures("ctrl_c_reaches_children")
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
        try:
            code = process.wait(20)
        finally:
            if process.poll() is None:  # it did not stop: never leave it running
                process.kill()
                process.wait(5)
    assert code == 0


def test_no_play_without_out_writes_the_default_wav_and_says_so(tmp_path: Path) -> None:
    result = run("speak", "Nothing to play.", "--no-play", "--engine", "tone", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.endswith("; audio written to voicebridge-speak.wav")
    assert wav_seconds(tmp_path / "voicebridge-speak.wav") > 0.5


def test_no_sound_device_falls_back_to_a_wav_named_in_one_line(tmp_path: Path) -> None:
    """The sink policy that ``chat`` shares: play, or write a WAV and say why in one line."""
    result = run("speak", "Hello.", "--device", "no-such-device", "--engine", "tone", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert "not playing (" in line and line.endswith("audio written to voicebridge-speak.wav")
    assert wav_seconds(tmp_path / "voicebridge-speak.wav") > 0.2
    without_pyaudio = env_without(tmp_path / "hook", ENV, "pyaudio")
    result = run("speak", "Hello.", "--engine", "tone", "--out", "x.wav", cwd=tmp_path,
                 env=without_pyaudio)  # fmt: skip
    assert result.returncode == 0, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert "PyAudio is not installed" in line and line.endswith("audio written to x.wav")


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        (["--url", "not-a-url"], "--url"),
        (["--url", "http://127.0.0.1:8765/api-ws/v1/inference"], "not a WebSocket URL"),
        (["--rate", "5"], "--rate: 5 is out of range: 0.5 to 2"),
        (["--pitch", "0.1"], "--pitch"),
        (["--volume", "101"], "--volume"),
        (["--sample-rate", "1234"], "--sample-rate"),
        (["--engine", "piper"], "--engine piper needs --piper-voice"),
        (["--piper-voice", "missing.onnx"], "no such file"),
    ],
)
def test_a_bad_argument_is_one_line_and_status_2_before_anything_runs(
    tmp_path: Path, arguments: list[str], named: str
) -> None:
    result = run("speak", "Hello.", "--no-play", "--out", "x.wav", *arguments, cwd=tmp_path)
    line = one_error_line(result, 2)
    assert line.startswith("voicebridge speak: error: ") and named in line
    assert result.stderr.count("\n") == 1
    assert list(tmp_path.iterdir()) == []  # no WAV, no temporary file


def test_an_unknown_voice_is_one_line_that_names_the_voices_command(tmp_path: Path) -> None:
    previous = tmp_path / "x.wav"
    previous.write_bytes(b"the previous file")
    result = run("speak", "Hello.", "--voice", "nosuch", "--no-play", "--out", "x.wav",
                 "--engine", "tone", cwd=tmp_path)  # fmt: skip
    line = one_error_line(result, 1)
    assert result.stderr.count("\n") == 1
    assert "`voicebridge voices`" in line
    assert previous.read_bytes() == b"the previous file"  # a failed run keeps the previous one
    assert [p.name for p in tmp_path.iterdir()] == ["x.wav"]


def test_an_unreachable_speech_service_is_one_line_and_no_file(tmp_path: Path) -> None:
    url = f"ws://127.0.0.1:{closed_port()}/api-ws/v1/inference"
    result = run("speak", "Hello.", "--url", url, "--no-play", "--out", "x.wav", cwd=tmp_path)
    line = one_error_line(result, 1)
    assert result.stderr.count("\n") == 1
    assert line.startswith("voicebridge: ") and "127.0.0.1" in line
    assert list(tmp_path.iterdir()) == []


def test_an_unreadable_file_and_a_missing_extra_are_one_line(tmp_path: Path) -> None:
    result = run("speak", "--file", str(tmp_path / "missing.txt"), "--no-play", cwd=tmp_path)
    assert one_error_line(result, 1) == (
        f"voicebridge: cannot read {str(tmp_path / 'missing.txt')!r}: No such file or directory"
    )
    no_llm = env_without(tmp_path / "hook", ENV, "xllamacpp")
    result = run("chat", "Hello?", "--no-play", cwd=tmp_path / "hook", env=no_llm)
    assert one_error_line(result, 1) == (
        "voicebridge: the local LLM needs xllamacpp: pip install 'voicebridge[local-llm]'"
    )
    assert result.stderr.count("\n") == 1  # nothing started before it
    assert not (tmp_path / "hook" / "voicebridge-chat.wav").exists()


def test_voices_lists_each_model_with_language_and_gender() -> None:
    result = run("voices")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "cosyvoice-v2:"
    default = next(line for line in lines if "longxiaochun_v2" in line)
    assert "female, Mandarin Chinese and English  (default)" in default
    assert "male, American English" in next(line for line in lines if "loongandy_v2" in line)
    assert "female, Cantonese and English" in next(line for line in lines if "longjiayi_v2" in line)
    assert "cosyvoice-v1:" in lines
    only_v1 = run("voices", "--model", "cosyvoice-v1").stdout.splitlines()
    assert only_v1[0] == "cosyvoice-v1:" and len(only_v1) == 21
    assert not any("_v2" in line for line in only_v1)
    assert "voicebridge voices" in run("speak", "--help").stdout
    assert one_error_line(run("voices", "--model", "nope"), 2).startswith(
        "voicebridge voices: error: argument --model: invalid choice: 'nope'"
    )


@pytest.mark.usefixtures("ctrl_c_reaches_children")
def test_ctrl_c_stops_speak_cleanly(tmp_path: Path) -> None:
    with ServerThread(engine="tone") as server:
        process = subprocess.Popen(
            [*COMMAND, "speak", "--url", server.url, "--no-play", "--out", str(tmp_path / "c.wav")],
            stdin=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV,
        )  # fmt: skip
        try:
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
        finally:
            if process.poll() is None:  # it did not stop: never leave it running
                process.kill()
                process.wait(5)
    assert "interrupted" in stderr and "Traceback" not in stderr
