"""Scripts without spaces: ICU's segmenter (the real one), the syllable fallback, grapheme safety,
and what the fragmenter does with them."""

from __future__ import annotations

import itertools
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicebridge.text.fragmenter import Fragment, Fragmenter
from voicebridge.text.segmenter import (
    IcuSegmenter,
    Segmenter,
    SyllableSegmenter,
    cluster_boundary,
    default_segmenter,
)
from voicebridge.text.speakable import speakable

from .feeding import cut_offsets, feed_with_pauses

THAI = (
    "วันนี้อากาศดีมากเราจะไปเที่ยวทะเลกันไหมครับผมคิดว่าน่าจะสนุกมากเพราะว่าทะเลที่นั่นสวยงาม"
    "และน้ำใสมากเราสามารถว่ายน้ำและดำน้ำดูปะการังได้ด้วยหลังจากนั้นเราจะไปกินอาหารทะเลที่ร้าน"
)
LAO = "ສະບາຍດີທຸກຄົນມື້ນີ້ອາກາດດີຫຼາຍພວກເຮົາຈະໄປທ່ຽວທະເລສາບກັນບໍ່ພວກເຮົາຈະໄປກິນເຂົ້າຢູ່ຮ້ານອາຫານ"
KHMER = "សួស្តីអ្នកទាំងអស់គ្នាថ្ងៃនេះអាកាសធាតុល្អណាស់យើងនឹងទៅលេងសមុទ្រជាមួយគ្នាខ្ញុំគិតថាវានឹងសប្បាយណាស់"
MYANMAR = "မင်္ဂလာပါခင်ဗျာဒီနေ့ရာသီဥတုကောင်းပါတယ်ကျွန်တော်တို့ကမ်းခြေကိုသွားကြမယ်ပြီးရင်ထမင်းစားကြမယ်"
RUNS = {"thai": THAI, "lao": LAO, "khmer": KHMER, "myanmar": MYANMAR}


def icu() -> IcuSegmenter:
    return IcuSegmenter()


def test_icu_is_the_default_where_its_wheels_exist() -> None:
    """CI installs icu4py (Python >= 3.11): the real segmenter is what the tests exercise."""
    expected = IcuSegmenter if sys.version_info >= (3, 11) else SyllableSegmenter
    assert isinstance(default_segmenter(), expected)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("สวัสดีครับ", ["สวัสดี", "ครับ"]),
        ("ไปเที่ยวทะเล", ["ไป", "เที่ยว", "ทะเล"]),
        ("ສະບາຍດີທຸກຄົນ", ["ສະບາຍດີ", "ທຸກຄົນ"]),
        ("អាកាសធាតុល្អណាស់", ["អាកាសធាតុ", "ល្អ", "ណាស់"]),
        ("ရာသီဥတုကောင်းပါတယ်", ["ရာသီဥတု", "ကောင်း", "ပါ", "တယ်"]),
    ],
)
def test_icu_finds_dictionary_words(text: str, words: list[str]) -> None:
    segmenter = icu()
    breaks = segmenter.breaks(text)
    pieces = [text[a:b] for a, b in itertools.pairwise([0, *breaks, len(text)])]
    assert pieces == words
    assert segmenter.count_words(text) == len(words)


def test_icu_offsets_are_python_offsets_past_the_basic_plane() -> None:
    text = "𠀀ไปเที่ยว"  # ICU counts the first character twice (UTF-16)
    assert icu().breaks(text)[-1] == text.index("เที่ยว")


@pytest.mark.parametrize("segmenter", [icu(), SyllableSegmenter()], ids=["icu", "syllables"])
@pytest.mark.parametrize("script", RUNS)
def test_breaks_are_cluster_boundaries(segmenter: Segmenter, script: str) -> None:
    text = RUNS[script]
    breaks = segmenter.breaks(text)
    assert breaks == sorted(set(breaks))
    assert all(0 < b < len(text) and cluster_boundary(text, b) for b in breaks)
    assert len(breaks) >= len(text) // 12  # real cut points, often enough for the limits
    assert segmenter.count_words(text) >= len(text) // 12


@pytest.mark.parametrize(
    ("text", "cut"),
    [
        ("เที่ยว", 1),  # after a preposed vowel
        ("เที่ยว", 3),  # before a tone mark
        ("ทำ", 1),  # before sara am (a letter that extends the cluster)
        ("क्ष", 2),  # after a virama, before the conjunct's consonant
        ("e\u0301", 1),  # before a combining accent
        ("\u1100\u1161\u11a8", 1),  # Hangul jamo L V
        ("\u1100\u1161\u11a8", 2),  # Hangul jamo V T
        ("\uac00\u11a8", 1),  # Hangul LV syllable + T
        ("ស្ត", 2),  # after the Khmer coeng
    ],
)
def test_cluster_boundary_refuses(text: str, cut: int) -> None:
    assert not cluster_boundary(text, cut)


@pytest.mark.parametrize(
    ("text", "cut"),
    [("ab", 1), ("ไปเ", 2), ("กข", 1), ("\uac00\uac00", 1), ("中文", 1), ("ယ်က", 2), ("க்க", 2)],
)
def test_cluster_boundary_allows(text: str, cut: int) -> None:
    assert cluster_boundary(text, cut)


def test_syllable_fallback_cuts_at_syllable_marks() -> None:
    fallback = SyllableSegmenter()
    assert fallback.breaks("ไปเที่ยว") == [2]  # before the preposed vowel
    assert fallback.breaks("กะทิ") == [2]  # after sara a
    assert fallback.breaks("ကောင်းပါ") == [6]  # Myanmar: before a consonant that starts one
    assert fallback.breaks("abcไทย") == [3]  # a script change
    assert fallback.breaks("អាកាសធាតុ") == [2, 5, 7]  # Khmer: อา|กาส|ธา|ตุ


# -- the fragmenter on spaceless scripts ---------------------------------------------------------


def run(tokens: list[str], fragmenter: Fragmenter) -> list[Fragment]:
    fragments: list[Fragment] = []
    for token in tokens:
        fragments += fragmenter.feed(token)
    return fragments + fragmenter.flush()


@pytest.mark.parametrize("script", RUNS)
def test_length_cuts_fall_on_icu_word_breaks(script: str) -> None:
    text = RUNS[script] * 3
    fragments = run(list(text), Fragmenter())
    assert "".join(f.text for f in fragments) == text
    assert fragments[0].characters <= 60
    assert all(f.characters <= 120 for f in fragments)
    assert {f.boundary for f in fragments[:-1]} == {"length"}
    words = set(icu().breaks(text))
    assert set(cut_offsets(fragments)) <= words


@pytest.mark.parametrize("script", RUNS)
def test_without_icu_cuts_fall_on_syllable_breaks(script: str) -> None:
    text = RUNS[script] * 3
    fallback = SyllableSegmenter()
    fragments = run(list(text), Fragmenter(segmenter=fallback))
    assert "".join(f.text for f in fragments) == text
    assert all(f.characters <= 120 for f in fragments)
    assert set(cut_offsets(fragments)) <= set(fallback.breaks(text))


def test_thai_spaces_are_phrase_boundaries_and_min_words_counts_thai_words() -> None:
    text = "สวัสดีครับ วันนี้อากาศดีมาก เราจะไปเที่ยวทะเลกัน ดีไหม"
    fragmenter = Fragmenter()
    released_at, first = next(
        (i, out) for i, char in enumerate(text) if (out := fragmenter.feed(char))
    )
    # "สวัสดีครับ" is two words (fewer than min_words=3): the first cut waits for the next space,
    # and is decided by the letter after it.
    assert [(f.text, f.boundary) for f in first] == [("สวัสดีครับ วันนี้อากาศดีมาก ", "phrase")]
    assert text[: released_at + 1] == "สวัสดีครับ วันนี้อากาศดีมาก เ"
    fragments = run([text[released_at + 1 :]], fragmenter)
    assert [(f.text, f.boundary) for f in fragments] == [
        ("เราจะไปเที่ยวทะเลกัน ", "phrase"),
        ("ดีไหม", "flush"),
    ]


def test_later_thai_fragments_gather_phrases_up_to_the_target() -> None:
    phrase = "เราจะไปเที่ยวทะเลกัน "  # 21 characters
    fragments = run(["สวัสดีครับ วันนี้อากาศดีมาก ", phrase * 20], Fragmenter())
    assert fragments[1].text == phrase * 5  # 105 characters: a sixth would pass 120
    assert fragments[1].boundary == "phrase"


def test_myanmar_and_khmer_punctuation() -> None:
    text = "မင်္ဂလာပါခင်ဗျာ၊ ဒီနေ့ရာသီဥတုကောင်းပါတယ်။ អាកាសធាតុល្អណាស់។ ល្អ"
    fragments = run([text], Fragmenter(min_words=1))
    assert [(f.text, f.boundary) for f in fragments] == [
        ("မင်္ဂလာပါခင်ဗျာ၊ ", "clause"),
        ("ဒီနေ့ရာသီဥတုကောင်းပါတယ်။ អាកាសធាតុល្អណាស់។ ", "sentence"),
        ("ល្អ", "flush"),
    ]


@pytest.mark.parametrize("segmenter", [icu(), SyllableSegmenter()], ids=["icu", "syllables"])
def test_whole_words_flush_holds_the_last_thai_word(segmenter: Segmenter) -> None:
    text = "ผมคิดว่าน่าจะสนุกมากเพราะว่าทะเลที่นั่นสวยงามและว่ายน้"
    fragmenter = Fragmenter(segmenter=segmenter)
    assert fragmenter.feed(text) == []
    released = "".join(f.text for f in fragmenter.flush(whole_words=True))
    assert released
    # The last word may go on ("ว่ายน้" becomes "ว่ายน้ำ"), and the last breaks are not settled:
    # at least 12 characters wait.
    assert len(fragmenter.pending) >= 12
    assert released + fragmenter.pending == text
    assert cluster_boundary(text, len(released))


thai_tokens = st.lists(
    st.sampled_from(["เที่ยว", "ทะเล", "ไป", "น้ำ", "ใส", " ", "กิน", "ข้าว", "ๆ", "abc", "中文"]),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(thai_tokens, st.lists(st.integers(1, 5), min_size=1), st.lists(st.booleans()))
def test_spaceless_text_split_anywhere_loses_nothing_and_keeps_clusters(
    tokens: list[str], steps: list[int], pauses: list[bool]
) -> None:
    text = "".join(tokens)
    fragmenter = Fragmenter(first_max_characters=10, target_characters=10, run_on_max_characters=15)
    fragments = feed_with_pauses(fragmenter, text, steps, pauses)
    spoken = "".join(f.text for f in fragments)
    assert spoken.rstrip() == speakable(text)
    assert all(cluster_boundary(spoken, end) for end in cut_offsets(fragments))
