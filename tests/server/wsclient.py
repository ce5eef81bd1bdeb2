"""A bare CosyVoice client for server tests: websocket-client plus voicebridge.protocol's codecs,
with no state machine of its own, so tests can also send what a correct client never would."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import websocket

from voicebridge.protocol import (
    Audio,
    ContinueTask,
    FinishTask,
    RunTask,
    ServerEvent,
    SynthesisParameters,
    TaskFailed,
    TaskFinished,
    decode_server_event,
    encode_client_message,
    new_task_id,
)


class RawClient:
    def __init__(self, url: str, key: str = "sk-any", timeout: float = 10.0) -> None:
        self.ws = websocket.create_connection(
            url, header=[f"Authorization: Bearer {key}"], timeout=timeout
        )
        self.task_id = ""

    def close(self) -> None:
        self.ws.close(timeout=2)
        self.ws.shutdown()  # also when the server closed first (close() then skips the socket)

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def run_task(
        self,
        voice: str = "longxiaochun_v2",
        model: str = "cosyvoice-v2",
        format: str = "pcm",
        sample_rate: int = 22050,
        **options: Any,
    ) -> str:
        """Send run-task (``options``: volume, rate, pitch...); returns the new task id."""
        self.task_id = new_task_id()
        params = SynthesisParameters(model, voice, format, sample_rate, **options)
        self.ws.send(encode_client_message(RunTask.create(self.task_id, params)))
        return self.task_id

    def send_text(self, text: str, *, flush: bool = False) -> None:
        self.ws.send(encode_client_message(ContinueTask(self.task_id, text, flush=flush)))

    def finish(self, *, cancel: bool = False) -> None:
        self.ws.send(encode_client_message(FinishTask(self.task_id, cancel=cancel)))

    def send_json(self, message: dict[str, Any]) -> None:
        self.ws.send(json.dumps(message))

    def recv(self) -> ServerEvent:
        frame = self.ws.recv()
        return Audio(frame) if isinstance(frame, bytes) else decode_server_event(frame)

    def until_end(self) -> list[ServerEvent]:
        """Events up to and including task-finished or task-failed."""
        events: list[ServerEvent] = []
        while not events or not isinstance(events[-1], (TaskFinished, TaskFailed)):
            events.append(self.recv())
        return events

    def speak(self, *texts: str, **run_options: Any) -> list[ServerEvent]:
        """One whole task: run-task, the texts, finish-task; every event after task-started."""
        self.run_task(**run_options)
        started = self.recv()
        if isinstance(started, TaskFailed):
            return [started]
        for text in texts:
            self.send_text(text)
        self.finish()
        return self.until_end()


def audio_of(events: list[ServerEvent]) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, Audio))


@contextmanager
def serve_process(**arguments: Any) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``voicebridge.server.serve(port=0, **arguments)`` in a child process, and its URL (read
    from the line it prints); killed if still running at the end."""
    call = ", ".join(f"{name}={value!r}" for name, value in {"port": 0, **arguments}.items())
    process = subprocess.Popen(
        [sys.executable, "-c", f"from voicebridge.server import serve; serve({call})"],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        url = re.search(r"ws://\S+", line)
        assert url, line
        yield process, url.group(0)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)
