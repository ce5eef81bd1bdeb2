"""Fixtures of the fault tests (the scenarios, timers and the answer spoken are in
``tests/fault_tools/scenarios.py``, shared with ``benchmarks/fault_matrix.py``)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from voicebridge.server import ServerThread


@pytest.fixture
def text_server(make_server: Callable[..., ServerThread]) -> ServerThread:
    """A local server whose audio encodes its text."""
    return make_server(engine="text")
