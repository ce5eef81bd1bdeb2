"""Shared fixtures: real local servers on 127.0.0.1, port 0, each stopped (threads joined) after
its test. ``tone_server`` is the fast default; ``espeak_server`` speaks; ``make_server(...)`` takes
the arguments of :class:`voicebridge.server.LocalServer` (limits, faults, api_key, engine)."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from voicebridge.server import ServerThread


@pytest.fixture
def make_server() -> Iterator[Callable[..., ServerThread]]:
    """Factory: ``make_server(faults=FaultPlan(...), limits=ServerLimits(...), engine="tone")``."""
    servers: list[ServerThread] = []

    def make(**kwargs: Any) -> ServerThread:
        kwargs.setdefault("engine", "tone")
        server = ServerThread(**kwargs).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def tone_server(make_server: Callable[..., ServerThread]) -> ServerThread:
    """A server with the deterministic tone engine, accepting any API key."""
    return make_server(engine="tone")


@pytest.fixture
def espeak_server(make_server: Callable[..., ServerThread]) -> ServerThread:
    """A server speaking through espeak-ng, accepting any API key."""
    return make_server(engine="espeak")


@pytest.fixture
def ctrl_c_reaches_children() -> Iterator[None]:
    """Child processes started in the test get Ctrl-C (SIGINT) as a terminal would send it.

    A test run started in the background (``cmd &`` in a script) has SIGINT ignored, and children
    inherit that; a handler of ours is reset to the default on exec instead.
    """
    before = signal.getsignal(signal.SIGINT)
    if before == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)
