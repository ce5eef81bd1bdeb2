"""Engine lifecycle: open an engine by name, share the heavy ones, close what was opened.

espeak-ng is process-wide state (one engine per process, shared through
:meth:`EspeakEngine.acquire`); a Piper voice takes ~330 MB, so one is loaded per voice file and
shared by every server of the process. An engine passed in as an object belongs to the caller and
is never closed here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from ..errors import ConfigurationError
from .engines import Engine, ToneEngine
from .espeak import EspeakEngine
from .piper_engine import PiperEngine
from .text_engine import TextEngine

__all__ = ["ENGINE_NAMES", "check_engine_choice", "open_engine"]

ENGINE_NAMES = ("espeak", "tone", "text", "piper")
"""espeak: offline speech (default); tone: a sine per character (fast, for load runs); text:
audio that encodes its text (for exact word counts); piper: a neural voice file + espeak."""

_piper_lock = threading.Lock()
_piper_voices: dict[Path, tuple[PiperEngine, EspeakEngine, int]] = {}  # voice, fallback, holders


def check_engine_choice(engine: str | Engine, piper_voice: str | Path | None) -> None:
    """Raise :class:`ConfigurationError` for a choice that cannot work (before any loading)."""
    if isinstance(engine, str) and engine not in ENGINE_NAMES:
        names = ", ".join(repr(n) for n in ENGINE_NAMES)
        raise ConfigurationError(f"unknown engine {engine!r} (expected one of {names})")
    if engine == "piper" and piper_voice is None:
        raise ConfigurationError("engine 'piper' needs piper_voice=PATH.onnx (a Piper voice file)")
    if engine != "piper" and piper_voice is not None:
        raise ConfigurationError("piper_voice is only used with engine='piper'")
    if piper_voice is not None and not Path(piper_voice).is_file():
        raise ConfigurationError(f"no Piper voice file at {piper_voice}")


def open_engine(
    engine: str | Engine, piper_voice: str | Path | None = None
) -> tuple[Engine, Callable[[], None]]:
    """The engine for a choice checked by :func:`check_engine_choice`, and how to close it."""
    if engine == "tone":
        tone = ToneEngine()
        return tone, tone.close
    if engine == "text":
        text = TextEngine()
        return text, text.close
    if engine == "espeak":
        espeak = EspeakEngine.acquire()
        return espeak, espeak.release
    if engine == "piper":
        assert piper_voice is not None
        return _acquire_piper(Path(piper_voice).resolve())
    assert not isinstance(engine, str)
    return engine, lambda: None


def _acquire_piper(path: Path) -> tuple[Engine, Callable[[], None]]:
    with _piper_lock:
        if path in _piper_voices:
            piper, espeak, users = _piper_voices[path]
        else:
            espeak, users = EspeakEngine.acquire(), 0
            try:
                piper = PiperEngine(path, espeak)
            except BaseException:
                espeak.release()
                raise
        _piper_voices[path] = (piper, espeak, users + 1)

    def release() -> None:
        with _piper_lock:
            piper, espeak, users = _piper_voices.pop(path)
            if users > 1:
                _piper_voices[path] = (piper, espeak, users - 1)
                return
        piper.close()
        espeak.release()

    return piper, release
