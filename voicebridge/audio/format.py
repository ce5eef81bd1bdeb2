"""The PCM format of the audio stream: what every sink is told in ``start(fmt)``."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigurationError

__all__ = ["PcmFormat"]

_SAMPLE_WIDTHS = (1, 2, 3, 4)


@dataclass(frozen=True)
class PcmFormat:
    """Interleaved little-endian signed PCM (unsigned for 8-bit, as in WAV files).

    CosyVoice's ``format: pcm`` is 16-bit mono at the requested ``sample_rate``.
    """

    sample_rate: int
    channels: int = 1
    sample_width: int = 2  # bytes per sample

    def __post_init__(self) -> None:
        if self.sample_rate <= 0:
            raise ConfigurationError(f"sample_rate must be positive, got {self.sample_rate}")
        if self.channels <= 0:
            raise ConfigurationError(f"channels must be positive, got {self.channels}")
        if self.sample_width not in _SAMPLE_WIDTHS:
            raise ConfigurationError(f"sample_width must be one of {_SAMPLE_WIDTHS} bytes")

    @property
    def frame_size(self) -> int:
        """Bytes per frame (one sample of every channel)."""
        return self.channels * self.sample_width

    @property
    def bytes_per_second(self) -> int:
        return self.sample_rate * self.frame_size

    def seconds(self, nbytes: int) -> float:
        """Duration in seconds of ``nbytes`` of audio in this format."""
        return nbytes / self.bytes_per_second
