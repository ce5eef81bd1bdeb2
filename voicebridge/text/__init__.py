"""Text side of the bridge: fragmenting, speakable cleanup and the service's character rules."""

from __future__ import annotations

from .billing import MAX_MESSAGE_CHARACTERS, MAX_TASK_CHARACTERS, count_characters
from .fragmenter import Fragment, Fragmenter
from .speakable import SpeakableFilter, speakable

__all__ = [
    "MAX_MESSAGE_CHARACTERS",
    "MAX_TASK_CHARACTERS",
    "Fragment",
    "Fragmenter",
    "SpeakableFilter",
    "count_characters",
    "speakable",
]
