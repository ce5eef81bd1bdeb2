"""A WebSocket server that breaks the protocol on purpose, for the client's error paths."""

from __future__ import annotations

import asyncio
import threading

import websockets


class MalformedServer:
    """A real WebSocket server (not the local CosyVoice one) that answers run-task with a frame
    the protocol does not allow: for the client's error path only."""

    def __init__(self, reply: str) -> None:
        self.reply = reply
        self.url = ""
        self.connections = 0
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._main(),))

    async def _main(self) -> None:
        self._stop = asyncio.Event()

        async def handler(ws: websockets.ServerConnection) -> None:
            self.connections += 1
            await ws.recv()
            await ws.send(self.reply)
            await ws.wait_closed()

        async with websockets.serve(handler, "127.0.0.1", 0) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            self.url = f"ws://127.0.0.1:{port}/api-ws/v1/inference"
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> MalformedServer:
        self._thread.start()
        assert self._ready.wait(5)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(5)
