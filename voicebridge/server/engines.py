"""Speech engines of the local server: espeak-ng (offline speech) and a tone (tests, load runs).

An engine turns one sentence into 16-bit little-endian mono PCM at its ``sample_rate``, as an
iterator of several chunks so audio can stream while the sentence is still being made. Iterators
block (call them from a worker thread, never on the event loop) and every wait in them is bounded.
"""

from __future__ import annotations

import ctypes
import math
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ..errors import ConfigurationError, SynthesisTimeout
from ..text.billing import count_characters

__all__ = ["Engine", "EspeakEngine", "ToneEngine"]


class Engine(Protocol):
    """What the server needs from a speech engine."""

    @property
    def sample_rate(self) -> int:
        """Hz of the PCM that :meth:`synthesize` yields."""
        ...

    def synthesize(
        self, text: str, voice_language: str, rate: float, pitch: float, volume: int
    ) -> Iterator[bytes]:
        """PCM chunks for ``text``. ``rate``/``pitch`` are factors (0.5-2.0, 1 = normal),
        ``volume`` 0-100 (50 = normal), ``voice_language`` an espeak-ng language (cmn, en...).
        Closing the iterator (``close()``, when it has one) abandons the rest of the sentence."""
        ...

    def close(self) -> None:
        """Release resources and join threads; idempotent."""
        ...


# --------------------------------------------------------------------------- tone


class ToneEngine:
    """A deterministic sine tone (``frequency=0``: silence) lasting ``seconds_per_character`` per
    billed character (CJK = 2) divided by ``rate``; pitch scales the frequency, volume the level."""

    def __init__(
        self,
        *,
        sample_rate: int = 22050,
        frequency: float = 440.0,
        seconds_per_character: float = 0.06,
        chunk_seconds: float = 0.1,
    ) -> None:
        self.sample_rate = sample_rate
        self.frequency = frequency
        self.seconds_per_character = seconds_per_character
        self._chunk = max(1, int(sample_rate * chunk_seconds))

    def synthesize(
        self, text: str, voice_language: str, rate: float, pitch: float, volume: int
    ) -> Iterator[bytes]:
        seconds = count_characters(text) * self.seconds_per_character / rate
        total = int(seconds * self.sample_rate)
        omega = 2 * math.pi * self.frequency * pitch / self.sample_rate
        amplitude = 32767 * 0.5 * volume / 100
        for start in range(0, total, self._chunk):
            n = np.arange(start, min(start + self._chunk, total))
            yield (amplitude * np.sin(omega * n)).astype("<i2").tobytes()

    def close(self) -> None:
        """Nothing to release."""


# --------------------------------------------------------------------------- espeak-ng

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_CHARS_UTF8 = 1
_ENDPAUSE = 0x1000
_POS_CHARACTER = 1
_PARAM_RATE, _PARAM_VOLUME, _PARAM_PITCH = 1, 2, 3
_NORMAL_WPM = 175  # espeak-ng's default speaking rate, words per minute
_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)
_END = b""  # end of a sentence in a request's chunk queue (real chunks are never empty)


@dataclass
class _Request:
    text: str
    language: str
    rate: float
    pitch: float
    volume: int
    chunks: queue.Queue[bytes | BaseException] = field(default_factory=queue.Queue)
    cancelled: threading.Event = field(default_factory=threading.Event)


class _EspeakStream(Iterator[bytes]):
    """The consumer's side of one request; ``close()`` tells the engine thread to abort it."""

    def __init__(self, request: _Request, timeout: float) -> None:
        self._request = request
        self._timeout = timeout
        self._done = False

    def __next__(self) -> bytes:
        if self._done:
            raise StopIteration
        try:
            item = self._request.chunks.get(timeout=self._timeout)
        except queue.Empty:
            self.close()
            raise SynthesisTimeout(f"espeak-ng produced nothing for {self._timeout} s") from None
        if isinstance(item, BaseException):
            self.close()
            raise item
        if item == _END:
            self._done = True
            raise StopIteration
        return item

    def close(self) -> None:
        self._done = True
        self._request.cancelled.set()


class EspeakEngine:
    """espeak-ng through ctypes, from the ``espeakng_loader`` wheel (library and voice data).

    espeak-ng is not thread-safe, so every ``espeak_*`` call happens on one dedicated thread that
    takes requests from a bounded queue; ``synthesize`` may be called from any thread. The library
    is process-wide state: one engine at a time per process (share it with :meth:`acquire`).
    """

    sample_rate = 22050
    _lock = threading.Lock()
    _running: EspeakEngine | None = None  # the process's engine, while its thread lives
    _users = 0  # holders of the shared engine (acquire/release)

    @classmethod
    def acquire(cls) -> EspeakEngine:
        """The process's shared engine, started on first use; give it back with :meth:`release`."""
        with cls._lock:
            engine = cls._running or cls()
            cls._users += 1
            return engine

    def release(self) -> None:
        """Give back a shared engine; the last holder closes it."""
        with EspeakEngine._lock:
            EspeakEngine._users -= 1
            last = EspeakEngine._users == 0
        if last:
            self.close()

    def __init__(self, *, queue_size: int = 64, chunk_ms: int = 200, timeout: float = 10.0) -> None:
        if EspeakEngine._running is not None:
            raise ConfigurationError("espeak-ng already runs in this process: use acquire()")
        EspeakEngine._running = self
        self._requests: queue.Queue[_Request | None] = queue.Queue(maxsize=queue_size)
        self._timeout = timeout
        self._current: _Request | None = None
        self._callback = _SynthCallback(self._on_audio)  # kept alive as long as the engine
        started: queue.Queue[BaseException | None] = queue.Queue()
        self._thread = threading.Thread(
            target=self._run, args=(chunk_ms, started), name="espeak-ng", daemon=True
        )
        self._thread.start()
        try:
            error = started.get(timeout=timeout)
        except queue.Empty:
            error = SynthesisTimeout(f"espeak-ng did not start within {timeout} s")
        if error is not None:
            self.close()
            raise error

    def synthesize(
        self, text: str, voice_language: str, rate: float, pitch: float, volume: int
    ) -> Iterator[bytes]:
        if not self._thread.is_alive():
            raise ConfigurationError("the espeak-ng engine is closed")
        request = _Request(text, voice_language, rate, pitch, volume)
        try:
            self._requests.put(request, timeout=self._timeout)
        except queue.Full:
            raise SynthesisTimeout(f"espeak-ng queue still full after {self._timeout} s") from None
        return _EspeakStream(request, self._timeout)

    def close(self) -> None:
        if self._thread.is_alive():
            self._requests.put(None, timeout=self._timeout)
            self._thread.join(self._timeout)
        if not self._thread.is_alive() and EspeakEngine._running is self:
            EspeakEngine._running = None

    # ---- everything below runs on the espeak-ng thread only

    def _run(self, chunk_ms: int, started: queue.Queue[BaseException | None]) -> None:
        try:
            lib = _load(chunk_ms)
        except (OSError, ImportError, ConfigurationError) as exc:
            started.put(exc)
            return
        lib.espeak_SetSynthCallback(self._callback)
        started.put(None)
        voice: bytes | None = None
        try:
            while (request := self._requests.get()) is not None:
                if request.cancelled.is_set():
                    continue
                if voice != request.language.encode():
                    voice = request.language.encode()
                    if lib.espeak_SetVoiceByName(voice) != 0:
                        request.chunks.put(ConfigurationError(f"no espeak-ng voice {voice!r}"))
                        voice = None
                        continue
                lib.espeak_SetParameter(_PARAM_RATE, round(_NORMAL_WPM * request.rate), 0)
                lib.espeak_SetParameter(_PARAM_PITCH, min(100, round(50 * request.pitch)), 0)
                lib.espeak_SetParameter(_PARAM_VOLUME, request.volume * 2, 0)
                data = request.text.encode()
                self._current = request
                lib.espeak_Synth(
                    data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8 | _ENDPAUSE,
                    None, None,
                )  # fmt: skip
                self._current = None
                request.chunks.put(_END)
        finally:
            lib.espeak_Terminate()

    def _on_audio(self, wav: ctypes._Pointer[ctypes.c_short], count: int, events: int) -> int:
        request = self._current
        if request is None or request.cancelled.is_set():
            return 1  # abort this synthesis
        if wav and count > 0:
            request.chunks.put(ctypes.string_at(wav, count * 2))
        return 0


def _load(chunk_ms: int) -> ctypes.CDLL:
    import espeakng_loader

    lib = ctypes.CDLL(espeakng_loader.get_library_path())
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_Synth.argtypes = [
        ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
        ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
    ]  # fmt: skip
    data_path = espeakng_loader.get_data_path().encode()
    rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, chunk_ms, data_path, 0)
    if rate != EspeakEngine.sample_rate:
        raise ConfigurationError(f"espeak-ng initialised at {rate} Hz, expected 22050")
    return lib
