"""AudioPipeline with real janus queues and real threads (no mocks)."""

from __future__ import annotations

import asyncio
import io
import threading
import wave
from pathlib import Path

import pytest

from voicebridge.audio import (
    AudioPipeline,
    CallbackSink,
    NullSink,
    PcmFileSink,
    PcmFormat,
    WavFileSink,
)
from voicebridge.errors import AudioError, ConfigurationError, SynthesisTimeout

FMT = PcmFormat(16000)  # 32,000 bytes per second


def chunks(n: int, size: int = 640, seed: int = 0) -> list[bytes]:
    """``n`` distinct chunks of whole 16-bit frames (640 bytes = 20 ms at 16 kHz)."""
    return [bytes((seed + i + j) % 256 for j in range(size)) for i in range(n)]


class GatedSink(CallbackSink):
    """A real sink whose writes block until ``gate`` opens (a stalled device), bounded."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.written: list[bytes] = []
        super().__init__(self._take)

    def _take(self, chunk: bytes) -> None:
        assert self.gate.wait(10.0), "test gate never opened"
        self.written.append(chunk)

    def abort(self) -> None:
        self.gate.set()


def test_format_figures() -> None:
    fmt = PcmFormat(22050, channels=2)
    assert fmt.frame_size == 4
    assert fmt.bytes_per_second == 88200
    assert fmt.seconds(44100) == pytest.approx(0.5)
    with pytest.raises(ConfigurationError):
        PcmFormat(0)
    with pytest.raises(ConfigurationError):
        PcmFormat(16000, sample_width=5)


def test_chunks_reach_every_sink_in_order_and_turn_drains() -> None:
    got: list[bytes] = []
    null = NullSink()
    data = chunks(50)
    with AudioPipeline([CallbackSink(got.append), null], FMT) as pipe:
        turn = pipe.begin_turn()
        for c in data:
            pipe.receive(turn, c)
        pipe.end_turn(turn)
        pipe.wait_turn_done(turn, timeout=5)
        stats = pipe.turn_stats(turn)
    assert got == data
    assert null.bytes_written == 50 * 640
    assert stats.bytes == 50 * 640
    assert stats.audio_seconds == pytest.approx(1.0)
    assert stats.first_write_at is not None
    assert stats.done and not stats.interrupted
    assert stats.underruns == 0


def test_turn_ids_increase_and_turns_stay_separate() -> None:
    got: list[bytes] = []
    with AudioPipeline([CallbackSink(got.append)], FMT) as pipe:
        first = pipe.begin_turn()
        second = pipe.begin_turn()
        assert second > first
        pipe.receive(first, b"\x01\x00")
        pipe.end_turn(first)
        pipe.receive(second, b"\x02\x00")
        pipe.end_turn(second)
        pipe.wait_turn_done(second, timeout=5)
        pipe.wait_turn_done(first, timeout=5)
        assert pipe.turn_stats(first).bytes == pipe.turn_stats(second).bytes == 2
    assert got == [b"\x01\x00", b"\x02\x00"]


def test_wav_sink_appends_turns_into_one_file_and_pcm_sink_gets_raw_bytes(tmp_path: Path) -> None:
    path = tmp_path / "out.wav"
    raw = io.BytesIO()
    fmt = PcmFormat(22050)
    turns = [chunks(10, seed=1), chunks(7, seed=2)]
    with AudioPipeline([WavFileSink(path), PcmFileSink(raw)], fmt) as pipe:
        for data in turns:
            turn = pipe.begin_turn()
            for c in data:
                pipe.receive(turn, c)
            pipe.end_turn(turn)
            pipe.wait_turn_done(turn, timeout=5)
        with wave.open(str(path), "rb") as partial:  # valid before close(): header patched
            assert partial.getnframes() == 17 * 320
    expected = b"".join(turns[0] + turns[1])
    with wave.open(str(path), "rb") as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (22050, 1, 2)
        assert wav.readframes(wav.getnframes()) == expected
    assert raw.getvalue() == expected


def test_receive_never_waits_for_a_stalled_sink() -> None:
    sink = GatedSink()
    data = chunks(2000)
    pipe = AudioPipeline([sink], FMT)
    try:
        turn = pipe.begin_turn()
        for c in data:  # every call returns although the sink holds the first chunk
            pipe.receive(turn, c)
        pipe.end_turn(turn)
        assert not sink.gate.is_set() and sink.written == []
        # everything except the chunk the dispatcher holds is counted as buffered
        assert pipe.buffered_seconds == pytest.approx(FMT.seconds(2000 * 640))
        sink.gate.set()
        pipe.wait_turn_done(turn, timeout=10)
        assert sink.written == data
        assert pipe.buffered_seconds == 0
    finally:
        pipe.close()


def test_interrupt_discards_queued_audio_and_later_chunks_of_the_turn() -> None:
    sink = GatedSink()
    after_interrupt: list[bytes] = []
    interrupted = threading.Event()

    def watch(chunk: bytes) -> None:
        if interrupted.is_set():
            after_interrupt.append(chunk)

    pipe = AudioPipeline([sink, CallbackSink(watch)], FMT)
    try:
        turn = pipe.begin_turn()
        for c in chunks(500):
            pipe.receive(turn, c)
        assert pipe.buffered_seconds > 9
        pipe.interrupt()  # opens the gate (abort) while the dispatcher is blocked in write()
        interrupted.set()
        assert pipe.buffered_seconds == 0
        for c in chunks(100):
            pipe.receive(turn, c)  # late audio of the cancelled turn: dropped
        pipe.end_turn(turn)
        pipe.wait_turn_done(turn, timeout=1)
        stats = pipe.turn_stats(turn)
        assert stats.interrupted and stats.done
        assert len(sink.written) <= 1  # at most the chunk that was in write() at the time

        # the pipeline is ready for the next turn, and only its audio arrives
        nxt = pipe.begin_turn()
        fresh = chunks(5, seed=99)
        for c in fresh:
            pipe.receive(nxt, c)
        pipe.end_turn(nxt)
        pipe.wait_turn_done(nxt, timeout=5)
        assert after_interrupt == fresh
        assert not pipe.turn_stats(nxt).interrupted
    finally:
        pipe.close()


def test_failing_sink_fails_the_turn_not_the_receive_thread() -> None:
    good: list[bytes] = []

    def broken(chunk: bytes) -> None:
        raise OSError("disk full")

    with AudioPipeline([CallbackSink(broken), CallbackSink(good.append)], FMT) as pipe:
        turn = pipe.begin_turn()
        for c in chunks(20):
            pipe.receive(turn, c)  # does not raise
        pipe.end_turn(turn)
        with pytest.raises(AudioError, match="disk full"):
            pipe.wait_turn_done(turn, timeout=5)
        assert len(good) == 20  # the other sink still got the whole turn

        nxt = pipe.begin_turn()  # the next turn tries the sink again, and fails again
        pipe.receive(nxt, b"\x00\x00")
        pipe.end_turn(nxt)
        with pytest.raises(AudioError):
            pipe.wait_turn_done(nxt, timeout=5)


def test_wait_turn_done_is_bounded() -> None:
    with AudioPipeline([NullSink()], FMT) as pipe:
        turn = pipe.begin_turn()
        pipe.receive(turn, b"\x00\x00")
        with pytest.raises(SynthesisTimeout):
            pipe.wait_turn_done(turn, timeout=0.05)
        with pytest.raises(ConfigurationError):
            pipe.wait_turn_done(turn + 1, timeout=0.05)


def test_await_turn_done_keeps_the_event_loop_running() -> None:
    sink = GatedSink()

    async def main() -> int:
        with AudioPipeline([sink], FMT) as pipe:
            turn = pipe.begin_turn()
            pipe.receive(turn, b"\x00\x00")
            pipe.end_turn(turn)
            ticks = 0

            async def tick() -> None:
                nonlocal ticks
                for _ in range(5):
                    await asyncio.sleep(0.01)
                    ticks += 1
                sink.gate.set()

            ticker = asyncio.create_task(tick())
            await pipe.await_turn_done(turn, timeout=5)
            await ticker
            with pytest.raises(SynthesisTimeout):
                await pipe.await_turn_done(pipe.begin_turn(), timeout=0.05)
            return ticks

    assert asyncio.run(main()) == 5


def test_sink_that_cannot_start_fails_the_constructor_and_closes_the_others(
    tmp_path: Path,
) -> None:
    ok = tmp_path / "ok.wav"
    with pytest.raises(AudioError, match="cannot write WAV file"):
        AudioPipeline([WavFileSink(ok), WavFileSink(tmp_path / "missing" / "x.wav")], FMT)
    assert list(tmp_path.iterdir()) == []  # the first sink was closed: no file left, no temp


def test_close_joins_the_dispatcher_and_later_audio_is_ignored() -> None:
    before = {t.name for t in threading.enumerate()}
    pipe = AudioPipeline([CallbackSink(lambda chunk: None)], FMT)  # may block: its own thread
    assert "voicebridge-audio-dispatcher" in {t.name for t in threading.enumerate()}
    turn = pipe.begin_turn()
    pipe.close(timeout=2)
    pipe.close()  # idempotent
    pipe.receive(turn, b"\x00\x00")
    pipe.end_turn(turn)
    assert {t.name for t in threading.enumerate()} <= before
    with pytest.raises(AudioError):
        pipe.begin_turn()


def test_sinks_that_never_block_share_one_dispatcher_thread() -> None:
    before = {t.ident for t in threading.enumerate()}
    pipes = [AudioPipeline([NullSink()], FMT) for _ in range(20)]
    try:
        new = [t for t in threading.enumerate() if t.ident not in before]
        assert [t.name for t in new] == ["voicebridge-audio-shared"]
        turns = [pipe.begin_turn() for pipe in pipes]
        for pipe, turn in zip(pipes, turns, strict=True):
            for c in chunks(3):
                pipe.receive(turn, c)
            pipe.end_turn(turn)
        for pipe, turn in zip(pipes, turns, strict=True):
            pipe.wait_turn_done(turn, timeout=5)
            assert pipe.turn_stats(turn).bytes == 3 * 640
    finally:
        for pipe in pipes:
            pipe.close()
    assert not [t for t in threading.enumerate() if t.ident not in before], "the last one stops it"
