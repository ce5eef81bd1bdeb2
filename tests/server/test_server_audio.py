"""Audio: plausible speech from espeak-ng, sample rates, containers, volume/rate/pitch."""

from __future__ import annotations

import struct
from collections.abc import Callable

import numpy as np
import pytest
from wsclient import RawClient, audio_of

from voicebridge.protocol import Audio, TaskFailed, TaskFinished
from voicebridge.server import ServerThread
from voicebridge.server.encoding import SERVER_FORMATS

ENGLISH = "Hello world, this is the local speech server talking."


def samples(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float64)


def test_espeak_speaks_english_with_plausible_duration(espeak_server: ServerThread) -> None:
    with RawClient(espeak_server.url) as client:
        events = client.speak(ENGLISH, voice="loongeva_v2", sample_rate=16000)
    assert isinstance(events[-1], TaskFinished)
    audio = samples(audio_of(events))
    seconds = len(audio) / 16000
    assert 1.0 < seconds < 10.0  # about 9 words: a few seconds, not milliseconds or minutes
    assert np.sqrt(np.mean(audio**2)) > 300  # not silence
    assert sum(isinstance(e, Audio) for e in events) > 1  # streamed in several frames


def test_espeak_speaks_chinese(espeak_server: ServerThread) -> None:
    with RawClient(espeak_server.url) as client:
        events = client.speak("床前明月光，疑是地上霜。", voice="longxiaochun_v2")
    audio = samples(audio_of(events))
    assert 1.0 < len(audio) / 22050 < 10.0
    assert np.sqrt(np.mean(audio**2)) > 300


def test_espeak_rate_factor_changes_duration(espeak_server: ServerThread) -> None:
    with RawClient(espeak_server.url) as client:
        slow = len(audio_of(client.speak(ENGLISH, voice="loongeva_v2", rate=0.5)))
        fast = len(audio_of(client.speak(ENGLISH, voice="loongeva_v2", rate=2.0)))
    assert fast < 0.6 * slow


@pytest.mark.parametrize("rate", [8000, 16000, 24000, 44100, 48000])
def test_output_resampled_to_the_requested_rate(tone_server: ServerThread, rate: int) -> None:
    text = "Twenty-four characters!!"
    with RawClient(tone_server.url) as client:
        native = len(audio_of(client.speak(text, sample_rate=22050)))
        resampled = len(audio_of(client.speak(text, sample_rate=rate)))
    assert resampled / native == pytest.approx(rate / 22050, rel=0.01)


def test_resampled_tone_keeps_its_frequency(tone_server: ServerThread) -> None:
    with RawClient(tone_server.url) as client:
        audio = samples(audio_of(client.speak("a" * 50, sample_rate=8000)))
    spectrum = np.abs(np.fft.rfft(audio))
    peak_hz = np.argmax(spectrum) * 8000 / len(audio)
    assert peak_hz == pytest.approx(440, rel=0.02)  # the tone engine's 440 Hz survives


def test_wav_header_only_on_the_first_frame(tone_server: ServerThread) -> None:
    with RawClient(tone_server.url) as client:
        events = client.speak(
            "First sentence. ", "Second sentence.", format="wav", sample_rate=16000
        )
    frames = [e.data for e in events if isinstance(e, Audio)]
    assert frames[0][:4] == b"RIFF" and frames[0][8:16] == b"WAVEfmt "
    channels, rate = struct.unpack("<HI", frames[0][22:28])
    assert (channels, rate) == (1, 16000)
    assert not any(frame.startswith(b"RIFF") for frame in frames[1:])


def test_mp3_streams_mpeg_frames_or_fails_clearly(tone_server: ServerThread) -> None:
    with RawClient(tone_server.url) as client:
        events = client.speak("An mp3 task.", format="mp3", sample_rate=22050)
    if "mp3" in SERVER_FORMATS:  # the optional lameenc wheel is installed
        assert isinstance(events[-1], TaskFinished)
        data = audio_of(events)
        assert data[0] == 0xFF and data[1] & 0xE0 == 0xE0  # an MPEG audio frame sync
    else:
        assert isinstance(events[-1], TaskFailed) and "mp3" in events[-1].message


def test_opus_is_refused_with_a_clear_task_failed(tone_server: ServerThread) -> None:
    with RawClient(tone_server.url) as client:
        [failed] = client.speak("Opus.", format="opus", sample_rate=24000)
    assert isinstance(failed, TaskFailed)
    assert failed.code == "InvalidParameter" and "opus" in failed.message


def test_rate_volume_and_pitch_reach_the_engine(make_server: Callable[..., ServerThread]) -> None:
    server = make_server(engine="tone")
    text = "x" * 40
    with RawClient(server.url) as client:
        normal = samples(audio_of(client.speak(text)))
        fast = samples(audio_of(client.speak(text, rate=2.0)))
        silent = samples(audio_of(client.speak(text, volume=0)))
        loud = samples(audio_of(client.speak(text, volume=100)))
        high = samples(audio_of(client.speak(text, pitch=2.0)))
    assert len(fast) / len(normal) == pytest.approx(0.5, rel=0.02)
    assert not silent.any()
    assert np.abs(loud).max() == pytest.approx(2 * np.abs(normal).max(), rel=0.01)

    def crossings(x: np.ndarray) -> int:
        return int(np.count_nonzero(np.diff(np.signbit(x))))

    assert crossings(high) / crossings(normal) == pytest.approx(2.0, rel=0.02)
