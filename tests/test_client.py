"""The duplex client against the real local server on port 0, over real WebSockets."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from tests.malformed_server import MalformedServer
from voicebridge.client import AudioFormat, ResultCallback, SpeechSynthesizer
from voicebridge.errors import (
    AuthenticationError,
    RemoteProtocolError,
    SynthesisTimeout,
    TaskFailedError,
)
from voicebridge.protocol import ServerEvent
from voicebridge.server import ServerThread
from voicebridge.server.faults import FaultPlan
from voicebridge.server.service import ServerLimits

PCM16K = AudioFormat.PCM_16000HZ_MONO_16BIT


class Recorder(ResultCallback):
    def __init__(self) -> None:
        self.events: list[ServerEvent] = []
        self.audio = bytearray()
        self.errors: list[str] = []
        self.failed = threading.Event()
        self.completed = 0

    def on_result(self, event: ServerEvent) -> None:
        self.events.append(event)

    def on_data(self, data: bytes) -> None:
        self.audio += data

    def on_error(self, message: str) -> None:
        self.errors.append(message)
        self.failed.set()

    def on_complete(self) -> None:
        self.completed += 1

    def kinds(self) -> list[str]:
        return [getattr(e, "type", None) or type(e).__name__ for e in self.events]


@pytest.fixture
def espeak() -> Iterator[ServerThread]:
    with ServerThread(engine="espeak") as server:
        yield server


def synthesizer(url: str, callback: ResultCallback, **kwargs: object) -> SpeechSynthesizer:
    return SpeechSynthesizer(
        "cosyvoice-v2", "longxiaochun_v2", format=PCM16K, callback=callback, url=url, **kwargs
    )  # type: ignore[arg-type]


def test_event_order_audio_and_cjk_billing(espeak: ServerThread) -> None:
    recorder = Recorder()
    with synthesizer(espeak.url, recorder) as synth:
        synth.streaming_call("Hello there. ")
        synth.streaming_call("你好，世界。")
        synth.streaming_complete()
        assert synth.characters == 13 + 10  # "Hello there. " + 4 ideographs x2 + 2 marks
        assert synth.get_last_request_id()
        assert synth.get_first_package_delay() > 0
    kinds = recorder.kinds()
    assert kinds[0] == "TaskStarted" and kinds[-1] == "TaskFinished"
    body = kinds[1:-1]
    assert body.count("sentence-begin") == body.count("sentence-end") == 2
    for begin in (i for i, k in enumerate(body) if k == "sentence-begin"):
        assert body[begin + 1] == "sentence-synthesis"
    seconds = len(recorder.audio) / (2 * 16000)
    assert 1.0 < seconds < 8.0, seconds
    samples = memoryview(bytes(recorder.audio)).cast("h")
    assert max(abs(s) for s in samples) > 1000, "the audio is silent"
    assert recorder.completed == 1


def test_two_tasks_reuse_one_connection(espeak: ServerThread) -> None:
    recorder = Recorder()
    with synthesizer(espeak.url, recorder) as synth:
        for text in ("First task.", "Second task."):
            synth.streaming_call(text)
            synth.streaming_complete()
    transcripts = espeak.transcripts
    assert len(transcripts) == 1, "both tasks must share one connection"
    assert list(transcripts[0].tasks.values()) == [["First task."], ["Second task."]]


def test_call_returns_audio_without_callback(espeak: ServerThread) -> None:
    synth = SpeechSynthesizer("cosyvoice-v2", "loongeva_v2", format=PCM16K, url=espeak.url)
    audio = synth.call("Short and sweet.")
    synth.close()
    assert audio is not None and len(audio) > 16000


def test_idle_timer_fails_the_task_with_the_service_message() -> None:
    limits = ServerLimits(idle_timeout=0.3)
    with ServerThread(engine="tone", limits=limits) as server:
        recorder = Recorder()
        synth = synthesizer(server.url, recorder)
        synth.streaming_call("Then nothing more arrives")
        assert recorder.failed.wait(5.0), "the idle timer fired"
        with pytest.raises(TaskFailedError) as failure:
            synth.streaming_complete()
        synth.close()
    assert failure.value.message == "request timeout after 23 seconds."
    assert failure.value.task_id == synth.task_id
    assert failure.value.retryable
    assert recorder.errors


def test_bad_key_is_refused_at_the_handshake() -> None:
    with ServerThread(engine="tone", api_key="right-key") as server:
        synth = synthesizer(server.url, Recorder(), api_key="sk-wrong-secret-1234")
        with pytest.raises(AuthenticationError) as refused:
            synth.streaming_call("hello")
        ok = synthesizer(server.url, Recorder(), api_key="right-key")
        ok.streaming_call("hello.")
        ok.streaming_complete()
        ok.close()
    assert refused.value.status == 401
    assert "sk-wrong-secret-1234" not in str(refused.value)
    assert "sk-wrong-secret-1234" not in repr(synth)


@pytest.mark.parametrize(
    ("model", "voice"),
    [("cosyvoice-v2", "no_such_voice"), ("cosyvoice-v1", "longxiaochun_v2")],
)
def test_unknown_voice_or_version_mismatch_is_invalid_parameter(model: str, voice: str) -> None:
    with ServerThread(engine="tone") as server:
        synth = SpeechSynthesizer(model, voice, format=PCM16K, url=server.url)
        with pytest.raises(TaskFailedError) as failure:
            synth.streaming_call("hello")
        synth.close()
    assert failure.value.code == "InvalidParameter"
    assert failure.value.message == "[tts:]Engine return error code: 418"
    assert not failure.value.retryable


def test_text_over_the_message_limit_fails_the_task() -> None:
    with ServerThread(engine="tone") as server:
        synth = synthesizer(server.url, Recorder())
        synth.streaming_call("字" * 1001)  # 2,002 billed characters > 2,000
        with pytest.raises(TaskFailedError, match="limit"):
            synth.streaming_complete()
        synth.close()


def test_a_server_that_never_starts_the_task_times_out() -> None:
    with ServerThread(engine="tone", faults=FaultPlan(delay_task_started=5.0)) as server:
        synth = synthesizer(server.url, Recorder(), start_timeout=0.3)
        with pytest.raises(SynthesisTimeout, match="task-started"):
            synth.streaming_call("hello")
        synth.close()


@pytest.mark.parametrize("reply", ["{not json", '{"header": {"event": "task-started"}}'])
def test_malformed_server_message_raises_a_protocol_error_and_leaves_no_thread(reply: str) -> None:
    before = set(threading.enumerate())
    with MalformedServer(reply) as server:
        recorder = Recorder()
        synth = synthesizer(server.url, recorder)
        with pytest.raises(RemoteProtocolError):
            synth.streaming_call("hello")
        synth.close()
    assert recorder.errors
    assert set(threading.enumerate()) <= before


def test_first_package_delay_after_one_streaming_call_matches_the_official_sdk(
    espeak: ServerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a single streaming_call, both clients report the time from that text to the first
    audio (it was -1 here: start() forgot the first-text time streaming_call had just set)."""
    dashscope = pytest.importorskip("dashscope", reason="the dashscope SDK is a test dependency")
    from dashscope.audio.tts_v2 import AudioFormat as SdkFormat
    from dashscope.audio.tts_v2 import ResultCallback as SdkCallback
    from dashscope.audio.tts_v2 import SpeechSynthesizer as SdkSynthesizer

    monkeypatch.setattr(dashscope, "api_key", "sk-test")
    text = "Hello there, how are you today?"
    ours = synthesizer(espeak.url, ResultCallback())
    ours.streaming_call(text)
    ours.streaming_complete()
    ours.close()
    sdk = SdkSynthesizer(
        model="cosyvoice-v2",
        voice="longxiaochun_v2",
        format=SdkFormat.PCM_16000HZ_MONO_16BIT,
        callback=SdkCallback(),
        url=espeak.url,
    )
    sdk.streaming_call(text)
    sdk.streaming_complete()
    mine, theirs = ours.get_first_package_delay(), sdk.get_first_package_delay()
    assert mine > 0 and theirs > 0
    # The same measure (from the first text, connect included, to the first audio); the SDK's
    # own connect polls a WebSocketApp thread, slower under load: the order of magnitude only.
    assert 0.05 < mine / theirs < 20, (mine, theirs)
