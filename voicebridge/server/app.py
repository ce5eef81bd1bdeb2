"""The local CosyVoice-compatible WebSocket server: a thin asyncio layer over ServerProtocol.

Per connection four coroutines run on the event loop: the receiver (frames into the protocol),
the timer (the protocol's deadlines, re-armed after every protocol call), the synthesizer (one
sentence at a time, engine chunks pulled on a worker thread) and the sender (the only writer, so
frames leave in exactly the order the protocol produced them).
Fault injection (:mod:`.faults`) and transcripts happen in the sender and receiver.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import signal
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any, TypeVar

from websockets.asyncio.server import Server, ServerConnection
from websockets.asyncio.server import serve as websockets_serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from ..errors import ConfigurationError, SynthesisTimeout, VoiceBridgeError
from ..protocol import (
    Audio,
    ContinueTask,
    ResultGenerated,
    ServerEvent,
    TaskFailed,
    TaskFinished,
    TaskStarted,
    decode_client_message,
    encode_server_event,
)
from ..voices import voice_language
from .encoding import SERVER_FORMATS, TaskEncoder
from .engines import Engine, EspeakEngine, ToneEngine
from .faults import FaultKind, FaultPlan, FaultPoint, FaultState
from .service import (
    CancelSynthesis,
    CloseConnection,
    ServerAction,
    ServerLimits,
    ServerProtocol,
    Synthesize,
)

__all__ = ["PATH", "LocalServer", "ServerThread", "Transcript", "serve"]

PATH = "/api-ws/v1/inference"
_log = logging.getLogger("voicebridge.server")
_T = TypeVar("_T")
_OUTBOX_HIGH = 32  # frames queued before the synthesizer waits for the sender
_CLOSE_TIMEOUT = 2.0  # seconds a closing peer gets to answer the close frame and drop TCP
_STOP_TIMEOUT = 15.0  # seconds a connection's coroutines get to finish when it ends


@dataclass
class Transcript:
    """What one connection synthesized: per task id, the sentences whose sentence-end was sent."""

    connection: int
    tasks: dict[str, list[str]] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """All sentences of all tasks, in order."""
        return "".join(s for sentences in self.tasks.values() for s in sentences)


class LocalServer:
    """CosyVoice-compatible server on ``ws://host:port/api-ws/v1/inference`` (asyncio).

    ``api_key=None`` (or empty) accepts any key; ``engine`` is ``"espeak"``, ``"tone"`` or an
    :class:`Engine` (owned by the caller). ``port=0`` picks a free port; read :attr:`url`.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        engine: str | Engine = "espeak",
        limits: ServerLimits | None = None,
        faults: FaultPlan | None = None,
    ) -> None:
        if isinstance(engine, str) and engine not in ("espeak", "tone"):
            raise ConfigurationError(f"unknown engine {engine!r} (expected 'espeak' or 'tone')")
        self.host = host
        self.port = port
        self.limits = limits or ServerLimits()
        self.faults = faults or FaultPlan()
        self._api_key = api_key or None
        self._engine_choice = engine
        self._engine: Engine | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._server: Server | None = None
        self._transcripts: list[Transcript] = []
        self._handshakes_refused = 0
        self._accepted = 0

    def __repr__(self) -> str:  # never shows the key
        return f"LocalServer(url={self.url!r}, engine={self._engine_choice!r})"

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        host = f"[{host}]" if ":" in host else host
        return f"ws://{host}:{self.port}{PATH}"

    @property
    def transcripts(self) -> list[Transcript]:
        """A copy of the transcripts, one per accepted connection (call on the loop's thread)."""
        return [
            Transcript(t.connection, {k: list(v) for k, v in t.tasks.items()})
            for t in self._transcripts
        ]

    async def start(self) -> None:
        """Start the engine and listen; :attr:`port` is the real port afterwards."""
        if self._server is not None:
            return
        self._engine = _open_engine(self._engine_choice)
        self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="voicebridge-synth")
        try:
            self._server = await websockets_serve(
                self._handle,
                self.host,
                self.port,
                process_request=self._check_request,
                compression=None,
                close_timeout=_CLOSE_TIMEOUT,
            )
        except OSError as exc:
            await self.stop()
            raise ConfigurationError(f"cannot listen on {self.host}:{self.port}: {exc}") from exc
        self.port = next(iter(self._server.sockets)).getsockname()[1]

    async def __aenter__(self) -> LocalServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def stop(self) -> None:
        """Close every connection, wait for their coroutines, join the worker threads."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        if self._engine is not None:
            _close_engine(self._engine_choice, self._engine)
        self._engine = None

    def _check_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path not in (PATH, PATH + "/"):
            return connection.respond(404, "Not Found\n")
        if self._handshakes_refused < self.faults.refuse_handshakes:
            self._handshakes_refused += 1
            return connection.respond(self.faults.refuse_status, "Refused (fault injection)\n")
        if self._api_key is None or _bearer_matches(request, self._api_key):
            return None
        body = {
            "code": "InvalidApiKey",
            "message": "Invalid API-key provided.",
            "request_id": str(uuid.uuid4()),
        }
        response = connection.respond(401, json.dumps(body))
        del response.headers["Content-Type"]
        response.headers["Content-Type"] = "application/json"
        return response

    async def _handle(self, websocket: ServerConnection) -> None:
        assert self._engine is not None and self._executor is not None
        self._accepted += 1
        number = self._accepted
        plan = self.faults if self.faults.applies_to(number) else FaultPlan()
        limits = self.limits
        if plan.idle_timeout is not None:
            limits = replace(limits, idle_timeout=plan.idle_timeout)
        transcript = Transcript(number)
        self._transcripts.append(transcript)
        connection = _Connection(
            websocket, self._engine, self._executor, limits, FaultState(plan), transcript
        )
        await connection.run()


def _bearer_matches(request: Request, api_key: str) -> bool:
    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip(), api_key)


class _Connection:
    """One accepted WebSocket; everything runs on the event loop except engine iteration."""

    def __init__(
        self,
        websocket: ServerConnection,
        engine: Engine,
        executor: ThreadPoolExecutor,
        limits: ServerLimits,
        faults: FaultState,
        transcript: Transcript,
    ) -> None:
        self._ws = websocket
        self._engine = engine
        self._executor = executor
        self._loop = asyncio.get_running_loop()
        self._faults = faults
        self._transcript = transcript
        self._protocol = ServerProtocol(
            now=self._loop.time(),
            limits=limits,
            voice_check=lambda model, voice: voice_language(model, voice) is not None,
            formats=SERVER_FORMATS,
        )
        self._outbox: asyncio.Queue[ServerEvent | _Fault | _Marker] = asyncio.Queue()
        self._sentences: asyncio.Queue[Synthesize | None] = asyncio.Queue()
        self._encoder: tuple[str, TaskEncoder] | None = None
        self._stopped = False  # after a fault or a close: send nothing more
        self._rearm = asyncio.Event()  # the protocol's deadline may have moved
        self._ending = False  # the receiver is done: synthesize nothing more

    async def run(self) -> None:
        sender = asyncio.create_task(self._send_loop())
        synthesizer = asyncio.create_task(self._synthesis_loop())
        timer = asyncio.create_task(self._timer_loop())
        try:
            await self._receive_loop()
        finally:
            self._ending = True
            self._rearm.set()
            await _finish(timer)
            self._sentences.put_nowait(None)
            await _finish(synthesizer)
            self._outbox.put_nowait(_Marker.END)  # after what the synthesizer queued
            await _finish(sender)

    # ---- receiver

    async def _receive_loop(self) -> None:
        """Until the connection closes (the timer's idle close included)."""
        while not self._protocol.closed:
            try:
                frame = await self._ws.recv()
            except ConnectionClosed:
                return
            if self._stopped:
                continue  # stop-answering fault: read and ignore
            now = self._loop.time()
            if isinstance(frame, bytes):
                self._dispatch(self._protocol.receive_binary(frame, now))
                continue
            if self._faults.watches(FaultPoint.TEXT) and self._is_text(frame):
                fault = self._faults.observe(FaultPoint.TEXT)
                if fault is not None:
                    self._outbox.put_nowait(_Fault(fault, self._protocol.task_id or ""))
                    continue
            self._dispatch(self._protocol.receive_text(frame, now))

    async def _timer_loop(self) -> None:
        while not (self._protocol.closed or self._ending):
            deadline = None if self._stopped else self._protocol.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - self._loop.time())
            self._rearm.clear()
            try:
                await asyncio.wait_for(self._rearm.wait(), timeout)
            except asyncio.TimeoutError:
                if not self._stopped:
                    self._dispatch(self._protocol.poll(self._loop.time()))

    @staticmethod
    def _is_text(frame: str) -> bool:
        with contextlib.suppress(VoiceBridgeError):
            message = decode_client_message(frame)
            return isinstance(message, ContinueTask) and bool(message.text)
        return False

    def _dispatch(self, actions: list[ServerAction]) -> None:
        """Route the protocol's actions: events and closes to the sender, sentences to the
        synthesizer (CancelSynthesis needs nothing: the synthesizer checks the running task)."""
        self._rearm.set()
        for action in actions:
            if isinstance(action, Synthesize):
                self._sentences.put_nowait(action)
            elif isinstance(action, CloseConnection):
                self._outbox.put_nowait(_Marker.CLOSE)
            elif not isinstance(action, CancelSynthesis):
                self._outbox.put_nowait(action)

    # ---- synthesizer

    async def _synthesis_loop(self) -> None:
        while (action := await self._sentences.get()) is not None:
            if not self._current(action.task_id):
                continue
            try:
                await self._synthesize(action)
            except VoiceBridgeError as exc:
                _log.warning("synthesis failed: %s", exc)
                self._dispatch(self._protocol.synthesis_failed(action.task_id, str(exc)))

    def _current(self, task_id: str) -> bool:
        return not (self._stopped or self._ending) and self._protocol.task_id == task_id

    async def _synthesize(self, action: Synthesize) -> None:
        task_id, index, params = action.task_id, action.index, action.parameters
        if self._encoder is None or self._encoder[0] != task_id:
            encoder = TaskEncoder(params.format, self._engine.sample_rate, params.sample_rate)
            self._encoder = (task_id, encoder)
        encoder = self._encoder[1]
        language = voice_language(params.model, params.voice) or "cmn"
        self._dispatch(self._protocol.sentence_begin(task_id, index, action.text))
        chunks = await self._in_thread(
            self._engine.synthesize, action.text, language, params.rate, params.pitch, params.volume
        )
        try:
            while (chunk := await self._in_thread(next, chunks, b"")) != b"":
                if not self._current(task_id):
                    return
                self._dispatch(self._protocol.sentence_chunk(task_id, index, encoder.encode(chunk)))
                if self._outbox.qsize() > _OUTBOX_HIGH:
                    await self._outbox.join()
        finally:
            await self._in_thread(_close_iterator, chunks)
        self._dispatch(self._protocol.sentence_chunk(task_id, index, encoder.end_sentence()))
        self._dispatch(self._protocol.sentence_done(task_id, index, action.text, self._loop.time()))

    async def _in_thread(self, func: Callable[..., _T], *args: Any) -> _T:
        return await self._loop.run_in_executor(self._executor, func, *args)

    # ---- sender

    async def _send_loop(self) -> None:
        while True:
            item = await self._outbox.get()
            try:
                if isinstance(item, _Marker):
                    self._stopped = True
                    await self._ws.close()
                    if item is _Marker.END:
                        return
                elif isinstance(item, _Fault):
                    await self._apply_fault(item.kind, item.task_id)
                elif not self._stopped:
                    await self._send_event(item)
            except ConnectionClosed:
                self._stopped = True
            finally:
                self._outbox.task_done()

    async def _send_event(self, event: ServerEvent) -> None:
        plan = self._faults.plan
        if isinstance(event, TaskStarted | TaskFinished):
            if isinstance(event, TaskStarted) and plan.delay_task_started:
                await asyncio.sleep(plan.delay_task_started)
            point = (
                FaultPoint.TASK_STARTED
                if isinstance(event, TaskStarted)
                else FaultPoint.TASK_FINISHED
            )
            fault = self._faults.observe(point)
            if fault is not None:  # replaces the event
                await self._apply_fault(fault, event.task_id)
                return
        elif isinstance(event, Audio) and plan.delay_audio:
            await asyncio.sleep(plan.delay_audio)
        await self._ws.send(encode_server_event(event))
        after = _point_after(event)
        if isinstance(event, ResultGenerated) and after is FaultPoint.SENTENCE_END:
            self._transcript.tasks.setdefault(event.task_id, []).append(event.original_text or "")
        if after is not None and (fault := self._faults.observe(after)) is not None:
            await self._apply_fault(fault, self._protocol.task_id or "")

    async def _apply_fault(self, kind: FaultKind, task_id: str) -> None:
        self._stopped = True
        if kind is FaultKind.FAIL:
            plan = self._faults.plan
            failed = TaskFailed(task_id, plan.fail_code, plan.fail_message)
            await self._ws.send(encode_server_event(failed))
            await self._ws.close()
        elif kind is FaultKind.DROP:
            self._ws.transport.abort()


class _Marker(Enum):
    CLOSE = "close"  # close the connection after what is queued (the protocol asked)
    END = "end"  # the connection is over: close if still open, and stop the sender


async def _finish(task: asyncio.Task[None]) -> None:
    """Wait for one of a connection's coroutines, bounded; cancel it if it does not end."""
    done, _ = await asyncio.wait({task}, timeout=_STOP_TIMEOUT)
    if not done:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    elif not task.cancelled() and (error := task.exception()) is not None:
        _log.error("connection coroutine failed", exc_info=error)


@dataclass(frozen=True)
class _Fault:
    kind: FaultKind
    task_id: str


def _point_after(event: ServerEvent) -> FaultPoint | None:
    if isinstance(event, Audio):
        return FaultPoint.AUDIO
    if isinstance(event, ResultGenerated) and event.type == "sentence-end":
        return FaultPoint.SENTENCE_END
    return None


def _close_iterator(chunks: Iterator[bytes]) -> None:
    close = getattr(chunks, "close", None)
    if close is not None:
        close()


# --------------------------------------------------------------------------- engines


def _open_engine(choice: str | Engine) -> Engine:
    if choice == "tone":
        return ToneEngine()
    if choice == "espeak":
        return EspeakEngine.acquire()
    assert not isinstance(choice, str)
    return choice


def _close_engine(choice: str | Engine, engine: Engine) -> None:
    """Close what :func:`_open_engine` made; an engine passed in belongs to the caller."""
    if choice == "espeak":
        assert isinstance(engine, EspeakEngine)
        engine.release()
    elif choice == "tone":
        engine.close()


# --------------------------------------------------------------------------- sync wrappers


class ServerThread:
    """A :class:`LocalServer` on its own event loop in a background thread (context manager).

    ``with ServerThread(engine="tone") as server: connect(server.url)``; leaving the block stops
    the server and joins the thread. Arguments are those of :class:`LocalServer`.
    """

    def __init__(self, *args: Any, start_timeout: float = 15.0, **kwargs: Any) -> None:
        self.server = LocalServer(*args, **kwargs)
        self._timeout = start_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def transcripts(self) -> list[Transcript]:
        """A snapshot of the transcripts (taken on the server's loop while it runs)."""
        if self._thread is None or not self._thread.is_alive():
            return self.server.transcripts
        return self._call(lambda: self.server.transcripts)

    def start(self) -> ServerThread:
        """Start the thread and wait (bounded) until the server listens; idempotent."""
        if self._thread is not None:
            return self
        self._thread = threading.Thread(target=self._run, name="voicebridge-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(self._timeout):
            raise SynthesisTimeout(f"the local server did not start within {self._timeout} s")
        if self._error is not None:
            self._thread.join(self._timeout)
            raise self._error
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            thread.join(_STOP_TIMEOUT + self._timeout)
            if thread.is_alive():
                _log.error("the local server thread did not stop in time")

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self.server.start())
        except BaseException as exc:  # reported to start()'s caller
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self.server.stop())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    def _call(self, func: Callable[[], _T]) -> _T:
        assert self._loop is not None

        async def call() -> _T:
            return func()

        return asyncio.run_coroutine_threadsafe(call(), self._loop).result(self._timeout)


def serve(
    host: str = "127.0.0.1",
    port: int = 8765,
    api_key: str | None = None,
    engine: str | Engine = "espeak",
) -> None:
    """Run a local server until Ctrl-C or SIGTERM (for ``voicebridge serve``); returns after a
    clean stop (connections closed, threads joined)."""

    async def main() -> None:
        stopping = asyncio.Event()
        with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows loops
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
        async with LocalServer(host, port, api_key=api_key, engine=engine) as server:
            print(f"voicebridge: serving {server.url} (Ctrl-C stops)", file=sys.stderr, flush=True)
            await stopping.wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
