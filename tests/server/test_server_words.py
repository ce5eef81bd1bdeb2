"""Word timestamps and run-task options over real sockets, with every engine (issue 12)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from wsclient import RawClient, audio_of

from voicebridge.protocol import Audio, ResultGenerated, ServerEvent, TaskFailed, TaskFinished
from voicebridge.server import ServerThread, decode_text_audio
from voicebridge.server.words import word_spans

MakeServer = Callable[..., ServerThread]
WORDS = {"word_timestamp_enabled": True}


def sentences(events: list[ServerEvent]) -> list[tuple[ResultGenerated, bytes]]:
    """Each sentence-end with the audio of its sentence."""
    out: list[tuple[ResultGenerated, bytes]] = []
    audio = b""
    for event in events:
        if isinstance(event, Audio):
            audio += event.data
        elif isinstance(event, ResultGenerated) and event.type == "sentence-end":
            out.append((event, audio))
            audio = b""
    return out


def check_words(end: ResultGenerated, audio: bytes, rate: int) -> list[dict[str, Any]]:
    """The words point into original_text, in order, within the sentence's audio."""
    text = end.original_text or ""
    words = list(end.words)
    assert [w["text"] for w in words] == [text[a:b] for a, b in word_spans(text)]
    duration_ms = len(audio) / 2 / rate * 1000
    previous_end = 0
    for word in words:
        assert text[word["begin_index"] : word["end_index"]] == word["text"]
        assert previous_end <= word["begin_time"] < word["end_time"] <= duration_ms + 1
        previous_end = word["begin_time"]
    return words


def test_espeak_word_times_come_from_the_engine_and_hold_speech(make_server: MakeServer) -> None:
    server = make_server(engine="espeak")
    text = "Hello there, this is the local speech server. It counts every word."
    with RawClient(server.url) as client:
        events = client.speak(text, voice="loongeva_v2", extra=WORDS)
    assert isinstance(events[-1], TaskFinished)
    for end, audio in sentences(events):
        samples = np.frombuffer(audio, dtype="<i2").astype(np.float64)
        for word in check_words(end, audio, 22050):
            span = samples[word["begin_time"] * 22050 // 1000 : word["end_time"] * 22050 // 1000]
            assert np.sqrt(np.mean(span**2)) > 300, word  # speech inside every word's span
    first, _ = sentences(events)[0]
    assert first.words[1]["begin_time"] > 150  # "there" is not at the start: real times


def test_espeak_gives_one_word_per_chinese_character(make_server: MakeServer) -> None:
    server = make_server(engine="espeak")
    with RawClient(server.url) as client:
        events = client.speak("床前明月光，疑是地上霜。", extra=WORDS, sample_rate=16000)
    [(end, audio)] = sentences(events)
    words = check_words(end, audio, 16000)
    assert [w["text"] for w in words] == list("床前明月光疑是地上霜")
    assert len({w["begin_time"] for w in words}) == 10  # each character at its own time


@pytest.mark.parametrize("engine", ["tone", "text"])
def test_proportional_engines_give_word_times_too(make_server: MakeServer, engine: str) -> None:
    server = make_server(engine=engine)
    with RawClient(server.url) as client:
        events = client.speak("One two three. 你好。", extra=WORDS)
    for end, audio in sentences(events):
        check_words(end, audio, 22050)
    [(first, _), _] = sentences(events)
    times = [w["begin_time"] for w in first.words]
    assert times[0] == 0 and times[1] > 0 and times[2] > times[1]


def test_no_words_unless_asked(tone_server: ServerThread) -> None:
    with RawClient(tone_server.url) as client:
        events = client.speak("One two three.")
    assert all(not end.words for end, _ in sentences(events))


def test_text_engine_audio_decodes_to_what_was_spoken_after_replace(
    make_server: MakeServer,
) -> None:
    server = make_server(engine="text")
    hot_fix = {"replace": [{"草地": "草弟"}], "pronunciation": [{"草地": "cao3 di4"}]}
    with RawClient(server.url) as client:
        events = client.speak("草地上。", "Plain text. ", extra={"hot_fix": hot_fix, **WORDS})
    assert decode_text_audio(audio_of(events)).text == "草弟上。Plain text. "  # what was heard
    ends = [end for end, _ in sentences(events)]
    assert [e.original_text for e in ends] == ["草地上。", "Plain text. "]  # as the client sent
    assert [w["text"] for w in ends[0].words] == ["草地", "上"]
    assert server.transcripts[0].text == "草地上。Plain text. "


def test_text_engine_refuses_mp3(make_server: MakeServer) -> None:
    server = make_server(engine="text")
    with RawClient(server.url) as client:
        client.run_task(format="mp3")
        failed = client.until_end()[-1]
    assert isinstance(failed, TaskFailed) and "mp3" in failed.message


def test_language_hint_changes_the_espeak_voice(make_server: MakeServer) -> None:
    server = make_server(engine="espeak")
    text = "1234 5678."  # numbers: read very differently in Mandarin and English
    with RawClient(server.url) as client:
        chinese = len(audio_of(client.speak(text)))  # a Mandarin voice reads it as Mandarin
    with RawClient(server.url) as client:
        hinted = len(audio_of(client.speak(text, extra={"language_hints": ["en"]})))
    with RawClient(server.url) as client:
        english = len(audio_of(client.speak(text, voice="loongabby_v2")))
    # espeak-ng's output varies by a few samples from run to run, so compare durations
    assert abs(hinted - english) < 0.01 * english and abs(hinted - chinese) > 0.1 * chinese


def test_bad_option_fails_like_the_service(tone_server: ServerThread) -> None:
    with RawClient(tone_server.url) as client:
        client.run_task(extra={"language_hints": ["klingon"]})
        failed = client.until_end()[-1]
    assert isinstance(failed, TaskFailed) and failed.code == "InvalidParameter"
    assert "language_hints" in failed.message and "klingon" in failed.message
