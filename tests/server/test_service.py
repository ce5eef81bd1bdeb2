"""ServerProtocol without sockets: the service's rules, driven by hand with a fake clock."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from voicebridge.protocol import (
    Audio,
    ContinueTask,
    FinishTask,
    ResultGenerated,
    RunTask,
    SynthesisParameters,
    TaskFailed,
    TaskFinished,
    TaskStarted,
    encode_client_message,
)
from voicebridge.server.engines import SpeechRequest
from voicebridge.server.sentences import split_sentences
from voicebridge.server.service import (
    CancelSynthesis,
    CloseConnection,
    ServerAction,
    ServerLimits,
    ServerProtocol,
    Synthesize,
)
from voicebridge.text.billing import count_characters

PARAMS = SynthesisParameters("cosyvoice-v2", "longxiaochun_v2", "pcm", 22050)
TASK = "0" * 32


def run(server: ServerProtocol, task_id: str = TASK, now: float = 0.0) -> list[ServerAction]:
    return server.receive_text(encode_client_message(RunTask.create(task_id, PARAMS)), now)


def text(server: ServerProtocol, value: str, now: float = 0.0, **kw: bool) -> list[ServerAction]:
    return server.receive_text(encode_client_message(ContinueTask(TASK, value, **kw)), now)


def finish(server: ServerProtocol, now: float = 0.0, cancel: bool = False) -> list[ServerAction]:
    return server.receive_text(encode_client_message(FinishTask(TASK, cancel=cancel)), now)


def synthesize_all(server: ServerProtocol, actions: list[ServerAction]) -> list[ServerAction]:
    """Play the I/O layer: every Synthesize in order, one chunk each."""
    out: list[ServerAction] = []
    for action in actions:
        if isinstance(action, Synthesize):
            out += server.sentence_begin(action.task_id, action.index, action.text)
            out += server.sentence_chunk(action.task_id, action.index, b"\x00\x01")
            out += server.sentence_done(action.task_id, action.index, action.text, 0.0)
        else:
            out.append(action)
    return out


def test_full_task_event_order_and_billing() -> None:
    server = ServerProtocol(now=0.0)
    assert run(server) == [TaskStarted(TASK)]
    first = text(server, "床前明月光，疑是地上霜。举头")
    sentence = "床前明月光，疑是地上霜。"
    assert [a for a in first if isinstance(a, Synthesize)] == [
        Synthesize(TASK, 0, sentence, SpeechRequest(sentence, "cmn"), "pcm")
    ]
    events = synthesize_all(server, first) + synthesize_all(server, finish(server))
    assert [(type(e).__name__, getattr(e, "type", None)) for e in events] == [
        ("ResultGenerated", "sentence-begin"),
        ("ResultGenerated", "sentence-synthesis"),
        ("Audio", None),
        ("ResultGenerated", "sentence-end"),
        ("ResultGenerated", "sentence-begin"),
        ("ResultGenerated", "sentence-synthesis"),
        ("Audio", None),
        ("ResultGenerated", "sentence-end"),
        ("TaskFinished", None),
    ]
    ends = [e for e in events if isinstance(e, ResultGenerated) and e.type == "sentence-end"]
    assert [e.characters for e in ends] == [22, 26]  # cumulative, CJK = 2
    assert isinstance(events[-1], TaskFinished) and events[-1].characters == 26
    assert server.task_id is None and not server.closed  # ready for the next task


def test_finish_waits_for_outstanding_sentences() -> None:
    server = ServerProtocol(now=0.0)
    run(server)
    [synth] = [a for a in text(server, "One. Two") if isinstance(a, Synthesize)]
    [tail] = finish(server)
    assert isinstance(tail, Synthesize) and tail.text == "Two"
    assert server.sentence_done(TASK, 1, "Two", 0.0)[-1] == ResultGenerated(
        TASK, "sentence-end", 1, original_text="Two", characters=3
    )
    done = server.sentence_done(TASK, 0, synth.text, 0.0)
    assert isinstance(done[-1], TaskFinished) and done[-1].characters == 8


def test_cancel_directive_answers_task_finished_at_once() -> None:
    server = ServerProtocol(now=0.0)
    run(server)
    text(server, "One. Two. ")
    assert finish(server, cancel=True) == [CancelSynthesis(TASK), TaskFinished(TASK, 0)]
    assert server.sentence_chunk(TASK, 0, b"late") == []  # audio of a cancelled task is dropped
    assert server.sentence_done(TASK, 0, "One. ", 0.0) == []


def test_flush_forces_the_tail_out() -> None:
    server = ServerProtocol(now=0.0)
    run(server)
    assert not any(isinstance(a, Synthesize) for a in text(server, "no end yet"))
    [synth] = text(server, "", flush=True)
    assert isinstance(synth, Synthesize) and synth.text == "no end yet"


def test_new_run_task_cancels_the_running_one() -> None:
    server = ServerProtocol(now=0.0)
    run(server)
    assert run(server, "1" * 32) == [CancelSynthesis(TASK), TaskStarted("1" * 32)]
    assert server.task_id == "1" * 32


def test_idle_timer_fails_the_task_then_closes() -> None:
    server = ServerProtocol(now=0.0, limits=ServerLimits(idle_timeout=23.0))
    run(server, now=0.0)
    text(server, "a", now=10.0)
    assert server.next_deadline() == 33.0
    assert server.poll(32.9) == []
    assert server.poll(33.0) == [
        CancelSynthesis(TASK),
        TaskFailed(TASK, "InvalidParameter", "request timeout after 23 seconds."),
        CloseConnection("request timeout after 23 seconds."),
    ]
    assert server.closed and server.next_deadline() is None


def test_no_task_timer_while_finishing_then_connection_idle_close() -> None:
    server = ServerProtocol(now=0.0, limits=ServerLimits(connection_idle_timeout=60.0))
    run(server)
    [synth] = text(server, "Long sentence. ")
    finish(server, now=1.0)
    assert server.next_deadline() is None  # synthesis may take longer than 23 s
    server.sentence_done(TASK, synth.index, synth.text, now=100.0)
    assert server.next_deadline() == 160.0
    assert server.poll(160.0) == [CloseConnection("connection idle")]


def test_limits_per_message_and_per_task() -> None:
    limits = ServerLimits(max_message_characters=10, max_task_characters=15)
    server = ServerProtocol(now=0.0, limits=limits)
    run(server)
    assert not any(isinstance(a, TaskFailed) for a in text(server, "中" * 5))  # 10: at the limit
    failed = text(server, "abcdef")  # 16 in total
    assert isinstance(failed[-2], TaskFailed) and "total" in failed[-2].message.lower()
    server = ServerProtocol(now=0.0, limits=limits)
    run(server)
    failed = text(server, "中" * 6)
    assert isinstance(failed[-2], TaskFailed) and "12" in failed[-2].message


def test_run_task_validation_and_voice_check() -> None:
    server = ServerProtocol(
        now=0.0, voice_language=lambda model, voice: "en" if voice == "known" else None
    )
    actions = run(server)
    assert actions[0] == TaskFailed(TASK, "InvalidParameter", "[tts:]Engine return error code: 418")
    assert isinstance(actions[-1], CloseConnection)
    server = ServerProtocol(now=0.0, formats=("pcm",))
    bad = RunTask(TASK, "cosyvoice-v2", {"voice": "v", "format": "opus"})
    failed = server.receive_text(encode_client_message(bad), 0.0)[0]
    assert isinstance(failed, TaskFailed) and "opus" in failed.message
    server = ServerProtocol(now=0.0)
    frame = {"header": {"action": "run-task", "task_id": TASK}, "payload": {"model": "m"}}
    failed = server.receive_text(json.dumps(frame), 0.0)[0]
    assert isinstance(failed, TaskFailed) and failed.message == "task can not be null"


def test_sdk_default_format_gets_the_voice_default_rate() -> None:
    server = ServerProtocol(now=0.0)
    frame = RunTask(TASK, "cosyvoice-v2", {"voice": "v", "format": "Default", "sample_rate": 0})
    server.receive_text(encode_client_message(frame), 0.0)
    [synth] = text(server, "Hi. ")
    assert isinstance(synth, Synthesize)
    assert (synth.format, synth.request.sample_rate) == ("mp3", 22050)


def test_engine_failure_fails_the_task() -> None:
    server = ServerProtocol(now=0.0)
    run(server)
    actions = server.synthesis_failed(TASK, "engine broke")
    assert actions[1] == TaskFailed(TASK, "InternalError", "engine broke")
    assert server.closed
    assert server.synthesis_failed(TASK, "again") == []


def test_garbage_and_binary_frames_fail_and_close() -> None:
    server = ServerProtocol(now=0.0)
    actions = server.receive_text("not json", 0.0)
    assert isinstance(actions[0], TaskFailed) and isinstance(actions[-1], CloseConnection)
    assert server.receive_text("{}", 0.0) == []  # nothing after the close
    server = ServerProtocol(now=0.0)
    assert isinstance(server.receive_binary(b"\x00", 0.0)[-1], CloseConnection)
    assert server.receive_binary(b"\x00", 0.0) == []


def test_audio_event_carries_the_chunk() -> None:
    server = ServerProtocol(now=0.0)
    run(server)
    assert server.sentence_chunk(TASK, 0, b"pcm")[1] == Audio(b"pcm")
    assert server.sentence_chunk(TASK, 0, b"") == []


@given(st.text(alphabet="ab 。，.!?\n”」3", max_size=40))
def test_sentences_and_tail_rebuild_the_text(value: str) -> None:
    sentences, tail = split_sentences(value)
    assert "".join(sentences) + tail == value
    assert all(s.strip() for s in sentences)


def test_the_full_stops_of_other_scripts_end_sentences() -> None:
    text = "नमस्ते। ສະບາຍດີ။ សួស្តី។ مرحبا؟ and more"
    sentences, tail = split_sentences(text)
    assert [s.strip() for s in sentences] == ["नमस्ते।", "ສະບາຍດີ။", "សួស្តី។", "مرحبا؟"]
    assert tail == "and more"


# --------------------------------------------------------------------------- flush (issue 11)


def test_flush_with_text_synthesizes_all_held_text_as_one_sentence() -> None:
    server = ServerProtocol(now=0.0)
    run(server)
    text(server, "First part, ")
    text(server, "second part")
    [synth] = text(server, "", flush=True)
    assert isinstance(synth, Synthesize) and synth.text == "First part, second part"
    assert text(server, "", flush=True) == []  # nothing held: nothing to do, no error
    both = {  # text and flush in one message: the text is taken first
        "header": {"action": "continue-task", "task_id": TASK, "streaming": "duplex"},
        "payload": {"input": {"text": "third", "flush": True}},
    }
    [synth] = server.receive_text(json.dumps(both), 0.0)
    assert isinstance(synth, Synthesize) and synth.text == "third"


def test_flush_keeps_complete_sentences_separate_and_counts_no_text() -> None:
    server = ServerProtocol(now=0.0, limits=ServerLimits(idle_timeout=23.0))
    run(server, now=0.0)
    text(server, "One. Two", now=5.0)  # "One. " went out at once
    [tail] = text(server, "", now=20.0, flush=True)
    assert isinstance(tail, Synthesize) and (tail.index, tail.text) == (1, "Two")
    assert server.next_deadline() == 28.0  # a bare flush is no text: the timer still runs


def test_flush_after_finish_task_is_an_error() -> None:
    server = ServerProtocol(now=0.0)
    run(server)
    text(server, "Held")
    finish(server)
    failed = text(server, "", flush=True)
    assert isinstance(failed[-2], TaskFailed) and "after finish-task" in failed[-2].message


# --------------------------------------------------------------------------- issue 10 rules


def test_second_run_task_with_the_same_task_id_fails_and_closes() -> None:
    server = ServerProtocol(now=0.0)
    run(server)
    text(server, "Running. ")
    actions = run(server)  # the same id again while the task runs
    assert actions[0] == CancelSynthesis(TASK)  # the running task's audio is dropped
    assert isinstance(actions[1], TaskFailed) and actions[1].task_id == TASK
    assert actions[1].code == "CLIENT_ERROR" and "already used" in actions[1].message
    assert isinstance(actions[2], CloseConnection) and server.closed


def test_a_finished_task_id_cannot_be_used_again() -> None:
    server = ServerProtocol(now=0.0)
    run(server)
    synthesize_all(server, finish(server))
    assert server.task_id is None
    assert isinstance(run(server)[0], TaskFailed)
    other = ServerProtocol(now=0.0)
    run(other)
    synthesize_all(other, finish(other))
    assert run(other, "1" * 32) == [TaskStarted("1" * 32)]  # a new id is fine


def test_deeply_nested_json_fails_the_task_without_an_exception() -> None:
    server = ServerProtocol(now=0.0)
    run(server)
    actions = server.receive_text("[" * 200_000 + "]" * 200_000, 1.0)
    assert isinstance(actions[-2], TaskFailed) and "nested" in actions[-2].message
    assert isinstance(actions[-1], CloseConnection)


def test_text_without_sentence_ends_is_cut_at_word_boundaries() -> None:
    server = ServerProtocol(now=0.0, limits=ServerLimits(max_sentence_characters=50))
    run(server)
    words = " ".join(f"word{i}" for i in range(100))  # 589 characters, no punctuation
    cut = [a for a in text(server, words) if isinstance(a, Synthesize)]
    assert len(cut) >= 10 and all(len(s.text) <= 50 for s in cut)
    assert all(s.text.endswith(" ") for s in cut)  # never inside a word
    [rest] = finish(server)
    assert isinstance(rest, Synthesize)
    assert "".join(s.text for s in cut) + rest.text == words


def test_text_without_spaces_is_cut_at_the_limit() -> None:
    server = ServerProtocol(now=0.0, limits=ServerLimits(max_sentence_characters=40))
    run(server)
    cut = [a for a in text(server, "中" * 50) if isinstance(a, Synthesize)]
    assert [s.text for s in cut] == ["中" * 20, "中" * 20]  # 40 billed characters each


@given(st.text(alphabet="ab ,，。.中\n", max_size=300), st.integers(2, 60))
def test_cut_sentences_rebuild_the_text_within_the_limit(value: str, limit: int) -> None:
    sentences, tail = split_sentences(value, limit)
    assert "".join(sentences) + tail == value
    assert all(count_characters(s.rstrip()) <= limit for s in sentences)
    assert count_characters(tail) <= limit
