"""Run-task options validated and honoured by ServerProtocol, in memory (issue 12)."""

from __future__ import annotations

from typing import Any

import pytest

from voicebridge.protocol import (
    LANGUAGE_HINTS,
    ContinueTask,
    RunTask,
    SynthesisParameters,
    TaskFailed,
    TaskStarted,
    encode_client_message,
)
from voicebridge.server.service import ServerAction, ServerProtocol, Synthesize
from voicebridge.server.task_options import ESPEAK_LANGUAGES
from voicebridge.voices import voice_language

TASK = "0" * 32


Started = tuple[ServerProtocol, list[ServerAction]]


def start(voice: str = "longxiaochun_v2", **extra: Any) -> Started:
    server = ServerProtocol(now=0.0, voice_language=voice_language)
    params = SynthesisParameters("cosyvoice-v2", voice, "pcm", 22050, extra=extra)
    return server, server.receive_text(encode_client_message(RunTask.create(TASK, params)), 0.0)


def sentence(server: ServerProtocol, value: str) -> Synthesize:
    [synth] = server.receive_text(encode_client_message(ContinueTask(TASK, value)), 0.0)
    assert isinstance(synth, Synthesize)
    return synth


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"language_hints": ["xx"]}, "language_hints"),
        ({"language_hints": "en"}, "language_hints"),
        ({"seed": 65536}, "seed"),
        ({"seed": -1}, "seed"),
        ({"seed": True}, "seed"),
        ({"instruction": "x" * 129}, "instruction"),
        ({"instruction": 5}, "instruction"),
        ({"hot_fix": {"replace": "草地"}}, "hot_fix"),
        ({"hot_fix": {"other": []}}, "hot_fix"),
        ({"hot_fix": {"replace": [{"a": 1}]}}, "hot_fix"),
        ({"bit_rate": 5}, "bit_rate"),
        ({"bit_rate": 511}, "bit_rate"),
        ({"word_timestamp_enabled": "yes"}, "word_timestamp_enabled"),
        ({"enable_markdown_filter": 1}, "enable_markdown_filter"),
    ],
)
def test_bad_options_fail_the_task_naming_the_parameter(extra: dict[str, Any], named: str) -> None:
    _, actions = start(**extra)
    failed = actions[0]
    assert isinstance(failed, TaskFailed) and failed.code == "InvalidParameter"
    assert f"'{named}'" in failed.message


def test_good_options_are_accepted() -> None:
    _, actions = start(
        seed=65535,
        instruction="请用广东话表达。",
        bit_rate=510,
        language_hints=["zh"],
        hot_fix={"pronunciation": [{"草地": "cao3 di4"}], "replace": [{"草地": "草弟"}]},
        enable_markdown_filter=True,
        word_timestamp_enabled=True,
    )
    assert actions == [TaskStarted(TASK)]


@pytest.mark.parametrize("hint", sorted(ESPEAK_LANGUAGES))
def test_first_language_hint_picks_the_engine_language(hint: str) -> None:
    server, _ = start("longxiaochun_v2", language_hints=[hint, "en"])
    expected = "cmn" if hint == "zh" else ESPEAK_LANGUAGES[hint]
    assert sentence(server, "1. ").request.language == expected


def test_a_hint_of_the_voice_s_own_language_keeps_its_accent() -> None:
    server, _ = start("loongeva_v2", language_hints=["en"])  # a British voice
    assert sentence(server, "Hello. ").request.language == "en"
    server, _ = start("longjiayi_v2", language_hints=["zh"])  # Cantonese
    assert sentence(server, "你好。").request.language == "yue"


def test_replace_changes_what_is_spoken_not_the_original_text() -> None:
    server, _ = start(hot_fix={"replace": [{"草地": "草弟"}, {"Dr": "Doctor"}]})
    synth = sentence(server, "草地上有Dr Li。")
    assert synth.text == "草地上有Dr Li。"
    assert synth.request.text == "草弟上有Doctor Li。"


def test_markdown_filter_removes_marks_before_synthesis() -> None:
    server, _ = start(enable_markdown_filter=True)
    synth = sentence(server, "## A **bold** [link](http://x.y) and `code`, snake_case.\n")
    assert synth.request.text == "A bold link and code, snake_case.\n"
    assert synth.text.startswith("## A **bold**")


def test_every_language_the_client_accepts_is_spoken_here() -> None:
    assert set(ESPEAK_LANGUAGES) == set(LANGUAGE_HINTS)
