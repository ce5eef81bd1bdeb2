"""Fault injection (issue 4): each fault seen by a real client, and the transcripts."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import websocket
from wsclient import RawClient

from voicebridge.protocol import Audio, ResultGenerated, TaskFailed, TaskFinished, TaskStarted
from voicebridge.server import FaultPlan, FaultPoint, ServerThread, Trigger

MakeServer = Callable[..., ServerThread]
SENTENCES = ["First sentence here. ", "Second sentence here. ", "Third one."]


def received_until_gone(client: RawClient) -> list[object]:
    """Every event until the connection is closed or dropped."""
    events: list[object] = []
    while True:
        try:
            frame = client.ws.recv()
        except (websocket.WebSocketConnectionClosedException, ConnectionError):
            return events
        if frame == "":
            return events
        events.append(frame)


def test_refuse_two_handshakes_then_accept(make_server: MakeServer) -> None:
    server = make_server(faults=FaultPlan(refuse_handshakes=2, refuse_status=503))
    for _ in range(2):
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            RawClient(server.url)
        assert refused.value.status_code == 503
    with RawClient(server.url) as client:
        assert isinstance(client.speak("Now it works.")[-1], TaskFinished)


def test_drop_after_n_audio_frames_on_the_first_connection_only(make_server: MakeServer) -> None:
    plan = FaultPlan(drop_at=Trigger(FaultPoint.AUDIO, 3), connections=frozenset({1}))
    server = make_server(faults=plan)
    with RawClient(server.url) as client:
        client.run_task()
        client.recv()
        for text in SENTENCES:
            client.send_text(text)
        client.finish()
        events = received_until_gone(client)
    assert sum(isinstance(e, bytes) for e in events) == 3
    assert not any(isinstance(e, str) and "task-finished" in e for e in events)
    with RawClient(server.url) as client:  # the second connection is healthy
        assert isinstance(client.speak(*SENTENCES)[-1], TaskFinished)


def test_drop_after_the_first_sentence_keeps_it_in_the_transcript(make_server: MakeServer) -> None:
    server = make_server(faults=FaultPlan(drop_at=Trigger(FaultPoint.SENTENCE_END, 1)))
    with RawClient(server.url) as client:
        client.run_task()
        client.recv()
        for text in SENTENCES:
            client.send_text(text)
        client.finish()
        events = received_until_gone(client)
    assert sum('"sentence-end"' in e for e in events if isinstance(e, str)) == 1
    assert '"sentence-end"' in events[-1]  # the drop comes right after it
    [transcript] = server.transcripts
    assert transcript.text == SENTENCES[0]


@pytest.mark.parametrize(
    ("point", "before_failure"),
    [
        (FaultPoint.TASK_STARTED, 0),  # task-failed instead of task-started
        (FaultPoint.TEXT, 1),  # task-failed when the text arrives
        (FaultPoint.TASK_FINISHED, None),  # everything but task-finished
    ],
)
def test_task_failed_at_a_chosen_point(
    make_server: MakeServer, point: FaultPoint, before_failure: int | None
) -> None:
    plan = FaultPlan(fail_at=Trigger(point), fail_code="Throttling", fail_message="Slow down.")
    server = make_server(faults=plan)
    with RawClient(server.url) as client:
        client.run_task()
        events = [client.recv()]
        if isinstance(events[0], TaskStarted):
            client.send_text("One sentence.")
            client.finish()
            events += client.until_end()
        failed = events[-1]
        assert isinstance(failed, TaskFailed)
        assert (failed.code, failed.message, failed.task_id) == (
            "Throttling",
            "Slow down.",
            client.task_id,
        )
        assert received_until_gone(client) == []  # then the server closes
    if before_failure is not None:
        assert len(events) - 1 == before_failure
    else:
        assert any(isinstance(e, ResultGenerated) and e.type == "sentence-end" for e in events)


def test_task_failed_after_the_first_audio_frame(make_server: MakeServer) -> None:
    server = make_server(faults=FaultPlan(fail_at=Trigger(FaultPoint.AUDIO, 1)))
    with RawClient(server.url) as client:
        events = client.speak(*SENTENCES)
    assert sum(isinstance(e, Audio) for e in events) == 1
    assert isinstance(events[-1], TaskFailed) and events[-1].code == "InternalError"


def test_stop_answering_keeps_the_socket_open_and_silent(make_server: MakeServer) -> None:
    server = make_server(faults=FaultPlan(stop_at=Trigger(FaultPoint.AUDIO, 1)))
    with RawClient(server.url, timeout=0.5) as client:
        client.run_task()
        client.recv()
        client.send_text(SENTENCES[0])
        client.finish()
        while not isinstance(client.recv(), Audio):
            pass
        with pytest.raises(websocket.WebSocketTimeoutException):
            client.recv()  # nothing more, although the task had much more audio
        client.send_text("ignored")  # the socket is still open
        assert client.ws.connected


def test_delays_of_task_started_and_audio(make_server: MakeServer) -> None:
    server = make_server(faults=FaultPlan(delay_task_started=0.3, delay_audio=0.05))
    with RawClient(server.url) as client:
        started = time.monotonic()
        client.run_task()
        assert isinstance(client.recv(), TaskStarted)
        waited = time.monotonic() - started
        client.send_text("x" * 10)
        client.finish()
        events = client.until_end()
        total = time.monotonic() - started
    frames = sum(isinstance(e, Audio) for e in events)
    assert waited >= 0.3  # lower bounds only: a delay never comes early
    assert total >= 0.3 + 0.05 * frames
    assert isinstance(events[-1], TaskFinished)


def test_fault_idle_timer_on_chosen_connection(make_server: MakeServer) -> None:
    server = make_server(faults=FaultPlan(idle_timeout=0.2, connections=frozenset({2})))
    with RawClient(server.url) as first, RawClient(server.url) as second:
        for client in (first, second):
            client.run_task()
            client.recv()
            client.send_text("waiting")
        failed = second.until_end()[-1]
        assert isinstance(failed, TaskFailed)
        assert failed.message == "request timeout after 23 seconds."
        first.finish()  # the first connection still has the 23-second timer
        assert isinstance(first.until_end()[-1], TaskFinished)


def test_transcripts_per_connection_and_task_match_the_input(tone_server: ServerThread) -> None:
    with RawClient(tone_server.url) as first:
        first.speak("你好，世界。", "Second sentence?")
        first_task = first.task_id
        first.speak("Another task.")
    with RawClient(tone_server.url) as second:
        second.speak("Last one!")
    transcripts = tone_server.transcripts
    assert [t.connection for t in transcripts] == [1, 2]
    assert transcripts[0].tasks[first_task] == ["你好，世界。", "Second sentence?"]
    assert transcripts[0].text == "你好，世界。Second sentence?Another task."
    assert transcripts[1].text == "Last one!"
