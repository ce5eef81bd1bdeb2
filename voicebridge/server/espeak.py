"""espeak-ng through ctypes, from the ``espeakng_loader`` wheel (library and voice data).

espeak-ng is not thread-safe, so every ``espeak_*`` call happens on one dedicated thread that
takes requests from a bounded queue. Its synth callback hands over the audio and the word events
(``espeak_EVENT``: type WORD or END, ``text_position`` counted in characters from 1, ``sample``
the position in the output), which become the stream's anchors.
"""

from __future__ import annotations

import ctypes
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from ..errors import ConfigurationError, SynthesisTimeout
from .encoding import SERVER_FORMATS
from .engines import SpeechItem, SpeechRequest, SpeechStream
from .words import Anchor

__all__ = ["EspeakEngine"]

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_CHARS_UTF8 = 1
_ENDPAUSE = 0x1000
_POS_CHARACTER = 1
_PARAM_RATE, _PARAM_VOLUME, _PARAM_PITCH = 1, 2, 3
_NORMAL_WPM = 175  # espeak-ng's default speaking rate, words per minute
_EVENT_WORD, _EVENT_END = 1, 5  # espeak_EVENT_TYPE: a word starts; a clause or sentence ends


class _Event(ctypes.Structure):
    """espeak_EVENT (speak_lib.h); an array of them ends with type 0."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    ]


_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)
_END = b""  # end of a sentence in a request's chunk queue (real chunks are never empty)


@dataclass
class _Request:
    speech: SpeechRequest
    chunks: queue.Queue[SpeechItem | BaseException] = field(default_factory=queue.Queue)
    cancelled: threading.Event = field(default_factory=threading.Event)


class _EspeakItems(Iterator[SpeechItem]):
    """The consumer's side of one request; ``close()`` tells the engine thread to abort it."""

    def __init__(self, request: _Request, timeout: float) -> None:
        self._request = request
        self._timeout = timeout
        self._done = False

    def __next__(self) -> SpeechItem:
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
        if isinstance(item, bytes) and item == _END:
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
    formats = SERVER_FORMATS
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

    def synthesize(self, request: SpeechRequest) -> SpeechStream:
        if not self._thread.is_alive():
            raise ConfigurationError("the espeak-ng engine is closed")
        return SpeechStream(self.sample_rate, self._submit(_Request(request)))

    def _submit(self, request: _Request) -> _EspeakItems:
        try:
            self._requests.put(request, timeout=self._timeout)
        except queue.Full:
            raise SynthesisTimeout(f"espeak-ng queue still full after {self._timeout} s") from None
        return _EspeakItems(request, self._timeout)

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
                speech = request.speech
                if request.cancelled.is_set():
                    continue
                if voice != speech.language.encode():
                    voice = speech.language.encode()
                    if lib.espeak_SetVoiceByName(voice) != 0:
                        request.chunks.put(ConfigurationError(f"no espeak-ng voice {voice!r}"))
                        voice = None
                        continue
                lib.espeak_SetParameter(_PARAM_RATE, round(_NORMAL_WPM * speech.rate), 0)
                lib.espeak_SetParameter(_PARAM_PITCH, min(100, round(50 * speech.pitch)), 0)
                lib.espeak_SetParameter(_PARAM_VOLUME, speech.volume * 2, 0)
                data = speech.text.encode()
                self._current = request
                lib.espeak_Synth(
                    data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8 | _ENDPAUSE,
                    None, None,
                )  # fmt: skip
                self._current = None
                request.chunks.put(_END)
        finally:
            lib.espeak_Terminate()

    def _on_audio(
        self,
        wav: ctypes._Pointer[ctypes.c_short],
        count: int,
        events: ctypes._Pointer[_Event],
    ) -> int:
        request = self._current
        if request is None or request.cancelled.is_set():
            return 1  # abort this synthesis
        i = 0
        while events and (event := events[i]).type != 0:
            if event.type in (_EVENT_WORD, _EVENT_END):  # text_position counts from 1
                request.chunks.put(Anchor(event.text_position - 1, event.sample))
            i += 1
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
