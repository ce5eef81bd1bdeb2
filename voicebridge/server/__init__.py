"""Local CosyVoice-compatible server: listener, connections, the service machine, engines, faults.

Any client of the real service works against it by changing only the URL::

    with ServerThread(engine="espeak") as server:     # or LocalServer in asyncio code
        SpeechSynthesizer(..., url=server.url)       # ws://127.0.0.1:PORT/api-ws/v1/inference

Engines: ``"espeak"`` (default), ``"tone"``, ``"text"`` (audio that encodes its text; decode it
with :func:`decode_text_audio`), ``"piper"`` (``piper_voice=PATH.onnx``). Tests inject faults with
``FaultPlan`` and read what was synthesized from ``server.transcripts``.

Modules: ``service`` (the sans-I/O machine) with ``task_options``, ``sentences``,
``speech_text`` and ``words``; ``listener`` (handshake, auth), ``connection`` (one socket),
``scheduler`` (the engine shared round robin), ``lifecycle`` (open and share engines), ``thread``
(ServerThread, serve); engines in ``engines``, ``espeak``, ``text_engine``, ``piper_engine``.
"""

from __future__ import annotations

from .connection import Transcript
from .engines import Engine, SpeechRequest, SpeechStream, ToneEngine
from .espeak import EspeakEngine
from .faults import FaultKind, FaultPlan, FaultPoint, Trigger
from .lifecycle import ENGINE_NAMES
from .listener import PATH, LocalServer
from .service import ServerLimits, ServerProtocol
from .text_engine import DecodedText, TextEngine, decode_text_audio
from .thread import ServerThread, serve
from .words import WordReporting

__all__ = [
    "ENGINE_NAMES",
    "PATH",
    "DecodedText",
    "Engine",
    "EspeakEngine",
    "FaultKind",
    "FaultPlan",
    "FaultPoint",
    "LocalServer",
    "ServerLimits",
    "ServerProtocol",
    "ServerThread",
    "SpeechRequest",
    "SpeechStream",
    "TextEngine",
    "ToneEngine",
    "Transcript",
    "Trigger",
    "WordReporting",
    "decode_text_audio",
    "serve",
]
