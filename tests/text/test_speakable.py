"""Speakable text: Markdown, code, URLs, HTML, emoji and control characters, on a stream."""

from __future__ import annotations

import sys
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicebridge.errors import ConfigurationError
from voicebridge.text.speakable import SpeakableFilter, speakable

CASES = [
    ("# Title\n\nSome **bold** and *it* text.", "Title\nSome bold and it text."),
    ("__init__ and snake_case and ~~gone~~ ~5 min", "init and snake_case and gone ~5 min"),
    ("2 * 3 = 6", "2 * 3 = 6"),
    ("1. First item\n2) Second\n- dash\n* star\n+ plus", "First item\nSecond\ndash\nstar\nplus"),
    ("3.14 is pi\n2024 was long", "3.14 is pi\n2024 was long"),
    ("See [the docs](https://docs.python.org/3/x.html).", "See the docs."),
    ("![a cat](cat.png) sat", "a cat sat"),
    ("Run `pip install x_y` now", "Run pip install x_y now"),
    ("Keep `**stars**` in code", "Keep **stars** in code"),
    ("Before\n```python\nprint('x')\n```\nAfter", "Before\nAfter"),
    ("Before\n~~~\ncode\n~~~\nAfter", "Before\nAfter"),
    ("Unclosed\n```\ncode forever", "Unclosed"),
    ("| a | b |\n|---|:-:|\n| 1 | 2 |", "a, b\n1, 2"),
    ("Hi <b>bold</b><br/>x < y and a<b", "Hi bold x < y and a<b"),
    ("<https://www.example.com/a> and <me@example.com>", "example.com and me@example.com"),
    ("Visit https://www.example.com/path?q=1. Then go.", "Visit example.com. Then go."),
    ("(see http://x.org/a_(b)) ok", "(see x.org) ok"),
    ("**https://x.io/y** done", "x.io done"),
    ("访问https://x.cn/a了解", "访问x.cn了解"),
    ("www. is a prefix; whh what", "www. is a prefix; whh what"),
    ("> quoted\n>> twice", "quoted\ntwice"),
    ("Title\n=====\nText\n---\n***", "Title\nText"),
    ("Great 👍🏽 job 🇨🇳 ✅ done", "Great job done"),
    ("zero\u200bwidth\u200d and\ufeff bidi \u202eok", "zerowidth and bidi ok"),
    ("tab\tand   spaces\n\n\n\nlines", "tab and spaces\nlines"),
    ("\\*literal\\* C:\\dir", "*literal* C:\\dir"),
    ("  \n\n  leading", "leading"),
    ("שלום עולם. مرحبا بالعالم؟", "שלום עולם. مرحبا بالعالم؟"),
    ("床前明月光，疑是地上霜。", "床前明月光，疑是地上霜。"),
    # terminal escape sequences vanish whole
    ("\x1b[31mred\x1b[0m and \x1b[1;38;5;208mbold\x1b[m", "red and bold"),
    ("un\x1b[4mder\x1b[24mline \x1b[2K\x1b[1Gdone", "underline done"),
    ("\x1b]0;window title\x07Title set", "Title set"),
    ("see \x1b]8;;https://x.io/a\x1b\\the link\x1b]8;;\x1b\\ now", "see the link now"),
    ("\x1b]2;st ended\x9cok \x1bP1$r0m\x1b\\dcs \x1b_apc\x1b\\end", "ok dcs end"),
    ("save\x1b7 \x1b(Bcharset \x1b=keypad \x1bcreset", "save charset keypad reset"),
    ("short \x1b]0;cut \x1b[1mshort", "short short"),  # ESC ends a control string
    ("bad \x1b[12\u00e9x and \x1b\u00e9", "bad 12\u00e9x and \u00e9"),  # malformed: kept
    ("open \x1b]0;title\nnext line", "open 0;title\nnext line"),  # no OSC across lines
    # only real tag shapes are markup
    ("a<b and c>d, x<y or z>w", "a<b and c>d, x<y or z>w"),
    ("i<3 you and 1 < 2 > 0", "i<3 you and 1 < 2 > 0"),
    ('<a href="https://x.io">the link</a> and <img src=x.png alt="a > b"/>', "the link and"),
    ("<p>One</p><p>Two</p><hr/><input type=checkbox checked>done", "One Two done"),
    ("before<!-- note\n<b>hidden</b> -->after <!-->x", "beforeafter x"),
    ("<!DOCTYPE html><?xml version='1.0'?><![CDATA[raw]]>text", "text"),
    ("<my-widget data-x=1>custom</my-widget> <svg:rect/>", "custom"),
    ("a <b and> c <b x>", "a <b and> c <b x>"),
    # controls are spaces, format characters vanish
    ("before\x00after\x01one\x7ftwo\x9bthree\x07four", "before after one two three four"),
    ("soft\xadhy\u200dphen\u2060ated", "softhyphenated"),
]


@pytest.mark.parametrize(("raw", "spoken"), CASES)
def test_speakable(raw: str, spoken: str) -> None:
    assert speakable(raw) == spoken


@pytest.mark.parametrize(("raw", "spoken"), CASES)
def test_one_character_at_a_time_gives_the_same(raw: str, spoken: str) -> None:
    cleaner = SpeakableFilter()
    out = "".join(cleaner.feed(char) for char in raw) + cleaner.flush()
    assert out.rstrip(" \n") == spoken


def test_code_block_placeholder() -> None:
    text = "Here:\n```js\nx()\n```\nDone."
    assert speakable(text, code_blocks="placeholder") == "Here:\ncode block\nDone."
    assert speakable(text, code_blocks="placeholder", code_placeholder="(code)") == (
        "Here:\n(code)\nDone."
    )
    with pytest.raises(ConfigurationError):
        SpeakableFilter(code_blocks="read")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        SpeakableFilter(code_blocks="placeholder", code_placeholder="  ")


def test_split_markup_across_tokens() -> None:
    cleaner = SpeakableFilter()
    pieces = ["Some *", "*bo", "ld*", "* and\n`", "`", "`py\nx = 1\n`", "``\nend"]
    assert "".join(cleaner.feed(p) for p in pieces) + cleaner.flush() == "Some bold and\nend"


def test_held_markup_is_pending_until_decided() -> None:
    cleaner = SpeakableFilter()
    assert cleaner.feed("Hello *") == "Hello "
    assert cleaner.pending == "*"
    assert cleaner.feed("*x") == "x"
    assert cleaner.pending == ""


def test_flush_keeps_fence_and_table_state() -> None:
    cleaner = SpeakableFilter()
    out = cleaner.feed("Text\n```\nsecret = 1") + cleaner.flush()
    out += cleaner.feed("\nmore secret\n```\nvisible") + cleaner.flush()
    assert out == "Text\nvisible"
    cleaner.reset()
    out = cleaner.feed("| a |") + cleaner.flush() + cleaner.feed(" b |\n") + cleaner.flush()
    assert out == "a, b\n"


def test_flush_after_line_break_keeps_line_start() -> None:
    cleaner = SpeakableFilter()
    out = cleaner.feed("Intro\n") + cleaner.flush() + cleaner.feed("- item") + cleaner.flush()
    assert out == "Intro\nitem"


def test_type_error_for_non_str() -> None:
    with pytest.raises(TypeError, match="NoneType"):
        SpeakableFilter().feed(None)  # type: ignore[arg-type]


def test_unspoken_character_classes_are_dropped() -> None:
    """Every control, format, surrogate and private-use code point is dropped or is whitespace."""
    dropped = 0
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        if char == "\x1b":  # ESC b is a whole two-character escape sequence (ECMA-48 Fs)
            assert speakable("a\x1bb") == "a"
            dropped += 1
        elif unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co"):
            assert speakable(f"a{char}b") in ("ab", "a b", "a\nb"), hex(code)
            dropped += 1
    assert dropped > 100_000  # the private-use planes are in the count


def test_lone_surrogates_and_only_markup() -> None:
    assert speakable("a\ud800b\udfffc") == "abc"
    assert speakable("**__~~``") == ""
    assert speakable(" \n\t \u3000") == ""


MARKDOWN_TOKENS = [
    "http",
    "https://",
    "www.",
    "x.com",
    "/p?q=1",
    "**",
    "*",
    "_",
    "__",
    "~~",
    "~",
    "`",
    "```",
    "\n",
    " ",
    ". ",
    ",",
    "3.14",
    "Dr.",
    "中文",
    "。",
    "，",
    "|",
    "---",
    "# ",
    "1. ",
    "- ",
    "> ",
    "[a](b)",
    "[",
    "]",
    "(",
    ")",
    "!",
    "<b>",
    "<",
    ">",
    "😀",
    "\u200b",
    "\ud800",
    "…",
    "\\",
    "word",
    "snake_case",
    "@",
    "\t",
    "\r\n",
    "=",
    "\x1b",
    "\x1b[",
    "31m",
    "\x1b[0m",
    "\x1b]0;",
    "\x1b]8;;",
    "\x07",
    "\x1b\\",
    "\x9c",
    "\x00",
    "\x01",
    "<!--",
    "-->",
    "<a href=",
    '"x>y"',
    "</p>",
    "<br/>",
    "a<b and c>d",
    "i<3",
]
texts = st.lists(st.one_of(st.sampled_from(MARKDOWN_TOKENS), st.text(max_size=4)), max_size=40)


@settings(max_examples=300, deadline=None)
@given(texts, st.data())
def test_output_does_not_depend_on_the_split(tokens: list[str], data: st.DataObject) -> None:
    text = "".join(tokens)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=12)))
    whole = SpeakableFilter()
    expected = whole.feed(text) + whole.flush()
    split = SpeakableFilter()
    pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    assert "".join(split.feed(p) for p in pieces) + split.flush() == expected
    assert "  " not in expected and "\n\n" not in expected and not expected[:1].isspace()
    assert whole.pending == ""


CONTROLS = [c for c in map(chr, range(0xA0)) if unicodedata.category(c) == "Cc" and c != "\x1b"]


@pytest.mark.parametrize("control", CONTROLS)
def test_every_control_character_separates_words(control: str) -> None:
    """NUL and every other C0/C1 control (ESC starts a sequence: tested above) keeps the words
    on either side apart."""
    spoken = speakable(f"before{control}é{control}after")
    assert spoken.split() == ["before", "é", "after"], repr(control)


def test_escape_sequences_split_at_every_character() -> None:
    raw = "x\x1b[38;2;255;0;0mred\x1b[0m \x1b]8;id=1;https://a.b/c\x1b\\link\x1b]8;;\x07 y"
    for cut in range(len(raw) + 1):
        cleaner = SpeakableFilter()
        assert cleaner.feed(raw[:cut]) + cleaner.feed(raw[cut:]) + cleaner.flush() == (
            "xred link y"
        ), cut


def test_open_escape_sequence_is_held_through_flush_and_never_spoken() -> None:
    cleaner = SpeakableFilter()
    assert cleaner.feed("word \x1b[3") == "word "
    assert cleaner.pending == ""
    assert cleaner.flush() == ""
    assert cleaner.feed("1mred") == "red"


def test_escape_sequences_are_bounded() -> None:
    """A CSI that never ends, or a control string without a terminator, loses no text."""
    assert speakable("a \x1b[" + "1" * 100 + "m b") == "a " + "1" * 100 + "m b"
    title = "words " * 1000
    assert speakable("\x1b]0;" + title) == ("0;" + title).strip()
    assert speakable("\x1b]0;" + title[:100] + "\x07after") == "after"
