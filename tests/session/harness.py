"""SessionCore against the in-memory service: no sockets, no threads, a fake clock.

:class:`Loop` plays the driver's part. It carries the core's frames to a real
:class:`~voicebridge.server.service.ServerProtocol` per connection, "synthesizes" each sentence at
once into audio that spells its own text (two bytes per character, ``REPEAT`` times, cut into
frames of ``frame_bytes``), and feeds every server event back to the core. Faults are injected by
hand (drop a connection after the Nth audio frame, refuse connects, stop answering).
Decoding the delivered audio gives back exactly what a listener would have heard.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from voicebridge.errors import ConnectionLost, TransportError, VoiceBridgeError
from voicebridge.protocol import (
    Audio,
    ClientMessage,
    ContinueTask,
    FinishTask,
    ResultGenerated,
    RunTask,
    SynthesisParameters,
    decode_client_message,
    encode_server_event,
)
from voicebridge.server.service import (
    CancelSynthesis,
    CloseConnection,
    ServerAction,
    ServerProtocol,
    Synthesize,
)
from voicebridge.session.actions import (
    IO_ACTIONS,
    Action,
    CheckStall,
    Close,
    Connect,
    Ping,
    Send,
    TurnEnded,
    WordsPlaced,
)
from voicebridge.session.core import SessionCore
from voicebridge.session.settings import SessionSettings
from voicebridge.turn import Turn, Word

PARAMS = SynthesisParameters("cosyvoice-v2", "longxiaochun_v2", sample_rate=16000)
BPS = 32000  # bytes per second of 16-bit mono at 16 kHz
REPEAT = 40  # samples per character: 2.5 ms of "speech" per character


def spell(text: str) -> bytes:
    """The audio of ``text``: each character's code point as REPEAT 16-bit samples."""
    return b"".join((ord(c) & 0xFFFF).to_bytes(2, "little") * REPEAT for c in text)


def unspell(audio: bytes) -> str:
    """What a listener heard: one character per REPEAT samples (partial characters dropped)."""
    step = 2 * REPEAT
    return "".join(
        chr(int.from_bytes(audio[i : i + 2], "little"))
        for i in range(0, len(audio) - step + 1, step)
    )


class Loop:
    """The core, its clock, and the in-memory service (see the module docstring)."""

    def __init__(
        self,
        settings: SessionSettings | None = None,
        *,
        frame_bytes: int = 400,
        words: Callable[[str], list[dict[str, Any]]] | None = None,
    ) -> None:
        self.now = 0.0
        self.play_end = 0.0  # the player has audio until then (it plays at real time)
        self.core = SessionCore(
            PARAMS,
            settings or SessionSettings(),
            bytes_per_second=BPS,
            buffered_audio=lambda: max(0.0, self.play_end - self.now),
        )
        self.frame_bytes = frame_bytes
        self.words_for = words
        self.servers: dict[int, ServerProtocol] = {}
        self.sent: list[tuple[int, ClientMessage]] = []
        self.connects = 0
        self.refuse: list[VoiceBridgeError] = []  # errors for the next connects, in order
        self.drop_after_audio: int | None = None  # close each connection after N audio frames
        self.drop_after_started = False  # close each connection right after task-started
        self.silent = False  # the service stops answering (frames and pings)...
        self.silent_below = 1 << 30  # ...on connections with a lower id (see silence_existing)
        self.mute = False  # the service answers pings, nothing else
        self.unread = False  # answer to CheckStall
        self.audio = bytearray()
        self.placed: list[Word] = []
        self.ended: list[Turn] = []
        self.pings = 0
        self.stall_checks = 0
        self._frames: dict[int, int] = {}
        self.waiting_until: float | None = None  # the driver thread sleeps until then

    # ------------------------------------------------------------------ driving the core

    def turn(self) -> Turn:
        turn = Turn(len(self.ended) + 1, self.now)
        self.run(self.core.begin_turn(turn, self.now))
        return turn

    def feed(self, *pieces: str) -> None:
        for piece in pieces:
            self.run(self.core.feed(self.core.turn, piece, self.now))

    def end(self) -> None:
        self.run(self.core.end_turn(self.core.turn, self.now))

    def advance(self, seconds: float) -> None:
        """Move the clock, waking at the deadline the driver thread sleeps until, as it does:
        a deadline that came sooner without the core saying so (``sooner``) is missed."""
        target = self.now + seconds
        while self.waiting_until is not None and self.waiting_until <= target:
            self.now = max(self.now, self.waiting_until)
            self.run(self.core.tick(self.now))
            self.waiting_until = self.core.next_deadline()
        self.now = target

    def run(self, actions: list[Action]) -> None:
        """Perform ``actions`` and what they lead to, then look at the deadline as the driver
        does: anew after I/O (it woke to do it), else only when the core says ``sooner``."""
        pending = list(actions)
        woke = False
        while pending:
            action = pending.pop(0)
            woke = woke or isinstance(action, IO_ACTIONS)
            pending.extend(self._perform(action))
        if woke or self.core.sooner:
            self.core.sooner = False
            deadline = self.core.next_deadline()
            if woke or self.waiting_until is None:
                self.waiting_until = deadline
            elif deadline is not None:
                self.waiting_until = min(self.waiting_until, deadline)

    def silence_existing(self) -> None:
        """The connections open now stop answering; new ones work (a server that hung)."""
        self.silent = True
        self.silent_below = max(self.servers, default=0) + 1

    def spoken(self) -> str:
        return unspell(bytes(self.audio))

    def messages(self, kind: type) -> list[Any]:
        return [m for _, m in self.sent if isinstance(m, kind)]

    # ------------------------------------------------------------------ the driver's part

    def _perform(self, action: Action) -> list[Action]:
        core, now = self.core, self.now
        if isinstance(action, Connect):
            self.connects += 1
            if self.refuse:
                return core.connect_failed(action.conn, self.refuse.pop(0), now)
            self.servers[action.conn] = ServerProtocol(now=now)
            self._frames[action.conn] = 0
            return core.connected(action.conn, now)
        if isinstance(action, Send):
            server = self.servers.get(action.conn)
            if server is None or server.closed:
                return core.send_failed(action.conn, ConnectionLost("closed"), now)
            self.sent.append((action.conn, decode_client_message(action.frame)))
            if (self.silent and action.conn < self.silent_below) or self.mute:
                return []
            return self._serve(action.conn, server.receive_text(action.frame, now))
        if isinstance(action, Ping):
            self.pings += 1
            if not (self.silent and action.conn < self.silent_below):
                core.control_frame(action.conn, now)
            return []
        if isinstance(action, CheckStall):
            self.stall_checks += 1
            return core.stalled_unread(self.unread, now)
        if isinstance(action, Close):
            self.servers.pop(action.conn, None)
            return []
        if isinstance(action, WordsPlaced):
            self.placed.extend(action.words)
        elif isinstance(action, TurnEnded):
            self.ended.append(action.turn)
        return []

    def _serve(self, conn: int, server_actions: list[ServerAction]) -> list[Action]:
        """Play the service's I/O layer: send its events, synthesize its sentences at once."""
        out: list[Action] = []
        queue = list(server_actions)
        server = self.servers[conn]
        while queue:
            action = queue.pop(0)
            if conn not in self.servers:
                return out  # the connection was dropped
            if isinstance(action, CancelSynthesis):
                continue  # sentences are synthesized at once here: nothing is in flight
            if isinstance(action, Synthesize):
                queue[:0] = self._synthesize(server, action)
            elif isinstance(action, CloseConnection):
                self.servers.pop(conn, None)
                out += self.core.closed(conn, ConnectionLost(action.reason), self.now)
            elif isinstance(action, Audio):
                skip = self.core.audio_frame(conn, action.data, self.now)
                if skip >= 0:
                    self.audio += action.data[skip:]
                self._frames[conn] += 1
                if (
                    self.drop_after_audio is not None
                    and self._frames[conn] >= self.drop_after_audio
                ):
                    self.servers.pop(conn, None)
                    out += self.core.closed(conn, ConnectionLost("dropped"), self.now)
            else:
                if self.words_for is not None and isinstance(action, ResultGenerated):
                    words = self.words_for(action.original_text or "")
                    if action.type == "sentence-end":
                        action = replace(action, words=tuple(words))
                out += self.core.text_frame(conn, str(encode_server_event(action)), self.now)
                if self.drop_after_started and type(action).__name__ == "TaskStarted":
                    self.servers.pop(conn, None)
                    out += self.core.closed(conn, ConnectionLost("dropped"), self.now)
        return out

    def _synthesize(self, server: ServerProtocol, action: Synthesize) -> list[ServerAction]:
        events = server.sentence_begin(action.task_id, action.index, action.text)
        audio = spell(action.text)
        for start in range(0, len(audio), self.frame_bytes):
            chunk = audio[start : start + self.frame_bytes]
            events += server.sentence_chunk(action.task_id, action.index, chunk)
        events += server.sentence_done(action.task_id, action.index, action.text, self.now)
        return events


def decoded(messages: list[tuple[int, ClientMessage]]) -> list[str]:
    """The client messages as short names: run, text:<...>, flush, finish, cancel."""
    names = []
    for _, message in messages:
        if isinstance(message, RunTask):
            names.append("run")
        elif isinstance(message, ContinueTask):
            names.append("flush" if message.flush else f"text:{message.text}")
        elif isinstance(message, FinishTask):
            names.append("cancel" if message.cancel else "finish")
    return names


__all__ = ["BPS", "PARAMS", "Loop", "TransportError", "decoded", "spell", "unspell"]
