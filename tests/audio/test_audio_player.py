"""PyAudioSink through real PyAudio into a private PulseAudio null sink (see conftest.pulse)."""

from __future__ import annotations

import sys
import time

import numpy as np
import pytest

from tests.audio.pulse import Pulse
from voicebridge.audio import AudioPipeline, PcmFormat, PyAudioSink, list_output_devices
from voicebridge.audio.devices import open_pyaudio, resolve_output_device
from voicebridge.errors import AudioError, SynthesisTimeout

FMT = PcmFormat(22050)
CHUNK = 2205 * 2  # 0.1 s


def tone(seconds: float, frequency: float = 440.0) -> bytes:
    n = np.arange(int(seconds * FMT.sample_rate))
    return (8000 * np.sin(2 * np.pi * frequency * n / FMT.sample_rate)).astype("<i2").tobytes()


def feed(pipe: AudioPipeline, turn: int, audio: bytes) -> None:
    for start in range(0, len(audio), CHUNK):
        pipe.receive(turn, audio[start : start + CHUNK])


def test_without_pyaudio_the_error_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyaudio", None)  # makes `import pyaudio` fail
    with pytest.raises(AudioError, match="PyAudio is not installed") as caught:
        list_output_devices()
    assert "\n" not in str(caught.value)
    with pytest.raises(AudioError, match="PyAudio is not installed"):
        AudioPipeline([PyAudioSink()], FMT)


def test_devices_by_index_and_name(pulse: Pulse) -> None:
    devices = list_output_devices()
    named = [d for d in devices if d.name == "pulse"]
    assert named and named[0].max_output_channels > 0
    assert str(named[0]).split()[:2] == [str(named[0].index), "pulse"]
    pa = open_pyaudio()
    try:
        assert resolve_output_device(pa, "pulse") == named[0]
        assert resolve_output_device(pa, named[0].index) == named[0]
        assert resolve_output_device(pa, "PULS") == named[0]  # unique substring, any case
        with pytest.raises(AudioError, match="no output device matches") as caught:
            resolve_output_device(pa, "no such speaker")
        assert "\n" not in str(caught.value)
        with pytest.raises(AudioError, match="no output device with index"):
            resolve_output_device(pa, 9999)
    finally:
        pa.terminate()


def test_a_turn_plays_in_real_time_and_drains(pulse: Pulse) -> None:
    sink = PyAudioSink("pulse", frames_per_buffer=512)
    with AudioPipeline([sink], FMT) as pipe:
        turn = pipe.begin_turn()
        started = time.monotonic()
        feed(pipe, turn, tone(1.0))
        pipe.end_turn(turn)
        time.sleep(0.2)
        early = pipe.buffered_seconds
        time.sleep(0.3)
        later = pipe.buffered_seconds
        pipe.wait_turn_done(turn, timeout=10)
        elapsed = time.monotonic() - started
        stats = pipe.turn_stats(turn)
        assert pipe.buffered_seconds == 0
    assert 0.5 < early <= 1.0  # received, mostly not yet heard
    assert later < early  # and it goes down as the device plays
    assert elapsed > 0.9  # drain waited for the device, not for the queue
    assert stats.audio_seconds == pytest.approx(1.0, abs=0.01)
    assert stats.underruns == 0


def test_a_starved_device_counts_one_underrun(pulse: Pulse) -> None:
    with AudioPipeline([PyAudioSink("pulse")], FMT) as pipe:
        turn = pipe.begin_turn()
        feed(pipe, turn, tone(0.3))
        time.sleep(1.0)  # the server is late: the player fills the gap with silence
        feed(pipe, turn, tone(0.3))
        pipe.end_turn(turn)
        pipe.wait_turn_done(turn, timeout=10)
        assert pipe.turn_stats(turn).underruns == 1

        smooth = pipe.begin_turn()
        feed(pipe, smooth, tone(0.5))
        pipe.end_turn(smooth)
        pipe.wait_turn_done(smooth, timeout=10)
        assert pipe.turn_stats(smooth).underruns == 0

        late_end = pipe.begin_turn()  # silence after the last sound is not a gap between sounds
        feed(pipe, late_end, tone(0.3))
        time.sleep(0.8)
        pipe.end_turn(late_end)
        pipe.wait_turn_done(late_end, timeout=10)
        assert pipe.turn_stats(late_end).underruns == 0


def test_pause_holds_the_audio_and_resume_plays_it(pulse: Pulse) -> None:
    sink = PyAudioSink("pulse")
    with AudioPipeline([sink], FMT) as pipe:
        turn = pipe.begin_turn()
        feed(pipe, turn, tone(1.0))
        pipe.end_turn(turn)
        time.sleep(0.2)
        sink.pause()
        time.sleep(0.3)  # the device stops within one device buffer
        held = pipe.buffered_seconds
        time.sleep(0.5)
        assert pipe.buffered_seconds == held > 0.3  # nothing plays while paused
        with pytest.raises(SynthesisTimeout):
            pipe.wait_turn_done(turn, timeout=0.2)
        sink.resume()
        pipe.wait_turn_done(turn, timeout=10)
        assert pipe.turn_stats(turn).underruns == 0


def test_missing_device_fails_in_one_line(pulse: Pulse) -> None:
    with pytest.raises(AudioError, match="no output device") as caught:
        AudioPipeline([PyAudioSink("no such speaker")], FMT)
    assert "\n" not in str(caught.value)
