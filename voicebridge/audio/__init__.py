"""The audio path: a janus queue from the WebSocket receive thread to sinks on other threads."""

from __future__ import annotations

from .callback import CallbackSink
from .files import PcmFileSink, WavFileSink
from .format import PcmFormat
from .pipeline import AudioPipeline, TurnAudioStats
from .sink import MeteredSink, NullSink, Sink

__all__ = [
    "AudioPipeline",
    "CallbackSink",
    "MeteredSink",
    "NullSink",
    "PcmFileSink",
    "PcmFormat",
    "Sink",
    "TurnAudioStats",
    "WavFileSink",
]
