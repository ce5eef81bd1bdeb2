"""Word timestamps without sockets: the word rule, offset maps, anchors, time origins."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from voicebridge.protocol import (
    ContinueTask,
    FinishTask,
    ResultGenerated,
    RunTask,
    SynthesisParameters,
    TaskFinished,
    encode_client_message,
)
from voicebridge.server.service import (
    ServerAction,
    ServerProtocol,
    Synthesize,
)
from voicebridge.server.speech_text import filter_markdown, prepare_speech, replace_words
from voicebridge.server.words import (
    Anchor,
    SentenceAudio,
    WordReporting,
    sentence_words,
    word_spans,
)

TASK = "0" * 32


def spans_text(text: str) -> list[str]:
    return [text[a:b] for a, b in word_spans(text)]


def test_the_word_rule() -> None:
    assert spans_text("Don't stop, 3.14 km — naïve café!") == [
        "Don't", "stop", "3", "14", "km", "naïve", "café",
    ]  # fmt: skip
    assert spans_text("床前明月光，") == list("床前明月光")  # one per ideograph
    assert spans_text("こんにちは世界") == list("こんにちは世界")
    assert spans_text("안녕 하세요") == ["안녕", "하세요"]


def test_anchors_place_words_and_fill_between_them() -> None:
    speech = prepare_speech("Hello there, you.", (), False)
    # espeak-like anchors: words at 0 and 6, the clause end at 12, "you" at 13
    anchors = [Anchor(0, 0), Anchor(6, 600), Anchor(12, 1200), Anchor(13, 1300)]
    words = sentence_words(speech, anchors, 2000)
    assert [(w.begin_index, w.end_index) for w in words] == [(0, 5), (6, 11), (13, 16)]
    assert [(w.begin_sample, w.end_sample) for w in words] == [
        (0, 500), (600, 1100), (1300, 1825),
    ]  # fmt: skip


def test_bad_anchors_are_ignored_and_times_never_fall() -> None:
    speech = prepare_speech("a b c d", (), False)
    anchors = [Anchor(2, 900), Anchor(4, 100), Anchor(99, 5), Anchor(6, 10**9)]
    words = sentence_words(speech, anchors, 1000)
    starts = [w.begin_sample for w in words]
    assert starts == sorted(starts) and all(w.end_sample <= 1000 for w in words)


def test_replacement_words_point_into_the_original() -> None:
    original = "草地上有Dr Li。"
    speech = prepare_speech(original, (("草地", "草弟"), ("Dr", "Doctor")), False)
    assert speech.text == "草弟上有Doctor Li。"
    words = sentence_words(speech, [], 1500)
    assert [original[w.begin_index : w.end_index] for w in words] == [
        "草地",
        "上",
        "有",
        "Dr",
        "Li",
    ]  # fmt: skip  (草弟's two spoken words merge into the one original span)


def test_markdown_filter_maps_back() -> None:
    original = "**Big** `x` [site](http://a.b)"
    speech = filter_markdown(original)
    assert speech.text == "Big x site"
    spans = [speech.original_span(a, b) for a, b in word_spans(speech.text)]
    assert [original[a:b] for a, b in spans] == ["Big", "x", "site"]


@given(
    st.text(alphabet="ab c中。*#_`[]()", max_size=40),
    st.lists(st.tuples(st.sampled_from(["a", "b c", "中"]), st.text("xy中", max_size=3))),
    st.booleans(),
)
def test_spoken_words_always_map_to_ordered_original_spans(
    original: str, replacements: list[tuple[str, str]], markdown: bool
) -> None:
    speech = prepare_speech(original, replacements, markdown)
    assert len(speech.starts) == len(speech.ends) == len(speech.text) + 1
    words = sentence_words(speech, [], 1000)
    for before, after in itertools.pairwise(words):
        assert before.end_index <= after.begin_index and before.begin_sample <= after.begin_sample
    assert all(0 <= w.begin_index < w.end_index <= len(original) for w in words)


def test_replace_scans_once_longest_first() -> None:
    assert replace_words("abab", (("a", "b"), ("ab", "X"))).text == "XX"
    assert replace_words("aaa", (("a", "aa"),)).text == "aaaaaa"  # never re-applied


def _task(words: WordReporting) -> tuple[ServerProtocol, list[Synthesize]]:
    server = ServerProtocol(now=0.0, words=words)
    extra = {"word_timestamp_enabled": True}
    params = SynthesisParameters("cosyvoice-v2", "longxiaochun_v2", "pcm", 22050, extra=extra)
    server.receive_text(encode_client_message(RunTask.create(TASK, params)), 0.0)
    frame = encode_client_message(ContinueTask(TASK, "One two. Three four. "))
    actions = server.receive_text(frame, 0.0)
    actions += server.receive_text(encode_client_message(FinishTask(TASK)), 0.0)
    return server, [a for a in actions if isinstance(a, Synthesize)]


def _finish_all(server: ServerProtocol, sentences: list[Synthesize]) -> list[ServerAction]:
    out: list[ServerAction] = []
    for s in sentences:  # one second of audio each, linear words
        out += server.sentence_done(TASK, s.index, s.text, 0.0, SentenceAudio(22050, 22050))
    return out


def _words(events: list[ServerAction]) -> list[tuple[str, int, int]]:
    ends = [e for e in events if isinstance(e, ResultGenerated) and e.type == "sentence-end"]
    return [(w["text"], w["begin_time"], w["end_time"]) for e in ends for w in e.words]


def test_word_times_from_the_start_of_each_sentence_by_default() -> None:
    server, sentences = _task(WordReporting())
    events = _finish_all(server, sentences)
    assert _words(events) == [
        ("One", 0, 333), ("two", 444, 777), ("Three", 0, 416), ("four", 500, 833),
    ]  # fmt: skip
    assert isinstance(events[-1], TaskFinished) and events[-1].words == ()


def test_word_times_from_the_start_of_the_task_and_in_task_finished() -> None:
    server, sentences = _task(WordReporting(time_origin="task", in_task_finished=True))
    events = _finish_all(server, sentences)
    assert [t for _, t, _ in _words(events)] == [0, 444, 1000, 1500]
    finished = events[-1]
    assert isinstance(finished, TaskFinished)
    assert [w["text"] for w in finished.words] == ["One", "two", "Three", "four"]


def test_no_words_unless_asked() -> None:
    server = ServerProtocol(now=0.0)
    params = SynthesisParameters("cosyvoice-v2", "longxiaochun_v2", "pcm", 22050)
    server.receive_text(encode_client_message(RunTask.create(TASK, params)), 0.0)
    [synth] = server.receive_text(encode_client_message(ContinueTask(TASK, "Hi there. ")), 0.0)
    assert isinstance(synth, Synthesize)
    [end] = server.sentence_done(TASK, 0, synth.text, 0.0, SentenceAudio(100, 22050))
    assert isinstance(end, ResultGenerated) and end.words == ()
