"""The real playback test: speech through AudioPipeline and PyAudio into a PulseAudio null sink,
recorded from the sink's monitor with parec, and compared with what was synthesized."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tests.audio.pulse import Pulse, stop_recording
from voicebridge.audio import AudioPipeline, PcmFileSink, PcmFormat, PyAudioSink
from voicebridge.server import EspeakEngine, SpeechRequest

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Speech starts while the model is still writing.",
    "And the last word is never cut off.",
]
FRAMES_PER_BUFFER = 1024
CHUNK_SECONDS = 0.2  # audio per WebSocket frame
SYNTHESIS_PAUSE = 0.15  # the server works on the next sentence (still faster than real time)


def synthesize(rate: int) -> list[np.ndarray]:
    engine = EspeakEngine()
    try:
        assert engine.sample_rate == rate
        streams = [engine.synthesize(SpeechRequest(text, "en")) for text in SENTENCES]
        pcm = [b"".join(c for c in stream if isinstance(c, bytes)) for stream in streams]
    finally:
        engine.close()
    return [np.frombuffer(p, dtype="<i2").astype(np.float64) / 32768 for p in pcm]


def locate(recording: np.ndarray, part: np.ndarray) -> tuple[int, float]:
    """Offset of ``part`` in ``recording`` (FFT cross-correlation) and the normalised
    correlation there (1.0 = identical up to gain)."""
    size = 1 << int(np.ceil(np.log2(len(recording) + len(part))))
    spectrum = np.fft.rfft(recording, size) * np.conj(np.fft.rfft(part, size))
    scores = np.fft.irfft(spectrum, size)[: len(recording) - len(part) + 1]
    offset = int(np.argmax(scores))
    segment = recording[offset : offset + len(part)]
    norm = float(np.linalg.norm(segment) * np.linalg.norm(part))
    return offset, float(np.dot(segment, part) / norm) if norm else 0.0


def test_recording_holds_the_synthesized_speech_without_gaps(pulse: Pulse, tmp_path: Path) -> None:
    sentences = synthesize(pulse.rate)
    fmt = PcmFormat(pulse.rate)
    path = tmp_path / "monitor.raw"
    recorder = pulse.record(path)
    try:
        time.sleep(2.0)  # let the recorder settle before the first write
        with AudioPipeline(
            [PyAudioSink("pulse", frames_per_buffer=FRAMES_PER_BUFFER)], fmt
        ) as pipe:
            turn = pipe.begin_turn()

            def receive_thread() -> None:  # as the WebSocket receive thread would
                step = int(CHUNK_SECONDS * fmt.sample_rate)
                for sentence in sentences:
                    pcm = (sentence * 32768).astype("<i2").tobytes()
                    for start in range(0, len(pcm), step * 2):
                        pipe.receive(turn, pcm[start : start + step * 2])
                    time.sleep(SYNTHESIS_PAUSE)
                pipe.end_turn(turn)

            producer = threading.Thread(target=receive_thread)
            producer.start()
            pipe.wait_turn_done(turn, timeout=30)
            producer.join(5)
            stats = pipe.turn_stats(turn)
        time.sleep(0.3)
    finally:
        recording = stop_recording(recorder, path)

    total = sum(len(s) for s in sentences)
    assert stats.bytes == total * 2 and stats.underruns == 0

    # every sentence is in the recording, whole (its last word included), nearly sample-exact
    placed = [locate(recording, sentence) for sentence in sentences]
    for (offset, correlation), sentence in zip(placed, sentences, strict=True):
        assert correlation > 0.95, f"sentence at {offset} correlates only {correlation:.3f}"
        assert offset + len(sentence) <= len(recording)

    # in order, and the seam between sentences adds no gap longer than one device buffer
    for (offset, _), (following, _), sentence in zip(placed, placed[1:], sentences, strict=False):
        gap = following - (offset + len(sentence))
        assert 0 <= gap <= FRAMES_PER_BUFFER, f"{gap} samples of gap between sentences"

    # the whole turn: heard for as long as it was synthesized, no more, no less
    heard = np.flatnonzero(np.abs(recording) > 1e-3)
    spoken = np.flatnonzero(np.abs(np.concatenate(sentences)) > 1e-3)
    heard_span = heard[-1] - heard[0]
    spoken_span = spoken[-1] - spoken[0]
    assert abs(heard_span - spoken_span) <= FRAMES_PER_BUFFER


def test_interrupt_silences_the_device_within_one_device_buffer(
    pulse: Pulse, tmp_path: Path
) -> None:
    fmt = PcmFormat(pulse.rate)
    n = np.arange(3 * fmt.sample_rate)
    pcm = (8000 * np.sin(2 * np.pi * 440 * n / fmt.sample_rate)).astype("<i2").tobytes()
    path = tmp_path / "monitor.raw"
    recorder = pulse.record(path)
    sink = PyAudioSink("pulse", frames_per_buffer=FRAMES_PER_BUFFER)
    try:
        time.sleep(0.5)
        with AudioPipeline([sink], fmt) as pipe:
            turn = pipe.begin_turn()
            for start in range(0, len(pcm), 4410):
                pipe.receive(turn, pcm[start : start + 4410])
            for _ in range(100):  # until the device plays: at most 5 s
                if sink.run_started_at is not None:
                    break
                time.sleep(0.05)
            assert sink.run_started_at is not None
            time.sleep(0.5)
            pipe.interrupt()
            interrupted_at = time.monotonic()
            pipe.receive(turn, pcm)  # late audio of the cancelled turn: never played
            pipe.end_turn(turn)
            pipe.wait_turn_done(turn, timeout=1)
            assert pipe.turn_stats(turn).interrupted
            time.sleep(0.5)
        played = interrupted_at - sink.run_started_at
    finally:
        recording = stop_recording(recorder, path)

    heard = np.flatnonzero(np.abs(recording) > 1e-3)
    heard_seconds = (heard[-1] - heard[0]) / fmt.sample_rate
    # the device plays out what it held (one device buffer, plus the period being written)
    device_buffer = (sink.device_buffer_frames + FRAMES_PER_BUFFER) / fmt.sample_rate
    assert 0.3 < heard_seconds <= played + device_buffer < 1.5


def test_a_bridge_turn_is_heard_whole(pulse: Pulse, tmp_path: Path) -> None:
    """A VoiceBridge turn (embedded espeak server) through PyAudio: the recording is the
    synthesized audio, at one offset (a gap anywhere would shift what follows), and whole."""
    from voicebridge.bridge import VoiceBridge

    synthesized = io.BytesIO()
    path = tmp_path / "monitor.raw"
    recorder = pulse.record(path)
    try:
        time.sleep(2.0)  # let the recorder settle before the first write
        sinks = [
            PyAudioSink("pulse", frames_per_buffer=FRAMES_PER_BUFFER),
            PcmFileSink(synthesized),
        ]
        with VoiceBridge(sinks=sinks, sample_rate=pulse.rate, engine="espeak") as bridge:
            metrics = bridge.speak(
                iter(["Hello there. This is ", "a bridge turn, spoken ", "as it is written."])
            )
        time.sleep(0.3)
    finally:
        recording = stop_recording(recorder, path)

    spoken = np.frombuffer(synthesized.getvalue(), dtype="<i2").astype(np.float64) / 32768
    assert len(spoken) > pulse.rate  # more than a second of speech
    assert metrics.audio_seconds == pytest.approx(len(spoken) / pulse.rate, abs=0.01)
    offset, correlation = locate(recording, spoken)
    assert correlation > 0.95
    assert offset + len(spoken) <= len(recording)  # the last word was played out
