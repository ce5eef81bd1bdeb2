"""``voicebridge chat``: an interrupted reply joins the history cut to what was heard (issue 12),
and the local model's start is shown while it happens (issue 16).

The barge-in tests press Ctrl-C for real (SIGINT to this process, handled on the main thread
by :func:`voicebridge.chat.ctrl_c_barges_in`) while :meth:`Chat.ask` speaks through the real
local server's text engine, whose audio decodes to the text a listener heard. The audio goes to
a consumer that takes as long as the audio lasts, as a speaker does, so the LLM's reply (written
at once) runs far ahead of what is heard.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import cast

import openai
import pytest

from tests.llm.scripted_llm import Pause, Reply, ScriptedLLM, say
from tests.test_cli_progress import run_on_terminal
from voicebridge.audio import CallbackSink
from voicebridge.bridge import VoiceBridge
from voicebridge.chat import Chat, ctrl_c_barges_in
from voicebridge.server.text_engine import decode_text_audio

SAMPLE_RATE = 16000
BYTES_PER_SECOND = 2 * SAMPLE_RATE
REPLY = " ".join(["Alpha bravo charlie. Delta echo foxtrot, golf hotel india."] * 8)


class Listener:
    """Takes each chunk as long as it lasts (a speaker's pace); keeps what it has heard."""

    def __init__(self) -> None:
        self.heard = bytearray()

    def __call__(self, chunk: bytes) -> None:
        time.sleep(len(chunk) / BYTES_PER_SECOND)
        self.heard.extend(chunk)


@pytest.fixture
def llm() -> Iterator[ScriptedLLM]:
    with ScriptedLLM() as server:
        yield server


@pytest.fixture
def chat_with(llm: ScriptedLLM) -> Iterator[Callable[[Listener], Chat]]:
    """A :class:`Chat` on the scripted LLM, speaking through the text engine to a listener."""
    with contextlib.ExitStack() as stack:

        def make(listener: Listener) -> Chat:
            bridge = stack.enter_context(
                VoiceBridge(engine="text", sample_rate=SAMPLE_RATE, sinks=[CallbackSink(listener)])
            )
            client = stack.enter_context(
                openai.OpenAI(base_url=llm.base_url, api_key="sk-test", max_retries=0)
            )
            return Chat(client, "scripted", bridge, system="Be brief.", out=io.StringIO())

        yield make


def press_ctrl_c_when(ready: Callable[[], bool]) -> threading.Thread:
    """A thread that sends SIGINT to this process once ``ready()`` (within 30 s)."""

    def press() -> None:
        deadline = time.monotonic() + 30
        while not ready() and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGINT)

    thread = threading.Thread(target=press, name="ctrl-c")
    thread.start()
    return thread


def test_ctrl_c_cuts_the_reply_in_the_history_to_what_was_heard(
    llm: ScriptedLLM, chat_with: Callable[[Listener], Chat]
) -> None:
    listener = Listener()
    chat = chat_with(listener)
    llm.queue(Reply(say(REPLY)))
    before = signal.getsignal(signal.SIGINT)
    presser = press_ctrl_c_when(lambda: len(listener.heard) >= BYTES_PER_SECOND)  # 1 s heard
    with ctrl_c_barges_in(chat.bridge):
        report = chat.ask("Spell something.")
    presser.join(5)
    assert signal.getsignal(signal.SIGINT) is before
    assert report.interrupted
    kept = chat.messages[-1]
    assert kept == {"role": "assistant", "content": report.reply}
    shown = cast(io.StringIO, chat.out).getvalue()
    heard = decode_text_audio(bytes(listener.heard)).text
    # The history holds the words heard, whole: what the listener heard, to the word (the
    # listener may have taken one 0.1 s chunk more before the barge-in reached it).
    assert kept["content"] and heard.startswith(kept["content"])
    assert len(re.findall(r"\w+", heard[len(kept["content"]) :])) <= 2
    assert len(kept["content"]) < len(shown) / 4  # far less than the reply that was shown
    assert REPLY.startswith(kept["content"])
    chat.ask("And then?")
    sent = llm.requests[-1]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    assert sent[2]["content"] == kept["content"]


def test_ctrl_c_before_anything_was_heard_drops_the_question_too(
    llm: ScriptedLLM, chat_with: Callable[[Listener], Chat]
) -> None:
    listener = Listener()
    chat = chat_with(listener)
    llm.queue(Reply([Pause(3.0), *say("Too late to be heard.")]))
    presser = press_ctrl_c_when(lambda: chat.bridge.progress is not None)  # the turn is running
    with ctrl_c_barges_in(chat.bridge):
        report = chat.ask("Anyone there?")
    presser.join(5)
    assert report.interrupted and report.reply == "" and listener.heard == b""
    assert chat.messages == [{"role": "system", "content": "Be brief."}]


def test_ctrl_c_with_no_reply_being_spoken_raises_as_usual(
    chat_with: Callable[[Listener], Chat],
) -> None:
    chat = chat_with(Listener())
    with pytest.raises(KeyboardInterrupt), ctrl_c_barges_in(chat.bridge):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(10)  # the handler raises at once: never slept through


# --------------------------------------------------------------------------- the local model start

LOCAL_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "DASHSCOPE_"))}
CHAT = [sys.executable, "-m", "voicebridge", "chat", "What is the capital of France?"]
LABEL = "local SmolLM2 (llama.cpp)"


@pytest.mark.slow
def test_local_model_start_is_shown_live_on_a_terminal_and_in_lines_elsewhere(
    tmp_path: os.PathLike[str],
) -> None:
    args = [*CHAT, "--no-play", "--engine", "tone", "--out", os.path.join(tmp_path, "c.wav")]
    status, screen = run_on_terminal(args, timeout=120, env=LOCAL_ENV)
    assert status == 0, screen
    assert re.search(rf"\rstarting the {re.escape(LABEL)}: loading the model, \d+\.\d s", screen)
    erased = re.search(rf"\r +\r{re.escape(LABEL)} ready in \d+\.\d s\n", screen)
    assert erased, screen  # the live line is erased, and the result stays
    piped = subprocess.run(args, capture_output=True, text=True, env=LOCAL_ENV, timeout=120)
    assert piped.returncode == 0, piped.stderr
    assert re.search(rf"^starting the {re.escape(LABEL)}\.\.\.\n{re.escape(LABEL)} ready in "
                     r"\d+\.\d s\n", piped.stderr, re.MULTILINE), piped.stderr  # fmt: skip
    assert "\r" not in piped.stderr


def test_with_v_the_model_start_is_told_in_lines_even_on_a_terminal(
    tmp_path: os.PathLike[str],
) -> None:
    """The library's log lines go to the same terminal: a redrawn line would overwrite them."""
    args = [*CHAT, "--no-play", "--engine", "tone", "--out", os.path.join(tmp_path, "c.wav")]
    verbose = [args[0], *args[1:3], "-v", *args[3:]]  # python -m voicebridge -v chat ...
    status, screen = run_on_terminal(verbose, timeout=120, env=LOCAL_ENV)
    assert status == 0, screen
    assert f"starting the {LABEL}...\n" in screen and f"{LABEL} ready in " in screen, screen
    assert "loading the model," not in screen, screen
