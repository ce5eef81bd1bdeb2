"""The fragmenter: where it cuts, what it never cuts, sizes, flush/reset, hostile input."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicebridge.errors import ConfigurationError
from voicebridge.text import fragmenter as fragmenter_module
from voicebridge.text.billing import count_characters
from voicebridge.text.fragmenter import Fragment, Fragmenter
from voicebridge.text.segmenter import cluster_boundary
from voicebridge.text.speakable import SpeakableFilter, speakable

from .feeding import cut_offsets, feed_with_pauses

BOUNDARIES = {"sentence", "clause", "line", "phrase", "length", "flush"}


def run(tokens: Iterable[str], fragmenter: Fragmenter | None = None) -> list[Fragment]:
    """Feed every token, flush, and check the invariants every fragment list must hold."""
    fragmenter = fragmenter or Fragmenter()
    fragments: list[Fragment] = []
    for token in tokens:
        fragments += fragmenter.feed(token)
    fragments += fragmenter.flush()
    for fragment in fragments:
        assert fragment.text.strip(), fragments
        assert fragment.characters == count_characters(fragment.text)
        assert fragment.boundary in BOUNDARIES
    assert fragmenter.pending == ""
    return fragments


def texts(fragments: list[Fragment]) -> list[str]:
    return [fragment.text for fragment in fragments]


def release_index(tokens: list[str], fragmenter: Fragmenter) -> int:
    """Index of the token whose feed() released the first fragment."""
    for index, token in enumerate(tokens):
        if fragmenter.feed(token):
            return index
    raise AssertionError("no fragment released before flush")


def test_first_fragment_at_first_clause_holding_min_words() -> None:
    text = "Sure, I can help you with that, of course. It is easy."
    fragmenter = Fragmenter()
    index = release_index(list(text), fragmenter)
    assert text[: index + 1] == "Sure, I can help you with that, "  # released on the space
    assert texts(run(list(text))) == [
        "Sure, I can help you with that, ",
        "of course. It is easy.",  # two words are too few for a fragment of their own
    ]


def test_sentences_with_closing_quotes_and_marks() -> None:
    text = 'He said "go home." Then he left! Did she? "Yes," she said (quietly). End'
    assert texts(run([text], Fragmenter(min_words=1))) == [
        'He said "go home." ',
        'Then he left! Did she? "Yes," she said (quietly). ',
        "End",
    ]


def test_no_break_inside_abbreviations_numbers_urls_and_ellipses() -> None:
    text = (
        "Dr. Smith met Mr. Jones at 9:30 a.m. in the U.S.A. and J. R. R. Tolkien, e.g. on "
        "v1.2.3 with 3.14 or 1,000 items... really... at https://www.example.com/a.b?c=d or "
        "me@mail.example.com today. Next"
    )
    fragments = run([text], Fragmenter(min_words=1, first_max_characters=300))
    assert texts(fragments)[0] == (
        "Dr. Smith met Mr. Jones at 9:30 a.m. in the U.S.A. and J. R. R. Tolkien, "
    )
    assert texts(fragments)[1] == (
        "e.g. on v1.2.3 with 3.14 or 1,000 items... really... at example.com or "
        "me@mail.example.com today. "
    )


def test_inline_list_numbers_are_not_sentence_ends() -> None:
    text = "Do these steps: 1. Open the app now. 2. Click it. The answer is 42. Bye now."
    assert texts(run([text], Fragmenter(min_words=1))) == [
        "Do these steps: ",
        "1. Open the app now. 2. Click it. The answer is 42. ",
        "Bye now.",
    ]


def test_ellipsis_before_a_capital_ends_the_sentence() -> None:
    assert texts(run(["Well... I am not sure about that... Maybe later."])) == [
        "Well... I am not sure about that... ",
        "Maybe later.",
    ]


@pytest.mark.parametrize(
    ("held", "decider", "released"),
    [
        ("It costs 3.", "1", None),  # 3.1 is a number: no cut
        ("It costs 3.", " ", "It costs 3. "),
        ("Wait what is this?", " ", "Wait what is this? "),
        ("Wait what is this,", " ", "Wait what is this, "),
        ("那是我们的第一个问题。", "我", "那是我们的第一个问题。"),
        ("这是我们的问题。", "”", None),  # the closing quote belongs to the sentence
        ("Those are all the words in it…", " ", None),  # next word decides
    ],
)
def test_a_mark_at_the_end_waits_for_exactly_one_character(
    held: str, decider: str, released: str | None
) -> None:
    fragmenter = Fragmenter(min_words=1)
    assert fragmenter.feed(held) == []
    assert fragmenter.pending == held
    fragments = fragmenter.feed(decider)
    assert (fragments[0].text if fragments else None) == released


def test_chinese_commas_release_the_first_fragment() -> None:
    text = "床前明月光，疑是地上霜，举头望明月，低头思故乡"  # no sentence end at all
    fragmenter = Fragmenter()
    index = release_index(list(text), fragmenter)
    assert text[: index + 1] == "床前明月光，疑是地上霜，"
    assert texts(run(list(text))) == ["床前明月光，疑是地上霜，", "举头望明月，低头思故乡"]


def test_chinese_sentences_are_not_merged_when_fed_one_by_one() -> None:
    text = "今天天气很好。我们去公园散步吧！你觉得怎么样？好的。"
    assert texts(run(list(text))) == [
        "今天天气很好。",
        "我们去公园散步吧！",
        "你觉得怎么样？",
        "好的。",
    ]


def test_traditional_chinese_and_japanese() -> None:
    assert texts(run(list("這是繁體中文，我們一起學習吧。很好！"))) == [
        "這是繁體中文，",
        "我們一起學習吧。",
        "很好！",
    ]
    assert texts(run(list("こんにちは、今日はいい天気ですね。明日も晴れるといいですね！"))) == [
        "こんにちは、今日はいい天気ですね。",
        "明日も晴れるといいですね！",
    ]


def test_mixed_chinese_and_english() -> None:
    text = "我们用Python写一个程序，然后run tests。Then we deploy it, OK? 好的！"
    assert texts(run(list(text))) == [
        "我们用Python写一个程序，",
        "然后run tests。",
        "Then we deploy it, OK? ",
        "好的！",
    ]


def test_arabic_and_hebrew() -> None:
    assert texts(run(list("مرحبا بالعالم كله، كيف حالك اليوم؟ أنا بخير."))) == [
        "مرحبا بالعالم كله، ",
        "كيف حالك اليوم؟ ",
        "أنا بخير.",
    ]
    assert texts(run(list("שלום לכולם כאן, מה שלומכם? טוב."))) == [
        "שלום לכולם כאן, ",
        "מה שלומכם? טוב.",
    ]


def test_markdown_lines_and_list_items() -> None:
    text = "## Steps to follow\n1. **Install** the package now\n2. Run the `tool` twice\n\nDone!"
    assert texts(run(list(text))) == [
        "Steps to follow\n",
        "Install the package now\n",
        "Run the tool twice\n",
        "Done!",
    ]


@pytest.mark.parametrize(
    ("text", "first"),
    [
        ("word " * 40, "word " * 12),  # 60 billed characters, cut after a space
        ("x" * 200, "x" * 60),  # no space at all: cut at the limit
        ("中" * 100, "中" * 30),  # 30 ideographs = 60 billed
        ("ｶﾀｶﾅ" * 50, "ｶﾀｶﾅ" * 15),  # half-width kana count 1
    ],
)
def test_first_fragment_forced_by_length(text: str, first: str) -> None:
    fragments = run(list(text))
    assert fragments[0].text == first
    assert fragments[0].boundary == "length"
    assert fragments[0].characters <= 60


def test_later_fragments_take_every_complete_sentence() -> None:
    paragraph = "Hello there, my friend. This is one. This is two. This is three. And four"
    assert texts(run([paragraph])) == [
        "Hello there, my friend. ",
        "This is one. This is two. This is three. ",
        "And four",
    ]


def test_later_fragments_grow_up_to_the_target() -> None:
    sentences = [f"This is sentence number {i}, and it goes on for a while. " for i in range(12)]
    fragments = run(["".join(sentences)])
    assert fragments[0].text == "This is sentence number 0, "
    assert all(f.characters <= 120 for f in fragments[1:])
    two_sentences = [f for f in fragments if f.text.count(". ") == 2]
    assert len(two_sentences) >= 4  # 2 x 55 characters fit in 120, 3 do not


def test_later_fragments_merge_short_sentences() -> None:
    text = "Here is my answer to you. Yes. No. Maybe so, I think. Fine."
    assert texts(run(list(text))) == [
        "Here is my answer to you. ",
        "Yes. No. Maybe so, I think. ",
        "Fine.",
    ]


def test_long_sentence_is_cut_at_a_clause() -> None:
    text = ("one two three four five, " * 8) + "end."
    fragmenter = Fragmenter(
        first_max_characters=30, target_characters=40, sentence_max_characters=60
    )
    fragments = run(list(text), fragmenter)
    assert all(f.characters <= 60 for f in fragments)
    assert [f.boundary for f in fragments[1:-1]] == ["clause"] * (len(fragments) - 2)
    assert fragments[1].text == "one two three four five, " * 2


def test_never_over_max_characters_even_on_flush() -> None:
    fragmenter = Fragmenter(
        first_max_characters=50, target_characters=50, sentence_max_characters=50, max_characters=50
    )
    text = "前言。" + "中文English混合没有标点" * 100
    fragments = run([text[:7], text[7:], "x" * 75], fragmenter)
    assert max(f.characters for f in fragments) <= 50
    assert "".join(texts(fragments)).rstrip() == speakable(text + "x" * 75)


def test_total_characters_and_reset() -> None:
    fragmenter = Fragmenter()
    fragments = run(["中文，English words here. More text"], fragmenter)
    assert fragmenter.total_characters == sum(f.characters for f in fragments) == 34
    fragmenter.feed("held back")
    fragmenter.reset()
    assert fragmenter.total_characters == 0
    assert fragmenter.pending == ""
    assert texts(run(["Fresh start here."], fragmenter)) == ["Fresh start here."]


def test_flush_mid_sentence_then_continue() -> None:
    fragmenter = Fragmenter()
    assert fragmenter.feed("Hello wor") == []
    assert fragmenter.pending == "Hello wor"
    assert texts(fragmenter.flush()) == ["Hello wor"]
    assert fragmenter.pending == ""
    assert texts(fragmenter.feed("ld, and then some more words. ")) == [
        "ld, and then some more words. "
    ]


def test_flush_keeps_trailing_space_for_the_next_fragment() -> None:
    fragmenter = Fragmenter()
    fragmenter.feed("Hello")
    assert texts(fragmenter.flush()) == ["Hello"]
    fragmenter.feed(" ")
    assert texts(fragmenter.flush()) == []
    assert texts(fragmenter.feed("world, this is me. ")) == [" world, this is me. "]


# -- flush(whole_words=True) -------------------------------------------------------------------


def test_whole_words_flush_keeps_the_partial_word() -> None:
    """The pause in "wait|s": the flushed text ends after "answer", not inside "waits"."""
    fragmenter = Fragmenter()
    assert fragmenter.feed("The model wait") == []
    released = fragmenter.flush(whole_words=True)
    assert [(f.text, f.boundary) for f in released] == [("The model ", "flush")]
    assert fragmenter.pending == "wait"
    assert texts(fragmenter.feed("s for a good place to stop. ")) == [
        "waits for a good place to stop. "
    ]


@pytest.mark.parametrize(
    ("held", "released", "kept"),
    [
        ("one two three ", "one two three ", ""),  # ends with a space: all of it
        ("single", None, "single"),  # one partial word: nothing
        ("今天天气很好", "今天天气很好", ""),  # CJK: a cut point after every character
        ("我们用Pyth", "我们用", "Pyth"),  # a Latin word after CJK is still partial
        ("It is 3.", "It is ", "3."),  # "3." may become 3.14
        ("Some **bold", "Some ", "bold"),  # markup is decided; the word is not
        ("Visit https://www.exa", "Visit ", ""),  # the URL host is held by the cleaner
    ],
)
def test_whole_words_flush_cases(held: str, released: str | None, kept: str) -> None:
    fragmenter = Fragmenter()
    assert fragmenter.feed(held) == []
    out = fragmenter.flush(whole_words=True)
    assert (out[0].text if out else None) == released
    assert fragmenter.pending.endswith(kept)
    rest = texts(fragmenter.flush())
    assert "".join(texts(out) + rest).rstrip() == speakable(held)


def test_plain_flush_after_whole_words_flush_releases_the_rest() -> None:
    fragmenter = Fragmenter()
    fragmenter.feed("Checking the weath")
    assert texts(fragmenter.flush(whole_words=True)) == ["Checking the "]
    assert texts(fragmenter.flush()) == ["weath"]  # the pause outlasted the rollover
    assert fragmenter.pending == ""


def test_next_fragment_after_whole_words_flush_counts_as_a_first() -> None:
    fragmenter = Fragmenter()
    run(["Here is the first part. And here is the long second "], fragmenter)
    fragmenter.feed("Meanwhile I am check")
    assert texts(fragmenter.flush(whole_words=True)) == [" Meanwhile I am "]
    assert texts(fragmenter.feed("ing the weather, it is sunny")) == ["checking the weather, "]


# -- run-on text ---------------------------------------------------------------------------------

RUN_ON = (
    "so what I was thinking is that we could go to the beach tomorrow and then maybe have lunch "
    "at that little place near the pier that you liked so much last summer and after that we "
    "could walk along the cliffs until the sun goes down and then drive back home before it gets "
    "too dark to see the road and we would still be in bed at a reasonable hour for once"
)


def test_run_on_text_streams_cut_at_word_boundaries() -> None:
    fragments = run(list(RUN_ON))
    assert [f.boundary for f in fragments[:-1]] == ["length"] * (len(fragments) - 1)
    assert fragments[0].characters <= 60
    assert all(f.characters <= 120 for f in fragments)
    assert len(fragments) >= 3
    assert all(f.text.endswith(" ") for f in fragments[:-1])  # never inside a word
    assert "".join(texts(fragments)) == RUN_ON


def test_run_on_text_is_released_as_it_arrives() -> None:
    """The first cut comes once 60 characters are held, the next ones every 120 at most."""
    fragmenter = Fragmenter()
    held_max = 0
    for char in RUN_ON:
        fragmenter.feed(char)
        held_max = max(held_max, len(fragmenter.pending))
    assert held_max <= 121


def test_run_on_after_a_boundary_releases_the_text_before_it_first() -> None:
    text = "Right. Well, " + RUN_ON
    fragments = run([text], Fragmenter(min_words=1))
    assert texts(fragments)[:2] == ["Right. ", "Well, "]
    assert fragments[2].boundary == "length"
    assert fragments[2].characters <= 120


def test_punctuated_long_sentence_is_not_cut_as_run_on() -> None:
    """Clause marks every 40 characters: the run-on rule never fires, the sentence waits."""
    sentence = "this clause has some words in it, " * 7 + "end. "
    fragments = run(["Start here now. ", sentence])
    assert fragments[1].text == sentence
    assert fragments[1].boundary == "sentence"


def test_run_on_max_characters_is_a_setting() -> None:
    fragments = run([RUN_ON], Fragmenter(run_on_max_characters=40))
    assert all(f.characters <= 40 for f in fragments[1:])
    with pytest.raises(ConfigurationError):
        Fragmenter(run_on_max_characters=5)


# -- markdown state across flushes ---------------------------------------------------------------


def test_flush_inside_code_fence_and_bold_keeps_markdown_state() -> None:
    fragmenter = Fragmenter()
    out = fragmenter.feed("Look at this code:\n```py\nsecret") + fragmenter.flush()
    out += fragmenter.feed(" = 1\n```\nThat was **bo") + fragmenter.flush()
    out += fragmenter.feed("ld** text.") + fragmenter.flush()
    assert "".join(texts(out)) == "Look at this code:\nThat was bold text."


def test_pending_is_empty_after_flush_even_with_markup_held() -> None:
    fragmenter = Fragmenter()
    fragmenter.feed("Some **")
    assert fragmenter.pending == "Some **"
    assert texts(fragmenter.flush()) == ["Some"]
    assert fragmenter.pending == ""


@pytest.mark.parametrize("item", [None, b"bytes", 3, ["list"]])
def test_non_text_items_raise_type_error(item: object) -> None:
    with pytest.raises(TypeError, match="takes str"):
        Fragmenter().feed(item)  # type: ignore[arg-type]


def test_bad_thresholds() -> None:
    with pytest.raises(ConfigurationError):
        Fragmenter(first_max_characters=500, sentence_max_characters=300)
    with pytest.raises(ConfigurationError):
        Fragmenter(target_characters=400)
    with pytest.raises(ConfigurationError):
        Fragmenter(min_words=0)
    with pytest.raises(ConfigurationError):
        Fragmenter(max_characters=5, first_max_characters=5, sentence_max_characters=5)


# -- hostile input ------------------------------------------------------------------------------


def test_one_megabyte_token() -> None:
    token = ("lorem ipsum dolor sit amet, consectetur " * 30_000)[:1_000_000]
    fragments = run([token])
    assert len(fragments) > 1000
    assert max(f.characters for f in fragments) <= 300
    assert "".join(texts(fragments)).rstrip() == speakable(token)


def test_one_megabyte_without_spaces() -> None:
    fragments = run(["中" * 500_000, "a" * 500_000], Fragmenter(max_characters=2000))
    assert max(f.characters for f in fragments) <= 300
    assert sum(f.characters for f in fragments) == 1_500_000


@pytest.mark.parametrize(
    "text",
    [
        "!!!???...,,,;;;:::———。。。！！！，，，" * 20,
        " \n\t \u3000\xa0 " * 50,
        "\ud800\udfff\ud83d" * 20 + "ok",
        "\u200b\u200c\u200d\u2060\ufeff" * 30,
        "\u202e\u202dمرحبا\u200f עולם\u200e" * 10,
        "😀🎉👍🏽🇨🇳" * 40,
        "* * *\n- - -\n|---|\n```",
    ],
)
def test_hostile_text(text: str) -> None:
    one_by_one = run(list(text))
    whole = run([text])
    assert "".join(texts(one_by_one)).rstrip(" \n") == speakable(text)
    assert "".join(texts(whole)).rstrip(" \n") == speakable(text)


@pytest.mark.parametrize(
    "run_text",
    [
        "x" * 200_000,
        ("สวัสดีครับวันนี้อากาศดีมากเราจะไปเที่ยวทะเลกันไหม" * 5000)[:200_000],
        "क्षत्रिय" * 25_000,
    ],
    ids=["latin", "thai", "devanagari"],
)
def test_two_hundred_thousand_characters_without_a_space(run_text: str) -> None:
    fragments = run([run_text[:100_000], run_text[100_000:]])
    assert max(f.characters for f in fragments) <= 120
    assert "".join(texts(fragments)) == run_text
    assert all(cluster_boundary(run_text, end) for end in cut_offsets(fragments))


def test_nul_and_half_escape_sequences() -> None:
    tokens = ["before\x00after and \x1b[3", "1mred\x1b[0m then \x1b]0;ti", "tle\x07 end \x1b["]
    assert "".join(texts(run(tokens))) == "before after and red then end"


def test_whitespace_only_gives_nothing() -> None:
    assert run([" ", "\n", "\t", "   "]) == []


def test_work_per_character_is_constant(monkeypatch: pytest.MonkeyPatch) -> None:
    """One-character tokens of a decimals-heavy text: marks are decided a bounded number of times
    and the held text stays bounded, however long the input."""
    calls = 0
    decide: Callable[..., object] = fragmenter_module._decide

    def counting(*args: object) -> object:
        nonlocal calls
        calls += 1
        return decide(*args)

    monkeypatch.setattr(fragmenter_module, "_decide", counting)
    text = "Values 3.14, 2.71, 1.41, 1.73 and 0.57 in v1.2.3... " * 200
    fragmenter = Fragmenter()
    longest = 0
    for char in text:
        fragmenter.feed(char)
        longest = max(longest, len(fragmenter.pending))
    marks = sum(text.count(mark) for mark in ".,")
    assert calls <= 3 * marks
    assert longest <= 310


# -- properties -------------------------------------------------------------------------------

TOKENS = [
    "Hello",
    " world",
    ",",
    ".",
    " ",
    "\n",
    "3.14",
    "Dr.",
    "e.g.",
    "中文",
    "。",
    "，",
    "、",
    "！",
    "”",
    "…",
    "...",
    "—",
    "**",
    "`",
    "```",
    "# ",
    "- ",
    "1. ",
    "|",
    "https://x.com/a",
    " a",
    " B",
    "?",
    "!",
    ":",
    ";",
    "9:30",
    "😀",
    "\u200b",
    "\ud800",
    "かな",
    "\t",
    " wait",
    "s",
    "สวัสดี",
    "ครับ ",
    "ไป",
    "ကောင်း",
    "။",
    "ក្ញុំ",
    "\x00",
    "\x1b[31m",
    "\x1b",
    "a<b and c>d",
]
token_lists = st.lists(st.one_of(st.sampled_from(TOKENS), st.text(max_size=3)), max_size=60)


@settings(max_examples=200, deadline=None)
@given(token_lists, st.sampled_from([(10, 10, 10), (20, 40, 60), (80, 300, 2000)]))
def test_fragments_give_back_the_speakable_text(
    tokens: list[str], limits: tuple[int, int, int]
) -> None:
    first, sentence, maximum = limits
    fragmenter = Fragmenter(
        first_max_characters=first,
        target_characters=first,
        sentence_max_characters=sentence,
        max_characters=maximum,
    )
    fragments = run(tokens, fragmenter)
    assert "".join(texts(fragments)).rstrip(" \n") == speakable("".join(tokens))
    assert all(f.characters <= maximum for f in fragments)
    assert fragmenter.total_characters == sum(f.characters for f in fragments)


FLUSHES = st.lists(st.sampled_from([None, None, "all", "words"]), max_size=60)


@settings(max_examples=200, deadline=None)
@given(token_lists, FLUSHES)
def test_flushes_anywhere_lose_and_repeat_nothing(
    tokens: list[str], flushes: list[str | None]
) -> None:
    fragmenter = Fragmenter(
        first_max_characters=20,
        target_characters=20,
        sentence_max_characters=40,
        run_on_max_characters=30,
    )
    cleaner = SpeakableFilter()
    fragments: list[Fragment] = []
    expected = ""
    for token, flush in itertools.zip_longest(tokens, flushes[: len(tokens)]):
        fragments += fragmenter.feed(token)
        expected += cleaner.feed(token)
        if flush == "all":
            fragments += fragmenter.flush()
            expected += cleaner.flush()
        elif flush == "words":
            fragments += fragmenter.flush(whole_words=True)
    fragments += fragmenter.flush()
    expected += cleaner.flush()
    assert "".join(texts(fragments)).rstrip(" \n") == expected.rstrip(" \n")


WORDS = ["wait", "waits", "for", "a", "good", "place", "x" * 12, "ok", "the"]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from(WORDS), min_size=1, max_size=80),
    st.lists(st.integers(1, 7), min_size=1, max_size=80),
    st.lists(st.booleans(), max_size=80),
)
def test_no_cut_inside_a_word_but_by_plain_flush(
    words: list[str], steps: list[int], pauses: list[bool]
) -> None:
    """Unpunctuated words, split anywhere, with whole-word flushes anywhere: every cut falls
    between two words (length cuts and whole-word flushes alike)."""
    text = " ".join(words)
    fragmenter = Fragmenter(first_max_characters=20, target_characters=20, run_on_max_characters=30)
    fragments = feed_with_pauses(fragmenter, text, steps, pauses)
    assert "".join(texts(fragments)) == text
    for end in cut_offsets(fragments):
        assert text[end - 1] == " " or text[end] == " ", (text[:end], fragments)
