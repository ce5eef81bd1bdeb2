"""WavFileSink through the real AudioPipeline: completed turns are published, a failed or
interrupted run never leaves a half-written WAV (no file, or the previous one untouched)."""

from __future__ import annotations

import gc
import time
import wave
from pathlib import Path

import pytest

from voicebridge.audio import AudioPipeline, PcmFormat, WavFileSink
from voicebridge.errors import AudioError

FMT = PcmFormat(16000)
CHUNK = bytes(range(256)) * 4  # 1024 bytes = 512 frames


def frames(path: Path) -> bytes:
    with wave.open(str(path), "rb") as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (16000, 1, 2)
        return wav.readframes(wav.getnframes())


def spoken_turn(pipe: AudioPipeline, chunks: int) -> None:
    turn = pipe.begin_turn()
    for _ in range(chunks):
        pipe.receive(turn, CHUNK)
    pipe.end_turn(turn)
    pipe.wait_turn_done(turn, timeout=5)


def interrupted_turn(pipe: AudioPipeline, chunks: int) -> None:
    """Audio reaches the sink, then the turn is aborted (a barge-in, or a failed turn: the
    bridge interrupts the pipeline when the session fails)."""
    turn = pipe.begin_turn()
    for _ in range(chunks):
        pipe.receive(turn, CHUNK)
    deadline = time.monotonic() + 5
    while pipe.turn_stats(turn).bytes < chunks * len(CHUNK):  # all of it written to the sink
        assert time.monotonic() < deadline
        time.sleep(0.01)
    pipe.interrupt()
    pipe.wait_turn_done(turn, timeout=5)


def test_completed_turns_are_published_and_valid_before_close(tmp_path: Path) -> None:
    path = tmp_path / "out.wav"
    with AudioPipeline([WavFileSink(path)], FMT) as pipe:
        spoken_turn(pipe, 3)
        assert frames(path) == CHUNK * 3  # published at the end of the first turn
        spoken_turn(pipe, 2)
        assert frames(path) == CHUNK * 5
    assert frames(path) == CHUNK * 5
    assert [p.name for p in tmp_path.iterdir()] == ["out.wav"]


def test_a_run_that_completes_nothing_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "out.wav"
    with AudioPipeline([WavFileSink(path)], FMT) as pipe:
        turn = pipe.begin_turn()
        pipe.receive(turn, CHUNK)  # audio arrived, then the run failed: close, no drain
    assert list(tmp_path.iterdir()) == []


def test_a_failed_run_keeps_the_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "out.wav"
    path.write_bytes(b"previous")
    with AudioPipeline([WavFileSink(path)], FMT) as pipe:
        interrupted_turn(pipe, 4)
    assert path.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["out.wav"]


def test_audio_after_the_last_completed_turn_is_cut_off(tmp_path: Path) -> None:
    path = tmp_path / "out.wav"
    with AudioPipeline([WavFileSink(path)], FMT) as pipe:
        spoken_turn(pipe, 2)
        interrupted_turn(pipe, 3)
        assert frames(path) == CHUNK * 2  # the header still says: the completed turn only
    assert path.stat().st_size == 44 + 2 * len(CHUNK)  # the rest was truncated at close


def test_an_interrupted_turn_followed_by_a_completed_one_stays_in_the_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "out.wav"
    with AudioPipeline([WavFileSink(path)], FMT) as pipe:
        spoken_turn(pipe, 1)
        interrupted_turn(pipe, 2)  # heard before the barge-in
        spoken_turn(pipe, 1)
    assert frames(path) == CHUNK * 4


def test_a_turn_without_audio_publishes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "out.wav"
    with AudioPipeline([WavFileSink(path)], FMT) as pipe:
        spoken_turn(pipe, 0)
    assert list(tmp_path.iterdir()) == []


def test_a_sink_dropped_without_close_removes_its_temporary_file(tmp_path: Path) -> None:
    sink = WavFileSink(tmp_path / "out.wav")
    sink.start(FMT)
    sink.write(CHUNK)
    assert len(list(tmp_path.iterdir())) == 1  # the hidden .part file
    del sink
    gc.collect()
    assert list(tmp_path.iterdir()) == []


def test_a_directory_or_a_missing_folder_is_an_audio_error(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="is a directory"):
        WavFileSink(tmp_path).start(FMT)
    with pytest.raises(AudioError, match="cannot write WAV file"):
        WavFileSink(tmp_path / "missing" / "x.wav").start(FMT)
