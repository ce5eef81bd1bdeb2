"""Dispatchers: the threads that take audio off the janus queue and hand it to the pipelines.

A :class:`Dispatcher` is one thread and one janus queue of ``(handler, turn, payload)`` items,
run in order. A pipeline whose sinks may block (a speaker waits for its device) owns one; every
pipeline whose sinks never block shares the process's dispatcher (:func:`acquire_shared`), so a
hundred sessions writing to files or to nowhere need one dispatcher thread, not a hundred, and
that thread sleeps less (it finds work waiting instead of being woken for every frame).

Putting never blocks (the queue is unbounded: backpressure is on the text side). A handler that
raises is logged and the thread goes on.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import janus

__all__ = ["Dispatcher", "Handler", "acquire_shared", "release_shared"]

logger = logging.getLogger(__name__)

Handler = Callable[[int, object], None]
_Item = tuple[Handler | None, int, object]  # a None handler stops the thread

_shared: Dispatcher | None = None
_shared_users = 0
_shared_lock = threading.Lock()


class Dispatcher:
    """One thread running queued items in order (see the module docstring)."""

    def __init__(self, name: str = "voicebridge-audio-dispatcher") -> None:
        self._queue: janus.Queue[_Item] = janus.Queue()
        self._put = self._queue.sync_q.put_nowait
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, handler: Handler, turn: int, payload: object) -> None:
        """Queue ``handler(turn, payload)``; any thread, never blocks, never raises."""
        try:
            self._put((handler, turn, payload))
        except janus.SyncQueueShutDown:
            return  # stopped: nothing will run it

    def stop(self, timeout: float) -> bool:
        """Run what is queued, then stop; True if the thread ended within ``timeout``."""
        self.put(None, 0, None)  # type: ignore[arg-type]
        self._thread.join(timeout)
        stopped = not self._thread.is_alive()
        self._queue.close()
        return stopped

    def _run(self) -> None:
        get = self._queue.sync_q.get
        while True:
            try:
                handler, turn, payload = get()
            except janus.SyncQueueShutDown:
                return
            if handler is None:
                return
            try:
                handler(turn, payload)
            except Exception:
                logger.exception("an audio handler failed on the dispatcher thread")


def acquire_shared() -> Dispatcher:
    """The process's shared dispatcher (started on first use); give it back with
    :func:`release_shared`."""
    global _shared, _shared_users
    with _shared_lock:
        if _shared is None:
            _shared = Dispatcher("voicebridge-audio-shared")
        _shared_users += 1
        return _shared


def release_shared(timeout: float) -> None:
    """Give back the shared dispatcher; the last user stops its thread."""
    global _shared, _shared_users
    with _shared_lock:
        _shared_users -= 1
        if _shared_users or _shared is None:
            return
        dispatcher, _shared = _shared, None
    if not dispatcher.stop(timeout):
        logger.warning("the shared audio dispatcher did not stop within %.1f s", timeout)
