"""The synthesis session: text in, speech out, every word spoken exactly once.

``core`` holds the rules (pure, clock passed in), ``ledger`` the unspoken text and the replay
plan, ``driver`` the I/O thread, ``settings`` the numbers.
"""

from __future__ import annotations

from .core import SessionCore
from .driver import SessionDriver
from .settings import SessionSettings

__all__ = ["SessionCore", "SessionDriver", "SessionSettings"]
