"""Every rule of SessionCore, in milliseconds of test time: the in-memory service, a fake clock."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.session.harness import Loop, decoded
from voicebridge.errors import (
    AuthenticationError,
    ConnectionLost,
    RemoteProtocolError,
    SynthesisTimeout,
    TaskFailedError,
)
from voicebridge.protocol import (
    ContinueTask,
    FinishTask,
    RunTask,
    TaskFailed,
    encode_client_message,
    encode_server_event,
)
from voicebridge.server.service import MSG_VOICE_UNKNOWN
from voicebridge.session.settings import SessionSettings

TEXT = (
    "The bridge reads tokens as the model writes them. It cuts them into fragments, and it "
    "sends each one at once. Audio comes back while the model is still thinking! "
    "语音合成服务会把文本切成句子。每个句子的音频都会立刻返回。Nothing is heard twice."
)


def tokens(text: str, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    out, i = [], 0
    while i < len(text):
        step = rng.randint(1, 6)
        out.append(text[i : i + step])
        i += step
    return out


def speak(loop: Loop, text: str = TEXT, seed: int = 0) -> None:
    loop.turn()
    loop.feed(*tokens(text, seed))
    loop.end()


def test_a_turn_is_spoken_once_on_one_task_and_ends_ok() -> None:
    loop = Loop()
    speak(loop)
    [turn] = loop.ended
    assert turn.error is None and turn.text == TEXT
    assert loop.spoken() == TEXT
    names = decoded(loop.sent)
    assert names[0] == "run" and names[-1] == "finish" and names.count("run") == 1
    assert loop.connects == 1 and turn.reconnects == 0 and turn.rollovers == 0
    assert len(turn.task_ids) == 1


def test_the_first_fragment_is_flushed_and_later_ones_are_not() -> None:
    loop = Loop()
    speak(loop)
    names = decoded(loop.sent)
    assert names[1].startswith("text:") and names[2] == "flush"
    assert names.count("flush") == 1


def test_flushing_the_first_fragment_is_a_setting() -> None:
    loop = Loop(SessionSettings(flush_first_fragment=False))
    speak(loop)
    assert "flush" not in decoded(loop.sent)
    assert loop.spoken() == TEXT


def test_idle_flush_sends_and_flushes_whole_words_only() -> None:
    loop = Loop()
    loop.turn()
    loop.feed("The weather is fine, ", "and the bridge wai")
    loop.advance(0.3)
    sent_before = "".join(m.text for m in loop.messages(ContinueTask))
    loop.advance(0.5)  # past idle_flush_after (0.6 s)
    sent = "".join(m.text for m in loop.messages(ContinueTask))
    assert sent.startswith(sent_before) and sent.rstrip().endswith("bridge")
    assert decoded(loop.sent)[-1] == "flush"
    assert "wai" not in sent, "a word cut by the pause must wait"
    loop.feed("ts for the next word.")
    loop.end()
    assert loop.ended[0].text == "The weather is fine, and the bridge waits for the next word."


def test_every_pause_gets_its_idle_flush_on_time() -> None:
    """Text held after an earlier idle flush wakes the driver for this pause's flush too."""
    loop = Loop()
    loop.turn()
    loop.feed("Hello wor")
    loop.advance(0.8)  # the first pause: "Hello " goes
    loop.feed("ld, and then mo")
    loop.advance(0.8)  # the second pause, 0.6 s after the text: "world, and then " goes
    assert "".join(m.text for m in loop.messages(ContinueTask)) == "Hello world, and then "
    loop.advance(8.0)  # a long pause: the cut word goes too
    assert "".join(m.text for m in loop.messages(ContinueTask)) == "Hello world, and then mo"
    loop.feed("re.")
    loop.end()
    assert loop.ended[0].text == "Hello world, and then more."


def test_a_pause_past_the_rollover_flushes_the_cut_word_then_rolls_over() -> None:
    loop = Loop()
    loop.turn()
    loop.feed("Thinking about the weather in Paris")
    loop.advance(9.0)  # rollover_after (8 s) since the last text
    assert "Paris" in "".join(m.text for m in loop.messages(ContinueTask))
    loop.advance(9.0)  # nothing sent for 8 s: the task is finished, the connection stays
    assert decoded(loop.sent)[-1] == "finish"
    loop.feed(". It is sunny.")
    loop.end()
    [turn] = loop.ended
    assert turn.error is None and turn.rollovers == 1 and len(turn.task_ids) == 2
    assert loop.connects == 1, "a rollover reuses the connection"
    assert loop.spoken() == "Thinking about the weather in Paris. It is sunny."


def test_no_task_outlives_the_services_idle_timer() -> None:
    """Whatever the pauses, text is never older than the rollover on a running task."""
    loop = Loop()
    loop.turn()
    rng = random.Random(3)
    for piece in tokens(TEXT, 3):
        loop.feed(piece)
        loop.advance(rng.choice((0.01, 0.01, 0.7, 5.0, 12.0)))
    loop.end()
    assert loop.spoken() == TEXT
    assert all(server.task_id is None for server in loop.servers.values())


def test_size_rollover_keeps_every_task_under_the_limit() -> None:
    loop = Loop(SessionSettings(max_task_characters=60))
    speak(loop)
    [turn] = loop.ended
    assert turn.error is None and loop.spoken() == TEXT
    assert turn.rollovers >= 3 and len(turn.task_ids) == turn.rollovers + 1


def test_backpressure_holds_text_until_playback_catches_up() -> None:
    """45 s of audio wait to be played: the first words of the turn go out, the rest is held
    (text side) until playback has worked the excess off, at real time; meanwhile the idle task
    is rolled over."""
    loop = Loop(SessionSettings(max_buffered_audio=30.0))
    loop.turn()
    loop.play_end = 45.0
    loop.feed("First sentence goes out at once. ")
    loop.feed("Second sentence waits for playback. ", "Third sentence waits too. ")

    def sent() -> str:
        return "".join(m.text for m in loop.messages(ContinueTask))

    assert sent().startswith("First") and "Second" not in sent()
    loop.advance(14.5)
    assert "Second" not in sent()
    assert decoded(loop.sent)[-1] == "finish", "the held task rolls over before 23 s"
    loop.advance(1.0)  # 15 s played: 30 s left
    assert "Second" in sent()
    loop.end()
    assert loop.spoken() == (
        "First sentence goes out at once. Second sentence waits for playback. "
        "Third sentence waits too. "
    )


def test_a_connection_dropped_mid_sentence_replays_and_trims_byte_exact() -> None:
    loop = Loop(SessionSettings(backoff_initial=0.01), frame_bytes=100)
    loop.drop_after_audio = 60  # every connection dies after 6,000 bytes (75 characters)
    speak(loop)
    loop.advance(5.0)
    [turn] = loop.ended
    assert turn.error is None
    assert turn.reconnects >= 3
    assert loop.spoken() == TEXT, "nothing lost, nothing heard twice"
    assert turn.text == TEXT


def test_replay_repeats_the_flushes_so_the_service_cuts_the_same_sentences() -> None:
    loop = Loop(SessionSettings(backoff_initial=0.01))
    loop.turn()
    loop.feed("Hello there, my friend")
    loop.advance(0.7)  # idle flush: "Hello there, my " + flush
    loop.drop_after_audio = 1
    loop.feed(" and welcome back.")
    loop.end()
    loop.drop_after_audio = None
    loop.advance(1.0)
    assert loop.spoken() == "Hello there, my friend and welcome back."
    replayed = [m for conn, m in loop.sent if conn > 1]
    assert any(isinstance(m, ContinueTask) and m.flush for m in replayed)


def test_the_retry_budget_belongs_to_the_turn() -> None:
    """Every replacement task dies right after task-started: the turn ends with an error that
    carries all of its text, after max_retries + 1 attempts, never looping."""
    loop = Loop(SessionSettings(max_retries=4, backoff_initial=0.1, backoff_max=1.0))
    loop.drop_after_started = True
    speak(loop)
    loop.advance(60.0)
    [turn] = loop.ended
    assert isinstance(turn.error, ConnectionLost)
    assert turn.error.unspoken_text == TEXT
    assert loop.connects == 5
    assert "characters not spoken" in str(turn.error)


def test_the_retry_window_bounds_the_time_spent_retrying() -> None:
    loop = Loop(SessionSettings(max_retries=1000, retry_window=10.0, backoff_max=2.0))
    loop.refuse = [ConnectionLost("refused")] * 1000
    speak(loop)
    loop.advance(60.0)
    [turn] = loop.ended
    assert turn.error is not None and loop.connects < 15


def test_a_service_never_reached_is_reported_quickly() -> None:
    """Before the first connection succeeds, a closed port is a wrong URL more likely than a
    restart: the turn fails after first_connect_window, not after the full retry window."""
    loop = Loop(SessionSettings(first_connect_window=2.0, retry_window=30.0))
    loop.refuse = [ConnectionLost("refused")] * 100
    speak(loop)
    loop.advance(3.0)
    [turn] = loop.ended
    assert isinstance(turn.error, ConnectionLost) and loop.connects < 10


def test_progress_resets_the_budget() -> None:
    """A link that drops every few frames still finishes a long answer: each drop comes after
    some sentences were spoken."""
    loop = Loop(SessionSettings(max_retries=2, backoff_initial=0.01), frame_bytes=200)
    loop.drop_after_audio = 40  # 8,000 bytes: 100 characters, some sentences each time
    long_text = " ".join(f"Sentence number {i} is here." for i in range(60))
    speak(loop, long_text)
    loop.advance(30.0)
    [turn] = loop.ended
    assert turn.error is None and turn.reconnects > 2
    assert loop.spoken() == long_text


def test_backoff_doubles_up_to_its_maximum() -> None:
    loop = Loop(
        SessionSettings(
            backoff_initial=0.5, backoff_max=2.0, max_retries=10, first_connect_window=9
        )
    )
    loop.refuse = [ConnectionLost("refused")] * 5
    loop.turn()
    loop.feed("Hello there, how are you today? ")
    assert loop.connects == 2, "the first reconnect is at once"
    times = []
    for _ in range(4):
        deadline = loop.core.next_deadline()
        assert deadline is not None
        times.append(round(deadline - loop.now, 3))
        loop.advance(deadline - loop.now)
    assert times == [0.5, 1.0, 2.0, 2.0], "then doubling up to the maximum"
    loop.end()
    assert loop.ended[0].error is None


def test_a_malformed_frame_is_handled_like_a_dropped_connection() -> None:
    loop = Loop(SessionSettings(backoff_initial=0.01))
    loop.turn()
    loop.feed("Hello there, my good friend. ")
    conn = max(loop.servers)
    loop.run(loop.core.text_frame(conn, "{garbage", loop.now))
    loop.advance(0.1)
    loop.end()
    [turn] = loop.ended
    assert turn.error is None and turn.reconnects == 1
    assert loop.spoken() == "Hello there, my good friend. "


def test_errors_that_retrying_cannot_fix_end_the_turn_at_once() -> None:
    loop = Loop()
    loop.refuse = [AuthenticationError(401, "Invalid API-key provided.")]
    speak(loop)
    [turn] = loop.ended
    assert isinstance(turn.error, AuthenticationError) and loop.connects == 1
    assert TEXT.startswith(turn.error.unspoken_text), "the text read so far comes back"

    loop = Loop()
    loop.turn()
    loop.feed("Hello there, my good friend. ")
    conn = max(loop.servers)
    failed = TaskFailed(loop.servers[conn].task_id or "", "InvalidParameter", MSG_VOICE_UNKNOWN)
    loop.run(loop.core.text_frame(conn, str(encode_server_event(failed)), loop.now))
    [turn] = loop.ended
    assert isinstance(turn.error, TaskFailedError) and loop.connects == 1


def started_then(loop: Loop, mode: str) -> None:
    """A turn whose task started and spoke a sentence; then the service turns ``mode``."""
    loop.turn()
    loop.feed("Hello there, my good friend. ")
    setattr(loop, mode, True)
    loop.feed("And here is more. ")


def test_a_silent_server_is_pinged_then_replaced() -> None:
    loop = Loop(SessionSettings(probe_after=3.0, stall_timeout=10.0))
    loop.turn()
    loop.feed("Hello there, my good friend. ")
    loop.silence_existing()  # that connection hangs; a new one would work
    loop.feed("And here is more. ")
    loop.advance(3.1)
    assert loop.pings == 1 and loop.stall_checks == 0
    loop.advance(7.0)
    assert loop.stall_checks == 1 and loop.connects == 2
    loop.end()
    [turn] = loop.ended
    assert turn.error is None and turn.reconnects == 1
    assert loop.spoken() == "Hello there, my good friend. And here is more. "


def test_a_loaded_machine_is_not_a_dead_server() -> None:
    """Unread data on our socket at the stall check: we are slow, not the server."""
    loop = Loop(SessionSettings(probe_after=3.0, stall_timeout=10.0))
    loop.unread = True
    started_then(loop, "silent")
    loop.advance(10.5)
    assert loop.stall_checks == 1 and loop.connects == 1


def test_a_server_that_answers_pings_but_never_speaks_is_given_up_on() -> None:
    loop = Loop(SessionSettings(progress_timeout=60.0, max_retries=0))
    started_then(loop, "mute")
    loop.advance(59.0)
    assert loop.pings > 10 and not loop.ended
    loop.advance(2.0)
    [turn] = loop.ended
    assert isinstance(turn.error, SynthesisTimeout)
    assert turn.error.unspoken_text == "And here is more. "


def test_a_server_that_never_starts_the_task_is_given_up_on() -> None:
    loop = Loop(SessionSettings(start_timeout=10.0, max_retries=0))
    loop.mute = True
    loop.turn()
    loop.feed("Hello there, my good friend. ")
    loop.advance(10.5)
    [turn] = loop.ended
    assert isinstance(turn.error, SynthesisTimeout) and loop.pings >= 2


def test_cancel_drops_the_rest_and_the_next_turn_reuses_the_connection() -> None:
    loop = Loop()
    loop.turn()
    loop.feed(*tokens(TEXT))
    loop.silent = True  # hold the service's answer to the cancel, to see what comes before it
    loop.run(loop.core.cancel(loop.now))
    [turn] = loop.ended
    assert turn.error is None
    assert loop.messages(FinishTask)[-1].cancel
    conn, heard = max(loop.servers), bytes(loop.audio)
    assert loop.core.audio_frame(conn, b"\x01\x00" * 10, loop.now) == -1, "late audio is dropped"
    loop.silent = False
    server = loop.servers[conn]
    loop.run(loop._serve(conn, server.receive_text(_cancel_frame(server.task_id), loop.now)))
    speak(loop, "Ready for the next turn.")
    assert loop.ended[1].error is None and loop.connects == 1
    assert bytes(loop.audio).startswith(heard)
    assert loop.ended[1].text == "Ready for the next turn."


def test_preconnect_starts_the_task_the_first_turn_uses() -> None:
    loop = Loop()
    loop.run(loop.core.preconnect(True, loop.now))
    assert loop.connects == 1 and len(loop.messages(RunTask)) == 1
    speak(loop, "Hello there, my friend.")
    assert len(loop.messages(RunTask)) == 1
    assert loop.ended[0].error is None and loop.spoken() == "Hello there, my friend."


def test_an_idle_connection_closed_between_turns_is_reopened_quietly() -> None:
    loop = Loop()
    speak(loop, "First turn here.")
    conn = max(loop.servers)
    loop.run(loop.core.closed(conn, ConnectionLost("idle"), loop.now))
    speak(loop, "Second turn here.")
    assert [t.error for t in loop.ended] == [None, None] and loop.connects == 2


def test_the_connection_opens_when_the_turn_starts_and_the_task_with_the_first_text() -> None:
    loop = Loop()
    loop.turn()
    assert loop.connects == 1 and not loop.sent, "the handshake overlaps the LLM's first token"
    loop.end()
    assert loop.ended and loop.ended[0].error is None and not loop.sent, "no text, no task"


def test_words_land_on_the_turns_timeline_through_replays() -> None:
    def words(sentence: str) -> list[dict[str, object]]:
        out, ms, index = [], 0, 0
        for word in sentence.split():
            index = sentence.index(word, index)
            duration = len(word) * 2.5  # 2.5 ms of audio per character (the harness's REPEAT)
            out.append(
                {
                    "text": word,
                    "begin_index": index,
                    "end_index": index + len(word),
                    "begin_time": ms,
                    "end_time": ms + duration,
                }
            )
            ms += duration + 2.5
            index += len(word)
        return out

    text = " ".join(f"Word{i} goes here now." for i in range(30))
    clean = Loop(words=words)
    speak(clean, text)
    faulty = Loop(SessionSettings(backoff_initial=0.01), words=words, frame_bytes=100)
    faulty.drop_after_audio = 30
    speak(faulty, text)
    faulty.advance(10.0)
    assert faulty.ended[0].reconnects > 0
    for loop in (clean, faulty):
        turn = loop.ended[0]
        assert [w.text for w in turn.words] == text.split(), "each word once, in order"
        assert all(turn.text[w.text_start : w.text_end] == w.text for w in turn.words)
        starts = [w.start for w in turn.words]
        assert starts == sorted(starts)
        assert loop.placed == turn.words
    assert [round(w.start, 4) for w in faulty.ended[0].words] == [
        round(w.start, 4) for w in clean.ended[0].words
    ]


def test_close_during_a_turn_ends_it_with_an_error() -> None:
    loop = Loop()
    loop.turn()
    loop.feed("Hello there, my good friend.")
    loop.run(loop.core.close(loop.now))
    [turn] = loop.ended
    assert turn.error is not None and "closed" in str(turn.error)


def test_a_second_malformed_frame_kind_is_a_remote_protocol_error() -> None:
    loop = Loop(SessionSettings(max_retries=0))
    loop.turn()
    loop.feed("Hello there, my good friend. ")
    loop.run(loop.core.text_frame(max(loop.servers), '{"header": []}', loop.now))
    [turn] = loop.ended
    assert isinstance(turn.error, RemoteProtocolError)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    steps=st.lists(
        st.sampled_from(["feed", "wait", "long", "drop", "ping", "buffer", "cancel"]),
        max_size=40,
    ),
)
def test_deadlines_always_move_forward_and_every_turn_ends(seed: int, steps: list[str]) -> None:
    """Whatever happens, tick() never leaves a deadline in the past (the driver cannot spin),
    and a turn always ends: spoken, failed or cancelled."""
    rng = random.Random(seed)
    loop = Loop(SessionSettings(backoff_initial=0.05, backoff_max=0.5))
    pieces = iter(tokens(TEXT, seed))
    loop.turn()
    for step in steps:
        if step == "feed":
            loop.feed(next(pieces, "."))
        elif step == "wait":
            loop.advance(rng.uniform(0.0, 1.0))
        elif step == "long":
            loop.advance(rng.uniform(5.0, 25.0))
        elif step == "drop" and loop.servers:
            conn = max(loop.servers)
            loop.servers.pop(conn)
            loop.run(loop.core.closed(conn, ConnectionLost("dropped"), loop.now))
        elif step == "buffer":
            loop.play_end = loop.now + rng.choice((0.0, 5.0, 40.0))
        elif step == "cancel":
            loop.run(loop.core.cancel(loop.now))
        loop.run(loop.core.tick(loop.now))
        deadline = loop.core.next_deadline()
        assert deadline is None or deadline > loop.now
    loop.end()
    loop.advance(120.0)
    assert loop.ended and loop.ended[-1].done.is_set()


def _cancel_frame(task_id: str | None) -> str:
    return encode_client_message(FinishTask(task_id or "", cancel=True))
