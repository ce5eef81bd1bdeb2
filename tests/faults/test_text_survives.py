"""Text that must survive the trip (issue 10), end to end: through the bridge's speakable filter
and fragmenter, the local server, and back as audio that decodes to what a listener heard.

Terminal escape sequences vanish (also when a token cuts one in two), a comparison is not a
tag, and a control character separates words like a space.
"""

from __future__ import annotations

import re

import pytest

from tests.fault_tools.scenarios import speak
from voicebridge.server import ServerThread


def words(text: str) -> list[str]:
    return re.findall(r"\w+", text)


@pytest.mark.parametrize(
    "pieces",
    [
        ["Status: \x1b[31mred alert\x1b[0m, then \x1b[1;32mgreen\x1b[0m."],
        ["Status: \x1b[3", "1mred alert\x1b", "[0m, then \x1b[1;", "32mgreen\x1b[0", "m."],
    ],
    ids=["whole", "split-across-tokens"],
)
def test_terminal_escape_sequences_vanish(pieces: list[str], text_server: ServerThread) -> None:
    outcome = speak(text_server.url, pieces)
    assert outcome.metrics is not None, outcome.error
    assert words(outcome.heard) == ["Status", "red", "alert", "then", "green"], outcome.heard
    assert "\x1b" not in outcome.heard and "31m" not in outcome.heard


@pytest.mark.parametrize(
    "pieces", [["If a<b and c>d, then a is small."], ["If a<", "b and c", ">d, then a is small."]]
)
def test_a_comparison_is_not_a_tag(pieces: list[str], text_server: ServerThread) -> None:
    outcome = speak(text_server.url, pieces)
    assert outcome.metrics is not None, outcome.error
    assert words(outcome.heard) == ["If", "a", "b", "and", "c", "d", "then", "a", "is", "small"]


def test_real_tags_are_still_markup(text_server: ServerThread) -> None:
    outcome = speak(text_server.url, ["This is <b>bold</b> and <br/> done."])
    assert words(outcome.heard) == ["This", "is", "bold", "and", "done"]


@pytest.mark.parametrize("control", ["\x00", "\x07", "\x0b", "\x1f", "\x7f"])
def test_a_control_character_separates_words(control: str, text_server: ServerThread) -> None:
    outcome = speak(text_server.url, [f"before{control}after and the rest."])
    assert outcome.metrics is not None, outcome.error
    assert words(outcome.heard) == ["before", "after", "and", "the", "rest"], outcome.heard
    assert control not in outcome.heard
