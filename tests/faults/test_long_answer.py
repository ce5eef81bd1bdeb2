"""A 10-minute answer is heard in full while playback paces sending (issue 10).

No wait in the bridge may have a fixed deadline: text is held back while the audio owed exceeds
``max_buffered_audio``, so the turn lasts as long as its playback. The sink is a fake speaker
that plays at 50 times real time (10 minutes in 12 s); the session's timers are shortened so
that, at that speed, every wait that is not bounded by progress would fire.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace

from tests.fault_tools.listening import FakeSpeaker, heard_words, text_audio
from tests.fault_tools.scenarios import QUICK, SAMPLE_RATE, long_answer, tokens
from voicebridge import VoiceBridge
from voicebridge.server import ServerThread

SPEED = 50.0  # the fake speaker plays this many times faster than real time
SECONDS_PER_CHARACTER = 0.05  # the text engine's pace (long_answer's too)

SETTINGS = replace(
    QUICK, idle_flush_after=0.1, rollover_after=0.4, max_buffered_audio=30.0,
    progress_timeout=2.0,
)  # fmt: skip


def test_a_ten_minute_answer_is_heard_in_full_while_playback_paces_sending(
    text_server: ServerThread,
) -> None:
    text = long_answer(10)
    speaker = FakeSpeaker(SPEED, slice_seconds=1.0)
    ahead: list[float] = []  # audio seconds sent but not yet played, sampled
    done = threading.Event()
    with VoiceBridge(
        url=text_server.url, sinks=[speaker], settings=SETTINGS, sample_rate=SAMPLE_RATE
    ) as bridge:

        def sample() -> None:
            while not done.wait(0.05):
                progress = bridge.progress
                if progress is not None:
                    played = len(speaker.played) / (2 * SAMPLE_RATE)
                    ahead.append(progress.characters_sent * SECONDS_PER_CHARACTER - played)

        sampler = threading.Thread(target=sample)
        sampler.start()
        started = time.monotonic()
        try:
            metrics = bridge.speak(tokens(text))
        finally:
            done.set()
            sampler.join(5)
        seconds = time.monotonic() - started
    played = bytes(speaker.played)
    assert metrics.audio_seconds >= 600
    assert played == text_audio(text, SAMPLE_RATE), heard_words(text, speaker.text)
    assert metrics.text == text
    assert seconds >= metrics.audio_seconds / SPEED, "the speaker paced the turn"
    # Backpressure: never much more than max_buffered_audio ahead of the speaker (one fragment
    # and the first sentence's flush may go over it), against 600 s unpaced.
    assert max(ahead) < 2 * SETTINGS.max_buffered_audio, max(ahead)
    assert len(metrics.task_ids) > 1, "the held text came back on new tasks (idle rollovers)"
