"""Audio fixtures: ``pulse``, a private PulseAudio daemon with a null sink (see pulse.py).

Without pulseaudio, parec or PyAudio, tests that need it fail when ``CI`` is set (the playback
environment is part of CI) and skip with the reason elsewhere.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import NoReturn

import pytest

from tests.audio.pulse import Pulse, PulseUnavailable, private_pulse


def _on_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def unavailable(reason: str) -> NoReturn:
    if _on_ci():
        pytest.fail(f"audio test environment missing on CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def pulse() -> Iterator[Pulse]:
    with contextlib.ExitStack() as stack:
        try:
            running = stack.enter_context(private_pulse())
        except PulseUnavailable as exc:
            unavailable(str(exc))
        yield running
