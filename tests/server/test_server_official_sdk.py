"""The official dashscope SDK works unchanged against the local server (only its URL changes)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from voicebridge.server import ServerThread

dashscope = pytest.importorskip("dashscope", reason="the dashscope SDK is a test dependency")
from dashscope.audio.tts_v2 import AudioFormat, ResultCallback, SpeechSynthesizer  # noqa: E402

POEM = ["床前明月光，", "疑是地上霜。", "举头望明月，", "低头思故乡。"]


class Recorder(ResultCallback):  # type: ignore[misc]
    def __init__(self) -> None:
        self.audio = b""
        self.events: list[str] = []
        self.errors: list[Any] = []
        self.opened = self.completed = False

    def on_open(self) -> None:
        self.opened = True

    def on_complete(self) -> None:
        self.completed = True

    def on_error(self, message: Any) -> None:
        self.errors.append(message)

    def on_close(self) -> None:
        pass

    def on_event(self, message: str) -> None:
        self.events.append(message)

    def on_data(self, data: bytes) -> None:
        self.audio += data


@pytest.fixture
def sdk_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(dashscope, "api_key", "sk-sdk-test")
    return "sk-sdk-test"


def test_streaming_call_and_complete(make_server: Any, sdk_key: str) -> None:
    server: ServerThread = make_server(engine="tone", api_key=sdk_key)
    recorder = Recorder()
    synthesizer = SpeechSynthesizer(
        model="cosyvoice-v2",
        voice="longxiaochun_v2",
        format=AudioFormat.PCM_22050HZ_MONO_16BIT,
        callback=recorder,
        url=server.url,
    )
    for part in POEM:
        synthesizer.streaming_call(part)
    synthesizer.streaming_complete()
    assert recorder.opened and recorder.completed and not recorder.errors
    assert len(recorder.audio) > 22050  # 44 billed characters of tone: over a second
    assert '"characters": 44' in recorder.events[-1]
    assert server.transcripts[0].text == "".join(POEM)


def test_default_format_and_non_streaming_call(make_server: Any, sdk_key: str) -> None:
    server: ServerThread = make_server(engine="tone")
    synthesizer = SpeechSynthesizer(model="cosyvoice-v2", voice="loongeva_v2", url=server.url)
    audio = synthesizer.call("Hello from the official SDK.")
    assert audio  # mp3 when lameenc is installed; the SDK raises on task-failed otherwise


def test_base_url_from_the_environment(tone_server: ServerThread) -> None:
    script = textwrap.dedent(
        """
        import dashscope
        from dashscope.audio.tts_v2 import AudioFormat, SpeechSynthesizer
        dashscope.api_key = "sk-env-test"
        synthesizer = SpeechSynthesizer(
            model="cosyvoice-v2", voice="longxiaochun_v2",
            format=AudioFormat.WAV_16000HZ_MONO_16BIT,
        )
        audio = synthesizer.call("Through the environment variable.")
        print(len(audio), audio[:4])
        """
    )
    env = {**os.environ, "DASHSCOPE_WEBSOCKET_BASE_URL": tone_server.url}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    size, magic = result.stdout.split(maxsplit=1)
    assert int(size) > 16000 and magic.strip() == "b'RIFF'"
    assert tone_server.transcripts[0].text == "Through the environment variable."
