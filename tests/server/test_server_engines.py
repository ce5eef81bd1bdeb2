"""Engines and encoders on their own: espeak-ng thread discipline, tone, streaming resampler."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicebridge.errors import ConfigurationError
from voicebridge.server import EspeakEngine, ToneEngine
from voicebridge.server.encoding import Resampler, TaskEncoder, wav_header
from voicebridge.server.engines import Engine, SpeechRequest
from voicebridge.voices import V1_VOICES, V2_VOICES, voice_language


def pcm(engine: Engine, text: str, language: str = "en", **options: Any) -> list[bytes]:
    """The PCM chunks of one sentence (anchors left out)."""
    request = SpeechRequest(text, language, **options)
    return [item for item in engine.synthesize(request) if isinstance(item, bytes)]


@pytest.fixture
def espeak() -> EspeakEngine:
    engine = EspeakEngine.acquire()
    yield engine  # type: ignore[misc]
    engine.release()


def test_espeak_streams_several_chunks_per_sentence(espeak: EspeakEngine) -> None:
    chunks = pcm(espeak, "One two three four five six seven.")
    assert len(chunks) > 1 and all(len(c) % 2 == 0 for c in chunks)


def test_espeak_abandoned_sentence_does_not_block_the_next(espeak: EspeakEngine) -> None:
    stream = espeak.synthesize(SpeechRequest("A very long sentence that goes on. " * 40, "en"))
    next(stream)
    stream.close()
    assert pcm(espeak, "Next.")


def test_espeak_unknown_language_is_an_error(espeak: EspeakEngine) -> None:
    with pytest.raises(ConfigurationError):
        pcm(espeak, "x", "no-such-language")
    assert pcm(espeak, "still fine")


def test_one_espeak_engine_per_process(espeak: EspeakEngine) -> None:
    assert EspeakEngine.acquire() is espeak
    espeak.release()
    with pytest.raises(ConfigurationError, match="acquire"):
        EspeakEngine()


def test_every_catalogued_voice_has_an_espeak_voice(espeak: EspeakEngine) -> None:
    for language in sorted(set(V1_VOICES.values()) | set(V2_VOICES.values())):
        assert pcm(espeak, "1", language), language


def test_voice_catalogue_follows_model_versions() -> None:
    assert voice_language("cosyvoice-v2", "longxiaochun_v2") == "cmn"
    assert voice_language("cosyvoice-v2", "loongeva_v2") == "en"
    assert voice_language("cosyvoice-v2", "loongabby_v2") == "en-us"
    assert voice_language("cosyvoice-v2", "longjiayi_v2") == "yue"
    assert voice_language("cosyvoice-v2", "loongtomoka_v2") == "ja"
    assert voice_language("cosyvoice-v2", "loongkyong_v2") == "ko"
    assert voice_language("cosyvoice-v1", "longxiaochun") == "cmn"
    assert voice_language("cosyvoice-v1", "longxiaochun_v2") is None
    assert voice_language("cosyvoice-v2", "longxiaochun") is None
    assert voice_language("cosyvoice-v2", "cosyvoice-v2-myvoice-0123abcd") == "cmn"  # cloned
    assert voice_language("no-such-model", "longxiaochun_v2") is None


def test_tone_is_deterministic_and_proportional_to_billed_length() -> None:
    tone = ToneEngine()
    one = b"".join(pcm(tone, "ab"))
    assert one == b"".join(pcm(tone, "ab"))
    two = b"".join(pcm(tone, "中", "cmn"))  # one ideograph bills 2
    four = b"".join(pcm(tone, "abcd"))
    assert len(one) == len(two)
    assert len(four) / len(one) == pytest.approx(2.0, abs=0.01)
    silent = ToneEngine(frequency=0.0)
    assert not any(b"".join(pcm(silent, "abc", volume=100)))


@settings(max_examples=50, deadline=None)
@given(
    st.sampled_from([8000, 16000, 24000, 44100, 48000]),
    st.lists(st.integers(1, 900), min_size=1, max_size=12),
)
def test_resampling_in_chunks_equals_resampling_at_once(rate: int, cuts: list[int]) -> None:
    signal = (np.sin(np.arange(sum(cuts)) / 7) * 10000).astype("<i2").tobytes()
    whole = Resampler(22050, rate).process(signal)
    chunked = Resampler(22050, rate)
    pieces, start = [], 0
    for cut in cuts:
        pieces.append(chunked.process(signal[2 * start : 2 * (start + cut)]))
        start += cut
    assert b"".join(pieces) == whole


def test_wav_encoder_puts_the_header_first_only() -> None:
    encoder = TaskEncoder("wav", 22050)
    assert encoder.encode(b"\x01\x00", 22050) == wav_header(22050) + b"\x01\x00"
    assert encoder.encode(b"\x02\x00", 22050) == b"\x02\x00"
    assert encoder.end_sentence() == b""
