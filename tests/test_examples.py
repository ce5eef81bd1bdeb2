"""Each example runs as a user would run it: a subprocess, its own bridge and embedded server.

The fast runs use the scripted LLM server through ``OPENAI_BASE_URL``; the slow runs use the
embedded defaults: the local SmolLM2 (the ``local-llm`` extra) and a real 25-second tool call.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.llm.scripted_llm import Reply, ScriptedLLM, echo, say
from tests.user_errors import env_without, one_error_line

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
STORY = "Once upon a time a lighthouse keeper counted the waves every night. " * 20


def slow_stories(messages: list[dict[str, Any]]) -> Reply:
    """Echo, except that a long story streams slowly enough to be talked over."""
    if "long story" in str(messages[-1].get("content")):
        return Reply(say(STORY), token_delay=0.02)
    return echo(messages)


@pytest.fixture
def scripted() -> Iterator[ScriptedLLM]:
    with ScriptedLLM(default=slow_stories) as server:
        yield server


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "DASHSCOPE_"))}
    env.update(extra)
    return env


def start_example(
    name: str, *args: str, env: dict[str, str], cwd: Path, stdin: str = "", timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        input=stdin,
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_example(
    name: str, *args: str, env: dict[str, str], cwd: Path, stdin: str = "", timeout: float = 90
) -> str:
    result = start_example(name, *args, env=env, cwd=cwd, stdin=stdin, timeout=timeout)
    assert result.returncode == 0, result.stderr
    return result.stdout


def frames(path: Path) -> int:
    with wave.open(str(path)) as wav:
        return int(wav.getnframes())


def test_chatbot_voice(scripted: ScriptedLLM, tmp_path: Path) -> None:
    env = clean_env(OPENAI_BASE_URL=scripted.base_url, OPENAI_API_KEY="sk-test")
    questions = ["What is a haiku?", "Write one."]
    out = run_example("chatbot_voice.py", *questions, "--out", "c.wav", env=env, cwd=tmp_path)
    assert "bot: You said: What is a haiku?" in out
    assert "bot: You said: Write one." in out
    assert [m["role"] for m in scripted.requests[1]["messages"]] == [
        "system",
        "user",
        "assistant",
        "user",
    ]
    assert frames(tmp_path / "c.wav") > 8000


def test_live_demo(scripted: ScriptedLLM, tmp_path: Path) -> None:
    env = clean_env(OPENAI_BASE_URL=scripted.base_url, OPENAI_API_KEY="sk-test")
    out = run_example(
        "live_demo.py", "--out", "l.wav", env=env, cwd=tmp_path, stdin="Hello\nAgain\n"
    )
    assert "bot> You said: Hello" in out
    assert "bot> You said: Again" in out
    assert out.count("s of audio]") == 2
    assert len(scripted.requests[1]["messages"]) == 4  # the history went back to the LLM
    assert frames(tmp_path / "l.wav") > 8000


@pytest.mark.parametrize(
    ("name", "args", "stdin"), [("chatbot_voice.py", ["Hello?"], ""), ("live_demo.py", [], "Hi\n")]
)
def test_without_a_sound_device_an_example_ends_in_one_line(
    scripted: ScriptedLLM, tmp_path: Path, name: str, args: list[str], stdin: str
) -> None:
    """No --out: the speaker. Without PyAudio (as without a device) that is one clear line."""
    env = clean_env(OPENAI_BASE_URL=scripted.base_url, OPENAI_API_KEY="sk-test")
    env = env_without(tmp_path / "hook", env, "pyaudio")
    result = start_example(name, *args, env=env, cwd=tmp_path, stdin=stdin)
    assert one_error_line(result, 1).startswith(f"{name}: PyAudio is not installed")


def test_without_the_local_llm_extra_an_example_ends_in_one_line(tmp_path: Path) -> None:
    env = env_without(tmp_path / "hook", clean_env(), "xllamacpp")
    result = start_example("chatbot_voice.py", "Hello?", "--out", "c.wav", env=env, cwd=tmp_path)
    line = one_error_line(result, 1)
    assert (
        line
        == "chatbot_voice.py: the local LLM needs xllamacpp: pip install 'voicebridge[local-llm]'"
    )
    assert not (tmp_path / "c.wav").exists()


def test_agent_embedding_short_tool_call(scripted: ScriptedLLM, tmp_path: Path) -> None:
    env = clean_env(OPENAI_BASE_URL=scripted.base_url, OPENAI_API_KEY="sk-test")
    out = run_example(
        "agent_embedding.py", "--tool-seconds", "1", "--out", "a.wav", env=env, cwd=tmp_path
    )
    assert "Let me look up the weather in Hangzhou." in out
    assert "21 degrees and sunny" in out  # the tool's result went through the LLM
    heard = re.search(r"\[barge-in: interrupted=True; heard: '(.*)'\]", out)
    assert heard is not None, out
    assert heard.group(1).count("lighthouse keeper counted") < 20  # only what was played
    assert out.count("lighthouse keeper counted") < 20  # the story was cut short
    assert "Sure, I stopped." in out
    scripted.wait_streams(disconnects=1)  # the interrupted LLM stream was closed
    assert frames(tmp_path / "a.wav") > 8000


@pytest.mark.slow
def test_agent_embedding_tool_call_longer_than_the_23_second_limit(
    scripted: ScriptedLLM, tmp_path: Path
) -> None:
    env = clean_env(OPENAI_BASE_URL=scripted.base_url, OPENAI_API_KEY="sk-test")
    out = run_example("agent_embedding.py", "--out", "a.wav", env=env, cwd=tmp_path)
    tasks = re.search(r"tool call of 25 s: [\d.]+ s of audio, (\d+) synthesis task", out)
    assert tasks is not None, out
    assert int(tasks.group(1)) >= 2  # the bridge finished the quiet task and opened a new one
    assert "21 degrees and sunny" in out


@pytest.mark.slow
def test_examples_run_offline_on_the_embedded_defaults(tmp_path: Path) -> None:
    """No key, no URL: the local SmolLM2 writes, the embedded server speaks."""
    env = clean_env()
    question = "What is the capital of France?"
    out = run_example("chatbot_voice.py", question, "--out", "c.wav", env=env, cwd=tmp_path)
    reply = out.split("bot: ", 1)[1].split("speech written", 1)[0]
    assert "Paris" in reply
    assert frames(tmp_path / "c.wav") > 4000
    out = run_example("live_demo.py", "--out", "l.wav", env=env, cwd=tmp_path, stdin="Hi!\n")
    assert "s of audio]" in out
