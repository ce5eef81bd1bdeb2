"""Event order, sentence splitting, billing count and task control over a real socket."""

from __future__ import annotations

from collections.abc import Callable

import websocket
from wsclient import RawClient, audio_of

from voicebridge.protocol import Audio, ResultGenerated, TaskFinished, TaskStarted
from voicebridge.server import ServerThread
from voicebridge.text.billing import count_characters

POEM = ["床前明月光，", "疑是地上霜。", "举头望明月，", "低头思故乡。", "Tail"]


def kinds(events: list[object]) -> list[str]:
    out = []
    for event in events:
        if isinstance(event, ResultGenerated):
            out.append(f"{event.type}:{event.index}")
        else:
            out.append(type(event).__name__)
    return out


def test_event_order_per_sentence_then_task_finished(tone_server: ServerThread) -> None:
    with RawClient(tone_server.url) as client:
        events = client.speak(*POEM)

    # Collapse the repeated (sentence-synthesis, audio) pairs to check the grammar.
    collapsed: list[str] = []
    for kind in kinds(events):
        if kind.startswith("sentence-synthesis") or kind == "Audio":
            kind = "synth+audio"
        if not collapsed or collapsed[-1] != kind or kind != "synth+audio":
            collapsed.append(kind)
    assert collapsed == [
        "sentence-begin:0", "synth+audio", "sentence-end:0",
        "sentence-begin:1", "synth+audio", "sentence-end:1",
        "sentence-begin:2", "synth+audio", "sentence-end:2",
        "TaskFinished",
    ]  # fmt: skip
    # Every sentence-synthesis event is followed by exactly one binary frame, and only it.
    flat = kinds(events)
    synthesis = [i for i, kind in enumerate(flat) if kind.startswith("sentence-synthesis")]
    assert [i for i, kind in enumerate(flat) if kind == "Audio"] == [i + 1 for i in synthesis]


def test_sentences_cut_by_the_server_and_characters_cumulative(tone_server: ServerThread) -> None:
    with RawClient(tone_server.url) as client:
        events = client.speak(*POEM)
    ends = [e for e in events if isinstance(e, ResultGenerated) and e.type == "sentence-end"]
    assert [e.original_text for e in ends] == [
        "床前明月光，疑是地上霜。",
        "举头望明月，低头思故乡。",
        "Tail",
    ]
    # CJK ideograph = 2, punctuation = 1: 10 * 2 + 2 = 22 per line of the poem, "Tail" = 4.
    assert [e.characters for e in ends] == [22, 44, 48]
    finished = events[-1]
    assert isinstance(finished, TaskFinished)
    assert finished.characters == 48 == count_characters("".join(POEM))
    assert finished.request_uuid


def test_tail_waits_for_more_text(tone_server: ServerThread) -> None:
    with RawClient(tone_server.url) as client:
        client.run_task()
        assert isinstance(client.recv(), TaskStarted)
        client.send_text("Hello world. Foo")
        first = []
        while not (isinstance(ev := client.recv(), ResultGenerated) and ev.type == "sentence-end"):
            first.append(ev)
        assert ev.original_text == "Hello world. "
        client.send_text(" bar. Baz")
        client.finish()
        rest = client.until_end()
    texts = [
        e.original_text for e in rest if isinstance(e, ResultGenerated) and e.type == "sentence-end"
    ]
    assert texts == ["Foo bar. ", "Baz"]


def test_flush_synthesizes_the_tail_before_finish(tone_server: ServerThread) -> None:
    with RawClient(tone_server.url) as client:
        client.run_task()
        client.recv()
        client.send_text("no sentence end here")
        client.send_text("", flush=True)
        events = [client.recv() for _ in range(3)]
        assert kinds(events)[:3] == ["sentence-begin:0", "sentence-synthesis:0", "Audio"]
        client.finish()
        assert isinstance(client.until_end()[-1], TaskFinished)


def test_connection_reuse_for_two_tasks(tone_server: ServerThread) -> None:
    with RawClient(tone_server.url) as client:
        first = client.speak("第一个任务。")
        first_id = client.task_id
        second = client.speak("Second task.")
    assert isinstance(first[-1], TaskFinished) and first[-1].task_id == first_id
    assert isinstance(second[-1], TaskFinished) and second[-1].task_id == client.task_id != first_id
    assert second[-1].characters == len("Second task.")  # counted per task, not per connection
    [transcript] = tone_server.transcripts
    assert list(transcript.tasks.values()) == [["第一个任务。"], ["Second task."]]


def test_cancel_directive_finishes_at_once_and_drops_the_rest(
    make_server: Callable[..., ServerThread],
) -> None:
    server = make_server(engine="tone")
    long_text = "This sentence is long enough to make many frames of tone audio. " * 20
    with RawClient(server.url) as client:
        client.run_task()
        client.recv()
        client.send_text(long_text)
        while not isinstance(client.recv(), Audio):
            pass
        client.finish(cancel=True)
        after = client.until_end()
        assert isinstance(after[-1], TaskFinished)
        # Nothing of the cancelled task follows task-finished: the next event is the new task's.
        events = client.speak("Next.")
    assert isinstance(events[-1], TaskFinished)
    assert [
        e.original_text
        for e in events
        if isinstance(e, ResultGenerated) and e.type == "sentence-end"
    ] == ["Next."]
    spoken = server.transcripts[0].text
    assert len(spoken) < len(long_text)


def test_new_run_task_drops_the_running_task(tone_server: ServerThread) -> None:
    with RawClient(tone_server.url) as client:
        client.run_task()
        client.recv()
        client.send_text("Dropped sentence. " * 30)
        second_id = client.run_task()
        events = []
        while not (isinstance(ev := client.recv(), TaskStarted) and ev.task_id == second_id):
            events.append(ev)
        client.send_text("Kept.")
        client.finish()
        rest = client.until_end()
    assert not any(isinstance(e, TaskFinished) for e in events)  # the first task just ends
    assert isinstance(rest[-1], TaskFinished) and rest[-1].task_id == second_id
    assert audio_of(rest)


def test_server_answers_only_its_path(tone_server: ServerThread) -> None:
    with RawClient(tone_server.url + "/") as client:  # trailing slash, as the samples write it
        assert isinstance(client.speak("Hi.")[-1], TaskFinished)
    wrong = tone_server.url.replace("/api-ws/v1/inference", "/other")
    try:
        websocket.create_connection(wrong, timeout=5)
    except websocket.WebSocketBadStatusException as exc:
        assert exc.status_code == 404
    else:
        raise AssertionError("a wrong path was accepted")
