"""The demo's WebSocket protocol and conversation, sans-I/O: parsing, limits, the flood guard,
where spoken words sit in a reply, and what the history keeps after a Stop."""

from __future__ import annotations

import json

import pytest

from voicebridge.errors import RemoteProtocolError
from voicebridge.web.conversation import Conversation, Reply
from voicebridge.web.messages import (
    AUDIO_HEADER,
    FloodGuard,
    Interrupt,
    Played,
    Say,
    WebLimits,
    audio_frame,
    encode,
    parse_message,
)

LIMITS = WebLimits()


def test_say_and_interrupt_are_parsed() -> None:
    message = parse_message('{"type":"say","text":" Hi there ","voice":"v","rate":1.25}', LIMITS)
    assert message == Say("Hi there", "v", 1.25)
    assert parse_message('{"type":"say","text":"x"}', LIMITS) == Say("x")
    assert parse_message('{"type":"interrupt","turn":3,"heard":1.5}', LIMITS) == Interrupt(3, 1.5)
    assert parse_message('{"type":"interrupt"}', LIMITS) == Interrupt()
    assert parse_message(
        '{"type":"played","turn":2,"seconds":1.5,"underruns":1,"finished":true}', LIMITS
    ) == Played(2, 1.5, 1, True)
    assert parse_message('{"type":"played","turn":2,"seconds":0}', LIMITS) == Played(2, 0.0)


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"\x00\xff junk", "binary messages are not accepted"),
        ("{not json", "malformed JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"text": "no type"}', "unknown message type None"),
        ('{"type": "sing"}', "unknown message type 'sing'"),
        ('{"type": "say"}', "non-empty 'text'"),
        ('{"type": "say", "text": "   "}', "non-empty 'text'"),
        ('{"type": "say", "text": 5}', "non-empty 'text'"),
        ('{"type": "say", "text": "x", "voice": 3}', "'voice' must be a string"),
        ('{"type": "say", "text": "x", "rate": "fast"}', "'rate' must be a number"),
        ('{"type": "say", "text": "x", "rate": true}', "'rate' must be a number"),
        ('{"type": "say", "text": "x", "rate": 9}', "between 0.5 and 2"),
        ('{"type": "say", "text": "x", "rate": NaN}', "'rate' must be a number"),
        ('{"type": "interrupt", "turn": 0}', "positive integer"),
        ('{"type": "interrupt", "turn": "1"}', "positive integer"),
        ('{"type": "interrupt", "heard": -1}', "between 0 and inf"),
        ('{"type": "played", "turn": 1}', "'played' needs 'turn' and 'seconds'"),
        ('{"type": "played", "seconds": 1}', "'played' needs 'turn' and 'seconds'"),
        ('{"type": "played", "turn": 1, "seconds": 1, "underruns": -1}', "non-negative"),
        ('{"type": "played", "turn": 1, "seconds": 1, "finished": 1}', "true or false"),
    ],
)
def test_bad_messages_get_one_line_reasons(frame: str | bytes, reason: str) -> None:
    with pytest.raises(RemoteProtocolError, match=reason.replace("(", r"\(")) as caught:
        parse_message(frame, LIMITS)
    assert "\n" not in str(caught.value)


def test_size_limits() -> None:
    limits = WebLimits(max_text_chars=10, max_message_bytes=100)
    assert parse_message(json.dumps({"type": "say", "text": "x" * 10}), limits).text == "x" * 10
    with pytest.raises(RemoteProtocolError, match="text too long: 11 characters"):
        parse_message(json.dumps({"type": "say", "text": "x" * 11}), limits)
    with pytest.raises(RemoteProtocolError, match=r"message too long: 1\d\d bytes"):
        parse_message(json.dumps({"type": "say", "text": "x" * 90}), limits)
    # bytes, not characters: 40 three-byte characters are 120 bytes
    with pytest.raises(RemoteProtocolError, match="message too long"):
        parse_message(json.dumps({"type": "say", "text": "语" * 40}, ensure_ascii=False), limits)


def test_server_messages_and_audio_frames() -> None:
    assert json.loads(encode("text", turn=2, text="héllo")) == {
        "type": "text",
        "turn": 2,
        "text": "héllo",
    }
    frame = audio_frame(7, 22050, b"\x01\x00\x02\x00")
    assert AUDIO_HEADER.unpack(frame[: AUDIO_HEADER.size]) == (7, 22050)
    assert frame[AUDIO_HEADER.size :] == b"\x01\x00\x02\x00"


def test_flood_guard_admits_the_rate_and_tells_once_per_second() -> None:
    guard = FloodGuard(rate=10.0, burst=5)
    verdicts = [guard.admit(0.0) for _ in range(20)]
    assert [admitted for admitted, _ in verdicts].count(True) == 5
    assert [told for _, told in verdicts].count(True) == 1  # one notice for the whole burst
    assert guard.dropped == 15
    assert guard.admit(0.05) == (False, False)  # half a token back: still dropped, no notice
    assert guard.admit(0.5)[0] is True  # tokens come back at the rate
    assert guard.admit(1.2) == (True, False)
    drops = [guard.admit(1.2) for _ in range(10)]
    assert (False, True) in drops  # a new notice, a second after the last one


def test_words_are_placed_in_the_reply_as_written() -> None:
    reply = Reply()
    reply.write("**Paris** is the capital. See [the map](https://example.com/map) now.")
    placed = [
        reply.place(w, i * 0.5, i * 0.5 + 0.4)
        for i, w in enumerate(["Paris", "is", "the", "capital.", "See", "the", "map", "now."])
    ]
    texts = [None if w.span is None else reply.text[w.span[0] : w.span[1]] for w in placed]
    assert texts == ["Paris", "is", "the", "capital.", "See", "the", "map", "now."]
    assert placed[5].span is not None and placed[5].span[0] > placed[2].span[1]  # type: ignore[index]
    missing = reply.place("twenty", 4.0, 4.4)  # a spoken form the text does not have
    assert missing.span is None and missing.index == 8


def test_heard_end_is_where_the_heard_words_end_in_the_reply() -> None:
    reply = Reply()
    reply.write("One two, three four.")
    for i, word in enumerate(["One", "two", "drei", "four."]):
        reply.place(word, i * 1.0, i * 1.0 + 0.8)
    assert [reply.heard_end(n) for n in range(5)] == [0, 3, 7, 7, 20]
    untimed = Reply()
    untimed.write("Nothing placed.")
    untimed.place("Nichts", 0.0, 0.5)
    assert untimed.heard_end(1) is None


def test_conversation_history_keeps_what_was_heard() -> None:
    conversation = Conversation("Be brief.", max_turns=2)
    first = conversation.begin("Hello?")
    first.reply.write("Hi there. How can I help?")
    first.stopped, first.heard_text = True, "Hi there."
    second = conversation.begin("Nothing.")
    assert second.number == conversation.begun == 2
    assert conversation.messages() == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello?"},
        {"role": "assistant", "content": "Hi there."},
        {"role": "user", "content": "Nothing."},
    ]
    second.failed = True  # an LLM failure before any text: the question is dropped too
    third = conversation.begin("Again?")
    third.reply.write("Yes.")
    fourth = conversation.begin("Stop at once")
    fourth.reply.write("Well...")
    fourth.stopped, fourth.heard_text = True, ""  # nothing heard: only the question stays
    assert conversation.messages() == [  # the first turn is beyond max_turns
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Again?"},
        {"role": "assistant", "content": "Yes."},
        {"role": "user", "content": "Stop at once"},
    ]
