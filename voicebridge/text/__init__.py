"""Text side of the bridge: fragmenting, word segmentation, speakable cleanup and the service's
character rules."""

from __future__ import annotations

from .billing import MAX_MESSAGE_CHARACTERS, MAX_TASK_CHARACTERS, count_characters
from .fragmenter import Boundary, Fragment, Fragmenter
from .segmenter import IcuSegmenter, Segmenter, SyllableSegmenter, default_segmenter
from .speakable import SpeakableFilter, speakable

__all__ = [
    "MAX_MESSAGE_CHARACTERS",
    "MAX_TASK_CHARACTERS",
    "Boundary",
    "Fragment",
    "Fragmenter",
    "IcuSegmenter",
    "Segmenter",
    "SpeakableFilter",
    "SyllableSegmenter",
    "count_characters",
    "default_segmenter",
    "speakable",
]
