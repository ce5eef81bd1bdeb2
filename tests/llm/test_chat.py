"""The chat demo, driven through a pseudo-terminal like a person at a keyboard."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import subprocess
import sys
import termios
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.llm.scripted_llm import Fail, Reply, ScriptedLLM, say
from tests.user_errors import closed_port, one_error_line
from voicebridge.audio import NullSink
from voicebridge.bridge import VoiceBridge
from voicebridge.chat import DEFAULT_WAV, choose_llm, describe_speech
from voicebridge.cli import choose_sinks
from voicebridge.local_llm import MODEL_NAME
from voicebridge.server import ServerThread

REPO = Path(__file__).resolve().parents[2]


class Terminal:
    """A child process on a pseudo-terminal that we type into and read from."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        master, slave = pty.openpty()
        self.master = master
        self.seen = ""
        self.process = subprocess.Popen(
            args,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),  # Ctrl-C reaches it
        )
        os.close(slave)

    def type(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def expect(self, text: str, timeout: float = 30) -> str:
        """Read until ``text`` has appeared after what earlier expects consumed."""
        deadline = time.monotonic() + timeout
        while text not in self.seen:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{text!r} not seen; the terminal shows:\n{self.seen}")
            if select.select([self.master], [], [], min(left, 0.2))[0]:
                try:
                    data = os.read(self.master, 4096)
                except OSError:  # EIO: every process closed the terminal
                    data = b""
                if not data:
                    raise AssertionError(f"{text!r} not seen before exit:\n{self.seen}")
                self.seen += data.decode("utf-8", "replace")
        before, _, self.seen = self.seen.partition(text)
        return before

    def close(self) -> int:
        try:
            return int(self.process.wait(timeout=20))
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait(5)
            if self.master >= 0:
                os.close(self.master)
                self.master = -1


@pytest.fixture
def terminal_env(llm: ScriptedLLM) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "DASHSCOPE_"))}
    env.update(OPENAI_BASE_URL=llm.base_url, OPENAI_API_KEY="sk-test", TERM="dumb")
    return env


@pytest.fixture
def chat_terminal(terminal_env: dict[str, str], tmp_path: Path) -> Iterator[Terminal]:
    args = [sys.executable, "-m", "voicebridge.chat", "--no-play", "--engine", "tone"]
    terminal = Terminal(args, terminal_env, tmp_path)
    try:
        yield terminal
    finally:
        if terminal.process.poll() is None:
            terminal.process.kill()
        terminal.close()


def frames(path: Path) -> int:
    with wave.open(str(path)) as wav:
        return int(wav.getnframes())


def test_typed_messages_stream_as_text_and_audio_with_history(
    llm: ScriptedLLM, chat_terminal: Terminal, tmp_path: Path
) -> None:
    term = chat_terminal
    term.expect(f"audio written to {DEFAULT_WAV}")  # --no-play: it says where the audio goes
    term.expect("you> ")
    term.type("Hello there\n")
    term.expect("bot> You said: Hello there")
    term.expect("[first token ")
    term.expect("s of audio]")
    term.expect("you> ")
    term.type("Second question\n")
    term.expect("You said: Second question")
    term.expect("you> ")
    term.type("\x04")  # Ctrl-D
    assert term.close() == 0
    second = llm.requests[1]["messages"]
    assert [m["role"] for m in second] == ["system", "user", "assistant", "user"]
    assert second[2]["content"] == "You said: Hello there"
    assert frames(tmp_path / DEFAULT_WAV) > 8000  # both replies, 16-bit PCM at 22050 Hz


def test_ctrl_c_interrupts_a_reply_and_the_next_turn_works(
    llm: ScriptedLLM, chat_terminal: Terminal
) -> None:
    llm.queue(Reply(say("word " * 400), token_delay=0.02))
    term = chat_terminal
    term.expect("you> ")
    term.type("Talk for a long time\n")
    term.expect("word " * 40)  # the first fragment (16 words) was spoken by now
    term.type("\x03")  # Ctrl-C: barge-in
    shown = term.expect("[interrupted]")
    assert 40 <= shown.count("word") + 40 < 400
    llm.wait_streams(disconnects=1)  # the LLM stream was closed, not read to its end
    term.expect("you> ")
    term.type("Are you there?\n")
    term.expect("You said: Are you there?")
    term.expect("you> ")
    term.type("/quit\n")
    assert term.close() == 0
    history = llm.requests[1]["messages"]
    assert history[2]["role"] == "assistant"
    heard = history[2]["content"]  # the part that was heard, no more (tests/test_cli_chat.py)
    assert heard.startswith("word word") and heard.count("word") <= shown.count("word") + 40


def test_an_llm_error_is_shown_and_the_chat_goes_on(
    llm: ScriptedLLM, chat_terminal: Terminal
) -> None:
    llm.queue(Reply([*say("Partial answer."), Fail("quota exceeded")]))
    term = chat_terminal
    term.expect("you> ")
    term.type("Hello\n")
    term.expect("Partial answer.")
    term.expect("[the LLM stream failed: APIError: quota exceeded]")
    term.expect("you> ")
    term.type("Hello again\n")
    term.expect("You said: Hello again")
    term.expect("you> ")
    term.type("\x04")
    assert term.close() == 0


def test_one_shot_message_prints_reply_and_metrics(
    terminal_env: dict[str, str], tmp_path: Path
) -> None:
    args = [sys.executable, "-m", "voicebridge.chat", "Just once", "--no-play"]
    args += ["--engine", "tone", "--out", "once.wav"]
    result = subprocess.run(
        args, env=terminal_env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "You said: Just once" in result.stdout
    assert "s of audio]" in result.stdout
    assert frames(tmp_path / "once.wav") > 4000


def test_llm_choice_follows_arguments_then_openai_then_dashscope_then_local() -> None:
    explicit = choose_llm("http://h/v1", "m", "k", environ={"DASHSCOPE_API_KEY": "d"})
    assert (explicit.base_url, explicit.model, explicit.api_key) == ("http://h/v1", "m", "k")
    openai_env = choose_llm(environ={"OPENAI_API_KEY": "sk-x", "OPENAI_MODEL": "gpt-x"})
    assert (openai_env.base_url, openai_env.model, openai_env.local) == (None, "gpt-x", False)
    qwen = choose_llm(environ={"DASHSCOPE_API_KEY": "sk-secret"})
    assert qwen.base_url == "https://dashscope.aliyuncs.com/compatible-mode/v1"
    assert qwen.model.startswith("qwen")
    assert "sk-secret" not in repr(qwen)
    intl = {"DASHSCOPE_API_KEY": "d", "DASHSCOPE_WEBSOCKET_BASE_URL": "wss://dashscope-intl.x"}
    assert "dashscope-intl" in str(choose_llm(environ=intl).base_url)
    local = choose_llm(environ={})
    assert local.local and local.model == MODEL_NAME


def test_no_speaker_means_a_wav_file_and_a_note(tmp_path: Path) -> None:
    sinks, note = choose_sinks(None, play=False, device=None, default_wav=DEFAULT_WAV)
    assert len(sinks) == 1
    assert note == f"audio written to {DEFAULT_WAV}"
    sinks, note = choose_sinks(
        str(tmp_path / "x.wav"), play=True, device="no-such-device", default_wav=DEFAULT_WAV
    )
    assert note.startswith("not playing (") and note.endswith("audio written to " + sinks[0].path)


def test_piped_messages_are_echoed_after_the_prompt(
    terminal_env: dict[str, str], tmp_path: Path
) -> None:
    args = [sys.executable, "-m", "voicebridge.chat", "--no-play", "--engine", "tone"]
    result = subprocess.run(
        args, input="Hello there\nSecond question\n", env=terminal_env, cwd=tmp_path,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "you> Hello there\nbot> You said: Hello there\n" in result.stdout
    assert "you> Second question\nbot> You said: Second question\n" in result.stdout


def test_an_unreachable_llm_is_one_line_and_leaves_no_wav(
    terminal_env: dict[str, str], tmp_path: Path
) -> None:
    base_url = f"http://127.0.0.1:{closed_port()}/v1"
    args = [sys.executable, "-m", "voicebridge.chat", "Hello?", "--base-url", base_url]
    args += ["--engine", "tone", "--no-play", "--out", "once.wav"]
    result = subprocess.run(
        args, env=terminal_env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    line = one_error_line(result, 1)
    assert line.startswith(f"voicebridge: cannot reach the LLM at {base_url}")
    assert list(tmp_path.iterdir()) == []  # neither once.wav nor a temporary file


def test_with_a_dashscope_key_the_speech_service_is_named_not_none(
    terminal_env: dict[str, str], tmp_path: Path
) -> None:
    with ServerThread(engine="tone") as speech:
        env = {**terminal_env, "DASHSCOPE_API_KEY": "sk-secret-test"}
        env["DASHSCOPE_WEBSOCKET_BASE_URL"] = speech.url
        args = [sys.executable, "-m", "voicebridge.chat", "Hi", "--no-play"]
        result = subprocess.run(
            args, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
        )
    assert result.returncode == 0, result.stderr
    assert f"speech: CosyVoice-compatible service at {speech.url};" in result.stderr
    assert "None" not in result.stderr
    assert "sk-secret-test" not in result.stdout + result.stderr


def test_the_real_service_is_described_by_its_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DASHSCOPE_WEBSOCKET_BASE_URL", raising=False)
    with VoiceBridge(api_key="sk-test", sinks=[NullSink()]) as bridge:  # never connects here
        assert describe_speech(bridge) == "Alibaba Cloud CosyVoice (dashscope.aliyuncs.com)"
        intl = "wss://dashscope-intl.aliyuncs.com/api-ws/v1/inference"
        assert describe_speech(bridge, intl) in (
            "Alibaba Cloud CosyVoice (dashscope-intl.aliyuncs.com)",  # bridge.url unresolved
            "Alibaba Cloud CosyVoice (dashscope.aliyuncs.com)",  # bridge.url resolved
        )
        assert not bridge.connected


@pytest.mark.slow
def test_one_shot_on_the_embedded_defaults_local_llm_and_local_speech(tmp_path: Path) -> None:
    """README's first command (installed already): no key, no URL, no sound device needed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "DASHSCOPE_"))}
    args = [sys.executable, "-m", "voicebridge.chat", "What is the capital of France?"]
    result = subprocess.run(
        [*args, "--no-play"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "local SmolLM2" in result.stderr
    assert "embedded local server" in result.stderr
    reply, _, metrics = result.stdout.partition("[first token ")
    assert "Paris" in reply
    assert "s of audio]" in metrics
    assert frames(tmp_path / DEFAULT_WAV) > 22050  # more than a second of speech
