"""A scripted OpenAI-compatible LLM server for the tests: real HTTP, real SSE, on 127.0.0.1:0.

It is not a model: it replays scripted replies (tokens, token timing, pauses, tool-call deltas,
refusals, failures) over ``POST /v1/chat/completions`` (``stream=true``) and ``POST /v1/responses``
exactly as OpenAI frames them, so the real ``openai`` client (sync and async) reads them. When no
scripted reply is queued it echoes the last user message. Each response closes its connection,
so ``stop()`` can join every handler thread.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from socketserver import ThreadingMixIn
from typing import Any


@dataclass(frozen=True)
class Say:
    """One text token."""

    text: str


@dataclass(frozen=True)
class Pause:
    """Send nothing for ``seconds``."""

    seconds: float


@dataclass(frozen=True)
class CallTool:
    """A function tool call, its arguments sent in ``pieces`` deltas."""

    name: str
    arguments: str
    pieces: int = 3


@dataclass(frozen=True)
class Refuse:
    """A refusal (chat ``delta.refusal`` / ``response.refusal.delta``)."""

    text: str


@dataclass(frozen=True)
class Fail:
    """Fail the stream here: ``response.failed`` or ``error`` events; an ``error`` body in chat."""

    message: str
    code: str = "server_error"
    event: str = "response.failed"


Step = Say | Pause | CallTool | Refuse | Fail


@dataclass(frozen=True)
class Reply:
    """One scripted reply; ``token_delay`` seconds pass before each token."""

    steps: Sequence[Step]
    token_delay: float = 0.0
    finish_reason: str | None = None  # default: "tool_calls" if a tool is called, else "stop"


def say(text: str) -> list[Say]:
    """``text`` cut into word tokens the way an LLM streams them (spaces lead)."""
    return [Say(token) for token in re.findall(r"\s*\S+|\s+", text)]


def echo(messages: list[dict[str, Any]]) -> Reply:
    """The default reply: repeat the last user message."""
    users = [m for m in messages if m.get("role") == "user"]
    last = users[-1]["content"] if users else ""
    return Reply(say(f"You said: {last}"))


@dataclass
class _Stats:
    requests: list[dict[str, Any]] = field(default_factory=list)
    completed: int = 0
    disconnects: int = 0


class ScriptedLLM:
    """Start with ``with ScriptedLLM() as llm:``; point a client at ``llm.base_url``."""

    def __init__(self, default: Callable[[list[dict[str, Any]]], Reply] = echo) -> None:
        self.default = default
        self._replies: deque[Reply] = deque()
        self._stats = _Stats()
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.llm = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="scripted-llm"
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def queue(self, *replies: Reply) -> None:
        """Replies for the next requests, in order (then the default again)."""
        with self._changed:
            self._replies.extend(replies)

    @property
    def requests(self) -> list[dict[str, Any]]:
        """JSON bodies received so far."""
        with self._changed:
            return list(self._stats.requests)

    def wait_streams(self, *, completed: int = 0, disconnects: int = 0, timeout: float = 5) -> None:
        """Wait until at least that many streams ended fully / were closed by the client."""
        with self._changed:
            if not self._changed.wait_for(
                lambda: (
                    self._stats.completed >= completed and self._stats.disconnects >= disconnects
                ),
                timeout,
            ):
                raise TimeoutError(f"streams: {self._stats}")

    def streams_ended(self) -> int:
        """Streams ended so far, fully sent or closed by the client."""
        with self._changed:
            return self._stats.completed + self._stats.disconnects

    def start(self) -> ScriptedLLM:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Wake every pause, stop serving, join the server thread and every handler thread."""
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> ScriptedLLM:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _next_reply(self, body: dict[str, Any]) -> Reply:
        with self._changed:
            self._stats.requests.append(body)
            if self._replies:
                return self._replies.popleft()
        return self.default(_messages(body))

    def _count(self, *, completed: int = 0, disconnects: int = 0) -> None:
        with self._changed:
            self._stats.completed += completed
            self._stats.disconnects += disconnects
            self._changed.notify_all()

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Chat ``messages``, or Responses ``input`` (a string or a list of messages)."""
    if "messages" in body:
        return list(body["messages"])
    given = body.get("input", "")
    return [{"role": "user", "content": given}] if isinstance(given, str) else list(given)


class _Server(ThreadingMixIn, HTTPServer):
    daemon_threads = False  # server_close() joins the handler threads
    block_on_close = True
    llm: ScriptedLLM


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/v1/models":
            models = [{"id": "scripted", "object": "model"}]
            self._send_json(200, {"object": "list", "data": models})
        else:
            self._send_json(404, {"error": {"message": "not found", "type": "invalid_request"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length) or b"{}")
        path = self.path.rstrip("/")
        if path == "/v1/chat/completions" and body.get("stream"):
            frames = _chat_frames(body, self.server.llm._next_reply(body))
        elif path == "/v1/responses" and body.get("stream"):
            frames = _responses_frames(body, self.server.llm._next_reply(body))
        else:
            self._send_json(400, {"error": {"message": "only stream=true is scripted"}})
            return
        self._stream(frames)

    def _send_json(self, status: int, payload: object) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        self.close_connection = True

    def _stream(self, frames: Iterator[float | bytes]) -> None:
        """Send SSE frames; a float in ``frames`` is a wait in seconds. Body ends at close."""
        llm = self.server.llm
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        try:
            for frame in frames:
                if isinstance(frame, float):
                    llm._sleep(frame)
                    if llm._stopping.is_set():
                        return
                else:
                    self.wfile.write(frame)
                    self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            llm._count(disconnects=1)
            return
        llm._count(completed=1)


def _sse(data: object, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data)}\n\n".encode()


def _finish_reason(reply: Reply) -> str:
    if reply.finish_reason is not None:
        return reply.finish_reason
    return "tool_calls" if any(isinstance(s, CallTool) for s in reply.steps) else "stop"


def _pieces(text: str, count: int) -> list[str]:
    size = max(1, -(-len(text) // max(1, count)))
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _chat_frames(body: dict[str, Any], reply: Reply) -> Iterator[float | bytes]:
    """Chat Completions chunks as OpenAI streams them (role chunk first, [DONE] last)."""
    usage = bool((body.get("stream_options") or {}).get("include_usage"))
    base = {
        "id": "chatcmpl-scripted",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body.get("model", "scripted"),
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        extra = {"usage": None} if usage else {}
        return _sse({**base, "choices": [choice], **extra})

    yield chunk({"role": "assistant", "content": "", "refusal": None})
    tokens = 0
    tool_index = 0
    for step in reply.steps:
        if isinstance(step, Say):
            yield float(reply.token_delay)
            yield chunk({"content": step.text})
            tokens += 1
        elif isinstance(step, Pause):
            yield float(step.seconds)
        elif isinstance(step, Refuse):
            yield chunk({"content": None, "refusal": step.text})
        elif isinstance(step, CallTool):
            head = {"index": tool_index, "id": f"call_{tool_index}", "type": "function"}
            call = {**head, "function": {"name": step.name, "arguments": ""}}
            yield chunk({"tool_calls": [call]})
            for piece in _pieces(step.arguments, step.pieces):
                call = {"index": tool_index, "function": {"arguments": piece}}
                yield chunk({"tool_calls": [call]})
            tool_index += 1
        else:
            yield _sse({"error": {"message": step.message, "type": step.code, "code": step.code}})
            return
    yield chunk({}, _finish_reason(reply))
    if usage:
        counts = {"prompt_tokens": 10, "completion_tokens": tokens, "total_tokens": 10 + tokens}
        yield _sse({**base, "choices": [], "usage": counts})
    yield b"data: [DONE]\n\n"


def _responses_frames(body: dict[str, Any], reply: Reply) -> Iterator[float | bytes]:
    """Responses API events as OpenAI streams them (``event:`` lines, sequence numbers)."""
    sequence = iter(range(1_000_000))
    response: dict[str, Any] = {
        "id": "resp_scripted",
        "object": "response",
        "created_at": int(time.time()),
        "model": body.get("model", "scripted"),
        "status": "in_progress",
        "output": [],
        "error": None,
        "incomplete_details": None,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
    }

    def event(kind: str, **fields: Any) -> bytes:
        return _sse({"type": kind, "sequence_number": next(sequence), **fields}, kind)

    yield event("response.created", response=response)
    yield event("response.in_progress", response=response)
    text = ""
    message_open = False
    for step in reply.steps:
        if isinstance(step, Say | Refuse) and not message_open:
            message_open = True
            item = {"id": "msg_0", "type": "message", "role": "assistant", "status": "in_progress"}
            yield event("response.output_item.added", output_index=0, item={**item, "content": []})
            part = {"type": "output_text", "text": "", "annotations": []}
            yield event(
                "response.content_part.added",
                item_id="msg_0",
                output_index=0,
                content_index=0,
                part=part,
            )
        if isinstance(step, Say):
            yield float(reply.token_delay)
            text += step.text
            yield event(
                "response.output_text.delta",
                item_id="msg_0",
                output_index=0,
                content_index=0,
                delta=step.text,
                logprobs=[],
            )
        elif isinstance(step, Pause):
            yield float(step.seconds)
        elif isinstance(step, Refuse):
            yield event(
                "response.refusal.delta",
                item_id="msg_0",
                output_index=0,
                content_index=0,
                delta=step.text,
            )
        elif isinstance(step, CallTool):
            for piece in _pieces(step.arguments, step.pieces):
                yield event(
                    "response.function_call_arguments.delta",
                    item_id="fc_0",
                    output_index=1,
                    delta=piece,
                )
        elif step.event == "error":
            yield event("error", code=step.code, message=step.message, param=None)
            return
        else:
            failed = {**response, "status": "failed"}
            failed["error"] = {"code": step.code, "message": step.message}
            yield event("response.failed", response=failed)
            return
    content = [{"type": "output_text", "text": text, "annotations": []}]
    message = {"id": "msg_0", "type": "message", "role": "assistant", "status": "completed"}
    response = {**response, "status": "completed", "output": [{**message, "content": content}]}
    yield event("response.completed", response=response)
