"""Helpers shared by the framework tests: fast timers, what the server synthesized, leftovers."""

from __future__ import annotations

import asyncio
import threading

from voicebridge.server import ServerThread
from voicebridge.server.faults import FaultPlan
from voicebridge.server.service import ServerLimits
from voicebridge.session import SessionSettings

TEXT = "The weather in Hangzhou is mild today. Expect light rain after six in the evening."
TOKENS = ["The weather", " in Hang", "zhou is mild", " today. Expect", " light rain after",
          " six in", " the evening."]  # fmt: skip
STORY = "A lighthouse keeper counted the waves every night, one by one, until dawn came. " * 12

# With the server's idle timer cut to SHORT_IDLE s, a pause of PAUSE s would fail a task that was
# not rolled over; FAST rolls over well before it.
SHORT_IDLE = ServerLimits(idle_timeout=1.0)
PAUSE = 1.6
FAST = SessionSettings(idle_flush_after=0.1, rollover_after=0.4, backoff_initial=0.01)
# A server that sends audio about as fast as it plays, so that a barge-in lands mid-turn.
SLOW_AUDIO = FaultPlan(delay_audio=0.05)
REAL_PAUSE = 30.0  # against the real 23 s timer (slow tests)


def spoken(server: ServerThread) -> str:
    """Every sentence the server finished, all connections and tasks, in order."""
    return "".join(t.text for t in server.transcripts)


def tasks_of(server: ServerThread) -> int:
    return sum(len(t.tasks) for t in server.transcripts)


def other_tasks() -> set[asyncio.Task[object]]:
    """Tasks still alive on the running loop, besides the one asking."""
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()}


_BRIDGE_THREADS = ("voicebridge-session", "voicebridge-audio-dispatcher", "voicebridge-receive")


def bridge_threads() -> list[str]:
    """Threads a bridge starts (session worker, audio dispatcher, receive thread) still alive."""
    return [t.name for t in threading.enumerate() if t.name.startswith(_BRIDGE_THREADS)]
