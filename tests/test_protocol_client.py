"""The client half of the sans-I/O protocol, with no sockets: frames in, frames out."""

from __future__ import annotations

import json

import pytest

from voicebridge.errors import LocalProtocolError, RemoteProtocolError
from voicebridge.protocol import (
    Audio,
    ClientProtocol,
    ClientState,
    ContinueTask,
    FinishTask,
    ResultGenerated,
    RunTask,
    SynthesisParameters,
    TaskFailed,
    TaskFinished,
    TaskStarted,
    decode_client_message,
    decode_server_event,
    encode_client_message,
    encode_server_event,
    is_synthesis_notice,
)
from voicebridge.server.service import ServerProtocol

PARAMS = SynthesisParameters("cosyvoice-v2", "longxiaochun_v2", sample_rate=16000)


def started(client: ClientProtocol) -> str:
    frame = json.loads(client.run_task(PARAMS, "a" * 32))
    client.receive_text(encode_server_event(TaskStarted("a" * 32)))
    return str(frame["header"]["task_id"])


def test_run_task_frame_matches_the_sdk_shape() -> None:
    frame = json.loads(ClientProtocol().run_task(PARAMS, "0123456789abcdef0123456789abcdef"))
    assert frame["header"] == {
        "action": "run-task",
        "task_id": "0123456789abcdef0123456789abcdef",
        "streaming": "duplex",
    }
    payload = frame["payload"]
    assert payload["task_group"] == "audio" and payload["function"] == "SpeechSynthesizer"
    assert payload["model"] == "cosyvoice-v2" and payload["input"] == {}
    assert payload["parameters"]["voice"] == "longxiaochun_v2"
    assert payload["parameters"]["sample_rate"] == 16000
    assert payload["parameters"]["format"] == "pcm"


def test_text_before_task_started_is_a_local_error() -> None:
    client = ClientProtocol()
    client.run_task(PARAMS)
    with pytest.raises(LocalProtocolError, match="task-started"):
        client.continue_task("hello")
    with pytest.raises(LocalProtocolError):
        ClientProtocol().finish_task()


def test_full_task_and_a_second_task_on_the_same_connection() -> None:
    client = ClientProtocol()
    task_id = started(client)
    assert client.state is ClientState.STARTED
    frame = json.loads(client.continue_task("床前明月光，"))
    assert frame["payload"]["input"] == {"text": "床前明月光，"}
    begin = ResultGenerated(task_id, "sentence-begin", 0, original_text="床前明月光，")
    assert client.receive_text(encode_server_event(begin)) == begin
    assert client.receive_binary(b"\x00\x01") == Audio(b"\x00\x01")
    end = ResultGenerated(task_id, "sentence-end", 0, original_text="床前明月光，", characters=11)
    client.receive_text(encode_server_event(end))
    assert client.characters == 11
    assert json.loads(client.finish_task())["header"]["action"] == "finish-task"
    client.receive_text(encode_server_event(TaskFinished(task_id, 11, request_uuid="r1")))
    assert client.state is ClientState.IDLE and client.request_uuid == "r1"
    client.run_task(PARAMS, "b" * 32)  # a second run-task after task-finished is allowed
    assert client.state is ClientState.STARTING


def test_cancel_and_flush_frames() -> None:
    client = ClientProtocol()
    started(client)
    assert json.loads(client.flush())["payload"]["input"] == {"flush": True}
    cancel = json.loads(client.finish_task(cancel=True))
    assert cancel["payload"]["input"] == {"directive": "cancel"}


def test_task_failed_moves_to_failed_and_keeps_code_and_message() -> None:
    client = ClientProtocol()
    task_id = started(client)
    event = client.receive_text(
        encode_server_event(
            TaskFailed(task_id, "InvalidParameter", "request timeout after 23 seconds.")
        )
    )
    assert isinstance(event, TaskFailed) and event.code == "InvalidParameter"
    assert client.state is ClientState.FAILED


@pytest.mark.parametrize(
    "frame",
    [
        "not json",
        "[1, 2]",
        '{"payload": {}}',
        '{"header": {"event": "task-started"}}',
        '{"header": {"event": "surprise", "task_id": "x"}}',
        '{"header": {"event": "task-started", "task_id": "x"}, "payload": 3}',
    ],
)
def test_malformed_server_frames_raise_remote_protocol_error(frame: str) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_server_event(frame)


def test_out_of_order_events_are_remote_errors() -> None:
    client = ClientProtocol()
    with pytest.raises(RemoteProtocolError):
        client.receive_binary(b"audio before any task")
    client.run_task(PARAMS, "a" * 32)
    with pytest.raises(RemoteProtocolError, match="expected"):
        client.receive_text(encode_server_event(TaskStarted("b" * 32)))
    with pytest.raises(RemoteProtocolError):
        client.receive_text(encode_server_event(TaskFinished("a" * 32)))


def test_events_without_optional_fields_decode() -> None:
    """cosyvoice-v1 recordings carry no ``type`` and no ``index``."""
    event = decode_server_event(
        '{"header":{"task_id":"t","event":"result-generated","attributes":{}},'
        '"payload":{"output":{"sentence":{"words":[]}},"usage":{"characters":15}}}'
    )
    assert event == ResultGenerated("t", None, None, None, (), 15)


@pytest.mark.parametrize(
    "message",
    [
        RunTask.create("t" * 32, PARAMS),
        ContinueTask("t" * 32, "你好"),
        ContinueTask("t" * 32, "", flush=True),
        FinishTask("t" * 32),
        FinishTask("t" * 32, cancel=True),
    ],
)
def test_client_messages_round_trip(message: RunTask | ContinueTask | FinishTask) -> None:
    assert decode_client_message(encode_client_message(message)) == message


def test_client_and_server_machines_talk_in_memory() -> None:
    """An in-memory pair (h11 style): every frame the client writes goes to the server."""
    client, server = ClientProtocol(), ServerProtocol(now=0.0)

    def deliver(frame: str, now: float) -> list[object]:
        out: list[object] = []
        for action in server.receive_text(frame, now):
            if isinstance(action, (TaskStarted, ResultGenerated, TaskFinished, TaskFailed)):
                out.append(client.receive_text(encode_server_event(action)))
            else:
                out.append(action)
        return out

    deliver(client.run_task(PARAMS), 0.0)
    actions = deliver(client.continue_task("Hello there. 你好"), 1.0)
    assert [type(a).__name__ for a in actions] == ["Synthesize"]
    actions = deliver(client.finish_task(), 2.0)
    assert [type(a).__name__ for a in actions] == ["Synthesize"]
    assert client.state is ClientState.FINISHING


def test_synthesis_notices_are_told_without_decoding_and_nothing_else_is() -> None:
    task = "a" * 32
    notice = encode_server_event(ResultGenerated(task, "sentence-synthesis", 3))
    assert isinstance(notice, str) and is_synthesis_notice(notice)
    others = [
        ResultGenerated(task, "sentence-begin", 3, original_text="Hi."),
        ResultGenerated(task, "sentence-end", 3, original_text="sentence-synthesis", characters=3),
        TaskStarted(task),
        TaskFinished(task, 3),
        TaskFailed(task, "InternalError", "sentence-synthesis failed"),
    ]
    for event in others:
        frame = encode_server_event(event)
        assert isinstance(frame, str) and not is_synthesis_notice(frame), frame
