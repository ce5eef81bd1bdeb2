"""Unfriendly sources and users (issue 10): a source that raises, ``bytes`` tokens, items that
are not text, ``interrupt()`` while a sync source is blocked in a long read, a source still
writing when its turn failed, and LLM pauses longer than the service's idle timer.

Every turn runs through a real bridge and the local server's ``text`` engine; what a listener
heard is decoded from the audio the sinks received.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace

import pytest

from tests.fault_tools.listening import FakeSpeaker, Recorder, heard_words, text_audio
from tests.fault_tools.proxy import FaultProxy
from tests.fault_tools.scenarios import ANSWER, QUICK, SAMPLE_RATE, speak, tokens
from voicebridge import VoiceBridge
from voicebridge.audio import NullSink
from voicebridge.errors import HandshakeError, SourceError
from voicebridge.server import ServerThread
from voicebridge.server.service import ServerLimits

ARRIVED = "This much arrived before the model's stream broke. It is all spoken, every word."


class ModelCrashed(Exception):
    """What a buggy LLM client raises in the middle of a stream."""


def breaking_source() -> Iterator[str]:
    yield from tokens(ARRIVED)
    raise ModelCrashed("the connection to the model was reset")


async def breaking_async_source() -> AsyncIterator[str]:
    for token in tokens(ARRIVED):
        yield token
        await asyncio.sleep(0)
    raise ModelCrashed("the connection to the model was reset")


def test_a_plain_exception_from_the_source_is_a_source_error_after_all_its_audio(
    text_server: ServerThread,
) -> None:
    speaker = FakeSpeaker(speed=8.0)  # a speaker-like sink: audio takes time to play
    outcome = speak(text_server.url, breaking_source(), sinks=[speaker])
    assert isinstance(outcome.error, SourceError), outcome
    assert isinstance(outcome.error.__cause__, ModelCrashed)
    assert "ModelCrashed" in str(outcome.error)
    assert bytes(speaker.played) == text_audio(ARRIVED, SAMPLE_RATE), "100 % of it was heard"


def test_an_async_source_that_raises_is_a_source_error_after_all_its_audio(
    text_server: ServerThread,
) -> None:
    speaker = FakeSpeaker(speed=8.0)

    async def main() -> SourceError:
        async with VoiceBridge(
            url=text_server.url, sinks=[speaker], settings=QUICK, sample_rate=SAMPLE_RATE
        ) as bridge:
            with pytest.raises(SourceError) as caught:
                await bridge.aspeak(breaking_async_source())
        return caught.value

    error = asyncio.run(main())
    assert isinstance(error.__cause__, ModelCrashed)
    assert bytes(speaker.played) == text_audio(ARRIVED, SAMPLE_RATE)


def test_a_source_that_fails_before_its_first_token_ends_the_turn_at_once(
    text_server: ServerThread,
) -> None:
    class Unreadable:
        def __iter__(self) -> Iterator[str]:
            raise ModelCrashed("401 from the LLM provider")

    outcome = speak(text_server.url, Unreadable())
    assert isinstance(outcome.error, SourceError)
    assert isinstance(outcome.error.__cause__, ModelCrashed)
    assert outcome.heard == "" and outcome.seconds < 10


def test_bytes_tokens_are_decoded_as_utf8_even_when_a_character_is_split(
    text_server: ServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    text = "Bytes from a raw HTTP stream: 你好, café. Nothing is dropped."
    data = text.encode()
    pieces = [data[i : i + 4] for i in range(0, len(data), 4)]  # cuts inside characters
    with caplog.at_level(logging.WARNING, logger="voicebridge.llm"):
        outcome = speak(text_server.url, iter(pieces))
    assert outcome.metrics is not None, outcome.error
    assert outcome.heard == text
    assert not caplog.records


def test_bytes_that_are_not_utf8_are_spoken_as_far_as_they_decode_with_a_warning(
    text_server: ServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="voicebridge.llm"):
        outcome = speak(text_server.url, iter([b"Latin one: caf\xe9 ", b"au lait. ", "Done."]))
    assert outcome.metrics is not None, outcome.error
    heard = outcome.heard.split()
    assert heard[:2] == ["Latin", "one:"] and heard[-3:] == ["au", "lait.", "Done."]
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "not valid UTF-8" in warnings[0]


def test_every_kind_of_item_skipped_is_named_in_a_warning(
    text_server: ServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    items: list[object] = ["One ", None, 3, "two ", {"role": "assistant"}, 4.5, None, "three."]
    with caplog.at_level(logging.WARNING, logger="voicebridge.llm"):
        outcome = speak(text_server.url, iter(items))
    assert outcome.heard == "One two three."
    warnings = " ".join(r.getMessage() for r in caplog.records)
    for kind in ("NoneType", "int", "dict", "float"):
        assert kind in warnings, f"{kind} not named: {warnings}"
    assert len(caplog.records) == 4, "one warning per kind, not per item"


def test_interrupt_returns_at_once_while_a_sync_source_is_blocked_in_a_long_read(
    text_server: ServerThread,
) -> None:
    release = threading.Event()
    source_closed = threading.Event()

    def blocking_source() -> Iterator[str]:
        try:
            yield "The model wrote this, then its socket hung. "
            release.wait(30)  # a read with a 30 s timeout
            yield "Never spoken."
        finally:
            source_closed.set()

    before = set(threading.enumerate())
    recorder = Recorder()
    bridge = VoiceBridge(
        url=text_server.url, sinks=[recorder], settings=QUICK, sample_rate=SAMPLE_RATE
    )
    result: list[object] = []
    speaker = threading.Thread(target=lambda: result.append(bridge.speak(blocking_source())))
    speaker.start()
    deadline = time.monotonic() + 20
    while (progress := bridge.progress) is None or not progress.characters_spoken:
        assert time.monotonic() < deadline, "the first sentence was never spoken"
        time.sleep(0.01)
    started = time.monotonic()
    bridge.interrupt()
    returned = time.monotonic() - started
    speaker.join(10)
    back = time.monotonic() - started
    try:
        assert returned < 1.0 and back < 1.0, (returned, back)  # 100 ms asked: an order of it
        assert result and getattr(result[0], "interrupted", False)
        bridge.close()
        left = {t.name for t in set(threading.enumerate()) - before}
        assert left <= {"voicebridge-reader"}, left
    finally:
        release.set()
    assert source_closed.wait(5), "the source is closed as soon as its read returns"
    deadline = time.monotonic() + 5
    while set(threading.enumerate()) - before:
        assert time.monotonic() < deadline, "the reader thread did not end after the read"
        time.sleep(0.01)
    assert "Never" not in recorder.text


def test_a_failed_turns_source_never_speaks_into_the_next_turn(text_server: ServerThread) -> None:
    """Turn 1 fails (the gateway refuses) while its LLM is still writing; turn 2 starts at once.
    What turn 1's source writes later is neither spoken in turn 2 nor allowed to end it."""
    first_closed = threading.Event()

    def first() -> Iterator[str]:
        try:
            yield "First turn starts. "
            time.sleep(1.0)  # the turn fails meanwhile
            yield "Late words of the first turn. "
            yield "More of them."
        finally:
            first_closed.set()

    def second() -> Iterator[str]:
        yield "Second turn starts. "
        time.sleep(2.0)
        yield "Second turn ends."

    recorder = Recorder()
    with FaultProxy.to_url(text_server.url) as proxy, VoiceBridge(
        url=proxy.url, sinks=[recorder], settings=replace(QUICK, max_retries=2),
        sample_rate=SAMPLE_RATE,
    ) as bridge:  # fmt: skip
        proxy.refuse_for(0.5)
        with pytest.raises(HandshakeError) as caught:
            bridge.speak(first())
        assert caught.value.unspoken_text == "First turn starts. "
        time.sleep(0.6)  # the gateway is back
        second_turn = bridge.speak(second())
        assert first_closed.wait(5), "the failed turn's source is closed once its read returns"
    assert second_turn.text == "Second turn starts. Second turn ends."
    assert recorder.text == "Second turn starts. Second turn ends."


@pytest.mark.parametrize("seed", range(6))
def test_llm_pauses_longer_than_the_idle_timer_lose_and_repeat_nothing(
    seed: int, make_server: Callable[..., ServerThread]
) -> None:
    """Two pauses at random tokens, each past the idle flush, the rollover and the service's
    own idle timer (shortened to 0.8 s): the text heard is the text written, to the space."""
    server = make_server(engine="text", limits=ServerLimits(idle_timeout=0.8))
    pieces = tokens(ANSWER)
    pauses = set(random.Random(seed).sample(range(1, len(pieces)), 2))

    def pausing() -> Iterator[str]:
        for i, piece in enumerate(pieces):
            if i in pauses:
                time.sleep(1.0)
            yield piece

    settings = replace(QUICK, idle_flush_after=0.1, rollover_after=0.4)
    outcome = speak(server.url, pausing(), settings)
    assert outcome.metrics is not None, outcome.error
    assert outcome.heard == ANSWER, heard_words(ANSWER, outcome.heard)
    assert outcome.metrics.reconnects == 0, "the service's idle timer never fired"


def test_a_failed_turn_closes_its_async_source_at_once(text_server: ServerThread) -> None:
    """aspeak() on a service that refuses everything: the error comes within the retry budget
    while the async source waits for its next token; the source is closed, not left pending."""
    closed = threading.Event()

    async def slow_model() -> AsyncIterator[str]:
        try:
            yield "The first words. "
            await asyncio.sleep(30)  # the model takes its time
            yield "Never read."
        finally:
            closed.set()

    async def main() -> HandshakeError:
        async with VoiceBridge(
            url=proxy.url, sinks=[NullSink()], settings=replace(QUICK, max_retries=2),
            sample_rate=SAMPLE_RATE,
        ) as bridge:  # fmt: skip
            with pytest.raises(HandshakeError) as caught:
                await asyncio.wait_for(bridge.aspeak(slow_model()), 10)
            await asyncio.sleep(0.1)  # the cancelled reader's finally runs on this loop
            assert closed.is_set(), "the source still waits for its next token"
        return caught.value

    with FaultProxy.to_url(text_server.url) as proxy:
        proxy.refuse_for(60)
        error = asyncio.run(main())
    assert error.unspoken_text == "The first words. "
