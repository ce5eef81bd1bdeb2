"""VoiceBridge end to end: real local server, real client, real janus pipeline, WAV sink."""

from __future__ import annotations

import threading
import wave
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.malformed_server import MalformedServer
from voicebridge.audio import NullSink, WavFileSink
from voicebridge.bridge import VoiceBridge
from voicebridge.errors import RemoteProtocolError
from voicebridge.server import ServerThread
from voicebridge.session import SessionSettings

ANSWER = [
    "Hello",
    " there",
    ". The",
    " weather is",
    " fine today,",
    " and tomorrow",
    " looks good too.",
    " 你好，",
    "世界。",
]


def wav_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as wav:
        return wav.getnframes() / wav.getframerate()


def chunk(content: str | None, finish: str | None = None) -> SimpleNamespace:
    """An object shaped like openai's ChatCompletionChunk (attributes, not dicts)."""
    delta = SimpleNamespace(content=content, tool_calls=None, refusal=None)
    return SimpleNamespace(choices=[SimpleNamespace(delta=delta, finish_reason=finish)])


def test_speak_streams_text_into_a_wav_and_loses_nothing(
    tone_server: ServerThread, tmp_path: Path
) -> None:
    out = tmp_path / "answer.wav"
    with VoiceBridge(url=tone_server.url, sinks=[WavFileSink(out)], sample_rate=16000) as bridge:
        metrics = bridge.speak(iter(ANSWER))
    transcript = tone_server.transcripts
    assert "".join(t.text for t in transcript) == "".join(ANSWER)
    assert metrics.audio_seconds == pytest.approx(wav_seconds(out), abs=0.01)
    assert metrics.audio_seconds > 1.0
    assert metrics.billed_characters == len("".join(ANSWER)) + 4  # 4 ideographs count twice
    assert metrics.time_to_first_audio is not None and metrics.first_package_delay is not None
    assert len(metrics.task_ids) == 1 and not metrics.interrupted


def test_openai_chunks_none_content_and_non_text_items_are_never_spoken(
    tone_server: ServerThread,
) -> None:
    stream = [
        chunk(None),
        chunk("Tools are "),
        None,
        42,
        chunk("done."),
        chunk(None, finish="stop"),
        SimpleNamespace(choices=[], usage=SimpleNamespace(total_tokens=9)),
    ]
    with VoiceBridge(url=tone_server.url, sinks=[NullSink()]) as bridge:
        bridge.speak(stream)
    spoken = "".join(t.text for t in tone_server.transcripts)
    assert spoken == "Tools are done."
    assert "None" not in spoken and "42" not in spoken


def test_an_empty_stream_makes_no_task_and_no_error(tone_server: ServerThread) -> None:
    with VoiceBridge(url=tone_server.url, sinks=[NullSink()]) as bridge:
        metrics = bridge.speak(iter([]))
        metrics_blank = bridge.speak(["", "", None])
    assert metrics.task_ids == () and metrics_blank.task_ids == ()
    assert metrics.audio_seconds == 0
    assert all(not t.tasks for t in tone_server.transcripts)


def test_two_turns_share_the_connection(tone_server: ServerThread) -> None:
    with VoiceBridge(url=tone_server.url, sinks=[NullSink()]) as bridge:
        first = bridge.speak("First turn.")
        second = bridge.speak(["Second ", "turn."])
    assert first.task_ids != second.task_ids
    assert len(tone_server.transcripts) == 1
    assert tone_server.transcripts[0].text == "First turn.Second turn."


def test_a_server_that_keeps_sending_garbage_ends_the_turn_with_a_clear_error() -> None:
    """A malformed frame is retried like a dropped connection; once the turn's retry budget is
    spent, the last error comes out, carrying the text that was not spoken."""
    before = set(threading.enumerate())
    settings = SessionSettings(max_retries=2, backoff_initial=0.05)
    with MalformedServer("{definitely not json") as server:
        bridge = VoiceBridge(url=server.url, sinks=[NullSink()], settings=settings)
        with pytest.raises(RemoteProtocolError, match="not JSON") as caught:
            bridge.speak(["Hello there."])
        bridge.close()
        assert server.connections == 3  # the first attempt and two retries
    assert caught.value.unspoken_text == "Hello there."
    assert "12 characters not spoken" in str(caught.value)
    assert set(threading.enumerate()) <= before


def test_the_embedded_server_is_used_without_url_or_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DASHSCOPE_API_KEY", raising=False)
    monkeypatch.delenv("DASHSCOPE_WEBSOCKET_BASE_URL", raising=False)
    before = set(threading.enumerate())
    out = tmp_path / "hello.wav"
    with VoiceBridge(sinks=[WavFileSink(out)]) as bridge:
        assert bridge.server is not None and bridge.url == bridge.server.url
        bridge.speak("Hello there. 你好，世界。")
    assert 1.0 < wav_seconds(out) < 8.0
    assert set(threading.enumerate()) <= before
