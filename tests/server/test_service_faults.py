"""Fault plans decided by ServerProtocol, in memory (the sockets only carry them out)."""

from __future__ import annotations

from test_service import TASK, finish, run, synthesize_all, text

from voicebridge.protocol import Audio, ResultGenerated, TaskFailed, TaskFinished, TaskStarted
from voicebridge.server.faults import FaultPlan, FaultPoint, Trigger
from voicebridge.server.service import (
    CancelSynthesis,
    CloseConnection,
    DropConnection,
    ServerProtocol,
    StopAnswering,
    Synthesize,
)


def test_fail_instead_of_task_started() -> None:
    plan = FaultPlan(fail_at=Trigger(FaultPoint.TASK_STARTED), fail_code="Throttling")
    server = ServerProtocol(now=0.0, faults=plan)
    [failed, close] = run(server)
    assert isinstance(failed, TaskFailed) and failed.code == "Throttling"
    assert failed.task_id == TASK and isinstance(close, CloseConnection)


def test_fail_at_the_second_text() -> None:
    server = ServerProtocol(now=0.0, faults=FaultPlan(fail_at=Trigger(FaultPoint.TEXT, 2)))
    run(server)
    assert not any(isinstance(a, TaskFailed) for a in text(server, "One. "))
    actions = text(server, "Two. ")  # replaced by the failure: never synthesized
    assert [type(a) for a in actions] == [CancelSynthesis, TaskFailed, CloseConnection]


def test_drop_right_after_the_third_audio_frame() -> None:
    server = ServerProtocol(now=0.0, faults=FaultPlan(drop_at=Trigger(FaultPoint.AUDIO, 3)))
    run(server)
    [synth] = text(server, "One. ")
    assert isinstance(synth, Synthesize)
    frames = [server.sentence_chunk(TASK, 0, b"\x00\x00") for _ in range(3)]
    assert [type(a) for a in frames[2]] == [ResultGenerated, Audio, CancelSynthesis, DropConnection]
    assert server.closed and server.sentence_chunk(TASK, 0, b"\x00\x00") == []


def test_stop_answering_after_a_sentence_end_keeps_reading_silently() -> None:
    plan = FaultPlan(stop_at=Trigger(FaultPoint.SENTENCE_END))
    server = ServerProtocol(now=0.0, faults=plan)
    run(server)
    events = synthesize_all(server, text(server, "One. Two. "))
    stop = events.index(StopAnswering())
    assert events[stop - 1] == CancelSynthesis(TASK)
    end = events[stop - 2]  # right after the first sentence-end
    assert isinstance(end, ResultGenerated) and end.type == "sentence-end"
    assert server.silent and not server.closed  # the socket stays open
    assert text(server, "More text. ") == [] and server.next_deadline() is None


def test_fault_replaces_task_finished() -> None:
    server = ServerProtocol(now=0.0, faults=FaultPlan(drop_at=Trigger(FaultPoint.TASK_FINISHED)))
    run(server)
    events = synthesize_all(server, finish(server))
    assert events[-1] == DropConnection()
    assert not any(isinstance(e, TaskFinished) for e in events)


def test_triggers_count_per_machine() -> None:
    plan = FaultPlan(fail_at=Trigger(FaultPoint.TASK_STARTED, 2))
    server = ServerProtocol(now=0.0, faults=plan)
    assert run(server) == [TaskStarted(TASK)]
    synthesize_all(server, finish(server))
    assert isinstance(run(server, "1" * 32)[0], TaskFailed)  # the second task-started
