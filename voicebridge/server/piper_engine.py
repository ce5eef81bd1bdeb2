"""Engine ``"piper"``: a neural Piper voice for its own language, espeak-ng for the others.

Needs the ``piper`` extra (``pip install 'voicebridge[piper]'``, which brings ``piper-tts`` and
onnxruntime) and a Piper voice file chosen by the user (``PATH.onnx`` with ``PATH.onnx.json``
beside it); no voice ships with voicebridge. Requests whose language belongs to the voice's
family (``en`` for an en_US voice) go to Piper; the rest (Mandarin...) to the fallback engine.

Piper returns one chunk per sentence (measured: about 0.2 CPU-s per audio second on one
thread, ~330 MB while synthesizing) and no word alignment from stock voices, so word times are
proportional to the characters of the sentence. Its generator noise makes replayed audio differ
from the first synthesis (like the real service, unlike espeak-ng and the tone and text engines).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError
from .encoding import SERVER_FORMATS
from .engines import Engine, SpeechItem, SpeechRequest, SpeechStream

__all__ = ["PiperEngine", "load_piper_voice"]

_INSTALL_HINT = "engine 'piper' needs the piper extra: pip install 'voicebridge[piper]'"


def _family(language: str) -> str:
    return language.lower().replace("_", "-").split("-")[0]


def load_piper_voice(path: Path, threads: int) -> Any:
    """A ``piper.PiperVoice`` for ``path``; ConfigurationError (one line) when it cannot be."""
    try:
        import onnxruntime  # type: ignore[import-untyped,import-not-found,unused-ignore]
        from piper import PiperVoice  # type: ignore[import-not-found,unused-ignore]
        from piper.config import PiperConfig  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise ConfigurationError(_INSTALL_HINT) from None
    config_path = Path(f"{path}.json")
    if not path.is_file() or not config_path.is_file():
        raise ConfigurationError(f"no Piper voice at {path} (needs {path.name} and "
                                 f"{config_path.name})")  # fmt: skip
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        return PiperVoice(config=PiperConfig.from_dict(config), session=session)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:  # onnxruntime raises these
        raise ConfigurationError(f"cannot load the Piper voice {path}: {exc}") from None


class PiperEngine:
    """``voice_path`` is a Piper ``.onnx`` voice; ``fallback`` (owned by the caller) speaks the
    languages the voice cannot. ``threads`` is onnxruntime's thread count per synthesis."""

    formats = SERVER_FORMATS

    def __init__(self, voice_path: str | Path, fallback: Engine, *, threads: int = 1) -> None:
        self._voice = load_piper_voice(Path(voice_path), threads)
        self._fallback = fallback
        self.sample_rate: int = self._voice.config.sample_rate
        self.language: str = self._voice.config.espeak_voice

    def speaks(self, language: str) -> bool:
        """Whether a request in this espeak-ng ``language`` goes to the Piper voice."""
        return _family(language) == _family(self.language)

    def synthesize(self, request: SpeechRequest) -> SpeechStream:
        if not self.speaks(request.language):
            return self._fallback.synthesize(request)
        return SpeechStream(self.sample_rate, self._items(request))

    def _items(self, request: SpeechRequest) -> Iterator[SpeechItem]:
        from piper.config import SynthesisConfig  # type: ignore[import-not-found,unused-ignore]

        config = SynthesisConfig(length_scale=1.0 / request.rate, volume=request.volume / 100)
        for chunk in self._voice.synthesize(request.text, syn_config=config):
            data = chunk.audio_int16_bytes
            if data:
                yield data

    def close(self) -> None:
        """The voice is freed with the engine; the fallback belongs to the caller."""
