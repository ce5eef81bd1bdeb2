"""Backpressure on the text side: how much audio is owed, and whether to hold text back. Pure.

Audio owed = audio received and not yet played (the pipeline says) + the audio expected for text
sent and not yet spoken. The second part is an estimate: seconds per billed character, starting
from ``audio_per_character`` and refined by every spoken sentence (the engine's real pace, per
language as it comes). Text is held while the owed audio reaches ``max_buffered_audio``.
"""

from __future__ import annotations

from .settings import SessionSettings

__all__ = ["Pace"]

_LEARN = 0.2  # weight of each spoken sentence in the estimate
_MIN_SENTENCE = 10  # billed characters a sentence needs to teach the estimate anything
_MIN_RECHECK = 0.25  # seconds between checks while playback is not moving


class Pace:
    def __init__(self, settings: SessionSettings) -> None:
        self._limit = settings.max_buffered_audio
        self.seconds_per_character = settings.audio_per_character

    def learn(self, billed: int, seconds: float) -> None:
        """A sentence of ``billed`` characters was spoken in ``seconds`` of audio."""
        if billed >= _MIN_SENTENCE and seconds > 0:
            estimate = self.seconds_per_character
            self.seconds_per_character = estimate + _LEARN * (seconds / billed - estimate)

    def owed(self, buffered: float, unspoken_billed: int) -> float:
        return buffered + unspoken_billed * self.seconds_per_character

    def held(self, buffered: float, unspoken_billed: int) -> bool:
        return self.owed(buffered, unspoken_billed) >= self._limit

    def recheck_after(self, buffered: float, unspoken_billed: int) -> float:
        """Seconds until playback (at real time) has worked the excess off."""
        return max(_MIN_RECHECK, self.owed(buffered, unspoken_billed) - self._limit)
