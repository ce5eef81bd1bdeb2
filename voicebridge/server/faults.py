"""Fault injection for tests: what the local server does wrong, and when.

A :class:`FaultPlan` is fixed for a server's life. Handshake refusals count across all handshakes;
the other faults apply to the accepted connections listed in ``connections`` (1-based, in accept
order; None = every connection) and their triggers count events on each connection separately.
The service machine (:class:`~voicebridge.server.service.ServerProtocol`) observes the trigger
points and emits the faults as actions, so a plan can be tested without sockets; the delays are
the I/O layer's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

__all__ = ["FaultKind", "FaultPlan", "FaultPoint", "FaultState", "Trigger"]


class FaultPoint(Enum):
    """Where a trigger counts. TASK_STARTED and TASK_FINISHED faults replace that event; the
    others fire right after the event (the Nth text received, audio frame or sentence-end sent)."""

    TASK_STARTED = "task-started"
    TEXT = "text"
    AUDIO = "audio"
    SENTENCE_END = "sentence-end"
    TASK_FINISHED = "task-finished"


class FaultKind(Enum):
    FAIL = "fail"  # send task-failed (fail_code, fail_message), then close the connection
    DROP = "drop"  # abort the TCP connection: no task-failed, no close frame
    STOP = "stop"  # keep the socket open and send nothing more, read and ignore what comes


@dataclass(frozen=True)
class Trigger:
    """The ``count``-th event at ``point`` on a connection (count >= 1)."""

    point: FaultPoint
    count: int = 1


@dataclass(frozen=True)
class FaultPlan:
    """Faults of one server. Delays are seconds, before every task-started / audio frame.

    ``idle_timeout`` replaces :attr:`ServerLimits.idle_timeout` on the faulty connections (the
    error message stays the service's). The default plan injects nothing.
    """

    refuse_handshakes: int = 0
    refuse_status: int = 503
    connections: frozenset[int] | None = None
    delay_task_started: float = 0.0
    delay_audio: float = 0.0
    idle_timeout: float | None = None
    fail_at: Trigger | None = None
    fail_code: str = "InternalError"
    fail_message: str = "Internal server error!"
    drop_at: Trigger | None = None
    stop_at: Trigger | None = None

    def applies_to(self, connection: int) -> bool:
        return self.connections is None or connection in self.connections


@dataclass
class FaultState:
    """Counts events of one connection and says which fault, if any, fires now."""

    plan: FaultPlan
    counts: dict[FaultPoint, int] = field(default_factory=dict)

    def observe(self, point: FaultPoint) -> FaultKind | None:
        """Count one event at ``point``; the fault firing on it (FAIL, then DROP, then STOP)."""
        count = self.counts[point] = self.counts.get(point, 0) + 1
        for trigger, kind in (
            (self.plan.fail_at, FaultKind.FAIL),
            (self.plan.drop_at, FaultKind.DROP),
            (self.plan.stop_at, FaultKind.STOP),
        ):
            if trigger is not None and trigger.point is point and trigger.count == count:
                return kind
        return None
