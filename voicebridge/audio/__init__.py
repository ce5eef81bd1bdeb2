"""The audio path: a janus queue from the WebSocket receive thread to sinks on other threads."""

from __future__ import annotations

from .callback import CallbackSink
from .devices import OutputDevice, list_output_devices
from .files import PcmFileSink, WavFileSink
from .format import PcmFormat
from .iterator import IteratorSink
from .pipeline import AudioPipeline, TurnAudioStats
from .player import PyAudioSink
from .sink import MeteredSink, NullSink, Sink

__all__ = [
    "AudioPipeline",
    "CallbackSink",
    "IteratorSink",
    "MeteredSink",
    "NullSink",
    "OutputDevice",
    "PcmFileSink",
    "PcmFormat",
    "PyAudioSink",
    "Sink",
    "TurnAudioStats",
    "WavFileSink",
    "list_output_devices",
]
