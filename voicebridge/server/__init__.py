"""Local CosyVoice-compatible server: websockets app, speech engines, voices, fault injection.

Any client of the real service works against it by changing only the URL::

    with ServerThread(engine="espeak") as server:     # or LocalServer in asyncio code
        SpeechSynthesizer(..., url=server.url)       # ws://127.0.0.1:PORT/api-ws/v1/inference

Tests inject faults with ``FaultPlan`` and read what was synthesized from ``server.transcripts``.
"""

from __future__ import annotations

from .app import PATH, LocalServer, ServerThread, Transcript, serve
from .engines import Engine, EspeakEngine, ToneEngine
from .faults import FaultKind, FaultPlan, FaultPoint, Trigger
from .service import ServerLimits, ServerProtocol

__all__ = [
    "PATH",
    "Engine",
    "EspeakEngine",
    "FaultKind",
    "FaultPlan",
    "FaultPoint",
    "LocalServer",
    "ServerLimits",
    "ServerProtocol",
    "ServerThread",
    "ToneEngine",
    "Transcript",
    "Trigger",
    "serve",
]
