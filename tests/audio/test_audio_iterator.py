"""IteratorSink: the same janus queue read by a thread (for) or by an event loop (async for)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from voicebridge.audio import AudioPipeline, IteratorSink, NullSink, PcmFormat
from voicebridge.errors import AudioError, SynthesisTimeout

FMT = PcmFormat(16000)


def chunks(n: int, seed: int) -> list[bytes]:
    return [bytes([(seed + i) % 256]) * 320 for i in range(n)]


def test_a_consumer_thread_iterates_one_turn_per_loop() -> None:
    sink = IteratorSink()
    turns: list[list[bytes]] = []

    def consume() -> None:
        for _ in range(2):
            turns.append(list(sink))

    consumer = threading.Thread(target=consume)
    consumer.start()
    sent = [chunks(30, 1), chunks(5, 2)]
    with AudioPipeline([sink], FMT) as pipe:
        for data in sent:
            turn = pipe.begin_turn()
            for c in data:
                pipe.receive(turn, c)
            pipe.end_turn(turn)
            pipe.wait_turn_done(turn, timeout=5)  # returns once the consumer read the end
    consumer.join(5)
    assert not consumer.is_alive()
    assert turns == sent


def test_an_asyncio_consumer_reads_without_blocking_the_loop() -> None:
    sink = IteratorSink()
    sent = chunks(40, 3)

    async def main() -> list[bytes]:
        with AudioPipeline([sink], FMT) as pipe:
            turn = pipe.begin_turn()

            def receive_thread() -> None:  # as the WebSocket thread would
                for c in sent:
                    pipe.receive(turn, c)
                pipe.end_turn(turn)

            producer = threading.Thread(target=receive_thread)
            producer.start()
            got = [chunk async for chunk in sink]
            await pipe.await_turn_done(turn, timeout=5)
            producer.join(5)
            return got

    assert asyncio.run(main()) == sent


def test_unread_audio_is_buffered_and_an_interrupt_drops_it() -> None:
    sink = IteratorSink()
    with AudioPipeline([sink], FMT) as pipe:
        turn = pipe.begin_turn()
        for c in chunks(50, 4):  # 50 x 10 ms, nobody reading yet
            pipe.receive(turn, c)
        pipe.end_turn(turn)
        for _ in range(500):  # the dispatcher moves the chunks into the sink: at most 5 s
            if sink.buffered_seconds >= 0.5:
                break
            time.sleep(0.01)
        assert pipe.buffered_seconds == pytest.approx(0.5)
        pipe.interrupt()
        pipe.wait_turn_done(turn, timeout=1)
        assert pipe.buffered_seconds == 0
        assert list(sink) == []  # the interrupted turn ends its iteration at once, empty

        nxt = pipe.begin_turn()
        fresh = chunks(3, 5)
        for c in fresh:
            pipe.receive(nxt, c)
        pipe.end_turn(nxt)
        assert list(sink) == fresh  # nothing of the cancelled turn shows up afterwards
        pipe.wait_turn_done(nxt, timeout=5)


def test_nobody_reading_fails_the_turn_within_its_bound() -> None:
    sink = IteratorSink(max_chunks=2, consumer_timeout=0.1)
    with AudioPipeline([sink], FMT) as pipe:
        turn = pipe.begin_turn()
        for c in chunks(5, 6):
            pipe.receive(turn, c)
        pipe.end_turn(turn)
        with pytest.raises(AudioError, match="nobody read"):
            pipe.wait_turn_done(turn, timeout=5)


def test_a_consumer_waits_for_audio_within_its_bound() -> None:
    sink = IteratorSink(chunk_timeout=0.05)
    with AudioPipeline([sink], FMT), pytest.raises(SynthesisTimeout):
        next(iter(sink))


def test_close_ends_the_iteration() -> None:
    sink = IteratorSink()
    got: list[list[bytes]] = []
    pipe = AudioPipeline([sink], FMT)
    consumer = threading.Thread(target=lambda: got.append(list(sink)))
    consumer.start()
    pipe.close()
    consumer.join(5)
    assert not consumer.is_alive() and got == [[]]


class SlowDrainSink(NullSink):
    """A real sink whose drain lasts until abort() (a device that plays for a long time)."""

    def __init__(self) -> None:
        super().__init__()
        self.aborted = threading.Event()

    def drain(self) -> None:
        assert self.aborted.wait(10.0), "never aborted"

    def abort(self) -> None:
        self.aborted.set()


def test_an_interrupt_during_the_drain_leaves_the_next_turn_whole() -> None:
    sink = IteratorSink()
    with AudioPipeline([SlowDrainSink(), sink], FMT) as pipe:
        turn = pipe.begin_turn()
        pipe.receive(turn, b"\x00\x00")
        pipe.end_turn(turn)
        with pytest.raises(SynthesisTimeout):  # the dispatcher is in the first sink's drain()
            pipe.wait_turn_done(turn, timeout=0.2)
        pipe.interrupt()
        pipe.wait_turn_done(turn, timeout=1)
        assert list(sink) == []  # the interrupted turn ends at once

        nxt = pipe.begin_turn()
        fresh = chunks(3, 7)
        for c in fresh:
            pipe.receive(nxt, c)
        pipe.end_turn(nxt)
        assert list(sink) == fresh
