"""What the listener heard, to the word: a turn interrupted while it plays through PyAudio into a
PulseAudio null sink, recorded from its monitor, against ``TurnMetrics.heard_text``."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import numpy as np

from tests.audio.pulse import Pulse, stop_recording
from tests.audio.test_audio_playback import locate
from voicebridge.audio import PcmFileSink, PyAudioSink
from voicebridge.bridge import VoiceBridge
from voicebridge.server import ServerThread

TEXT = (
    "One morning the bridge began to speak. It read every word as the model wrote it. "
    "Nobody had to wait for the end of a sentence. The listener heard the answer grow. "
    "Then somebody pressed stop, and the voice ended at once."
)
PLAY_BEFORE_STOP = 3.0  # seconds of playback before the barge-in


def test_heard_text_is_what_the_recording_holds(
    pulse: Pulse, espeak_server: ServerThread, tmp_path: Path
) -> None:
    path = tmp_path / "monitor.raw"
    recorder = pulse.record(path)
    delivered = io.BytesIO()
    try:
        time.sleep(2.0)  # let the recorder settle before the first write
        sinks = [PyAudioSink("pulse"), PcmFileSink(delivered)]
        with VoiceBridge(url=espeak_server.url, sinks=sinks, sample_rate=pulse.rate) as bridge:

            def barge_in() -> None:
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    progress = bridge.progress
                    if progress is not None and progress.audio_seconds > 0:
                        break
                    time.sleep(0.01)
                time.sleep(PLAY_BEFORE_STOP)
                bridge.interrupt()

            stopper = threading.Thread(target=barge_in)
            stopper.start()
            metrics = bridge.speak(TEXT)
            stopper.join(10)
        time.sleep(0.3)
    finally:
        recording = stop_recording(recorder, path)
    assert metrics.interrupted and metrics.words
    audio = np.frombuffer(delivered.getvalue(), dtype="<i2").astype(np.float64) / 32768
    offset, score = locate(recording, audio[: pulse.rate // 2])
    assert score > 0.9, "the turn's first half second is in the recording"
    played = recording[offset:]
    loud = np.flatnonzero(np.abs(played) > 0.05 * np.abs(audio).max())
    played_seconds = (loud[-1] + 1) / pulse.rate
    assert 1.0 < played_seconds < metrics.audio_seconds, "stopped in the middle of the turn"
    expected = sum(w.end <= played_seconds for w in metrics.words)
    heard = len(metrics.heard_text.split())
    assert abs(heard - expected) <= 1, (metrics.heard_text, played_seconds)
    assert TEXT.startswith(metrics.heard_text) and len(metrics.heard_text) < len(TEXT)
