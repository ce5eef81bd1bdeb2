"""Local CosyVoice-compatible server: websockets app, speech engines, voices, fault injection."""

from __future__ import annotations

from .app import PATH, LocalServer, ServerThread, Transcript, serve
from .engines import Engine, EspeakEngine, ToneEngine
from .faults import FaultKind, FaultPlan, FaultPoint, Trigger

__all__ = [
    "PATH",
    "Engine",
    "EspeakEngine",
    "FaultKind",
    "FaultPlan",
    "FaultPoint",
    "LocalServer",
    "ServerThread",
    "ToneEngine",
    "Transcript",
    "Trigger",
    "serve",
]
