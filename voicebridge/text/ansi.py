"""Terminal escape sequences (ECMA-48) removed from a text stream, also when split across deltas.

Recognised, and removed whole (they are never spoken, and leave no space behind):

- CSI: ``ESC [``, parameter bytes ``0-9:;<=>?``, intermediate bytes (space to ``/``), one final
  byte ``@`` to ``~``: colours and cursor moves such as ``\\x1b[31m`` or ``\\x1b[2K``;
- control strings: OSC ``ESC ]`` (window titles, ``OSC 8`` hyperlinks, whose link text stays), and
  DCS ``ESC P``, SOS ``ESC X``, PM ``ESC ^``, APC ``ESC _``, each ended by BEL, by ST (``ESC \\``
  or U+009C) or cut short by another ``ESC``;
- the other escape sequences: ``ESC``, any intermediate bytes, one final byte ``0`` to ``~``
  (``ESC 7``, ``ESC ( B``, ``ESC c``).

Not recognised: the 8-bit C1 introducers (U+009B CSI, U+009D OSC, ...). In Unicode text they are
nearly always mojibake, and treating them as introducers would swallow the letters after them; they
reach :class:`~voicebridge.text.speakable.SpeakableFilter` as control characters, which act as
spaces.

A malformed sequence (a byte that cannot continue it, a CSI longer than 64 bytes, a control
string longer than 4,096 characters or holding a line break) loses nothing: its introducer becomes
one space and whatever it held comes out as text, followed by the character that broke it. A
sequence still open when the input ends is held and never spoken. Work per character is constant.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["EscapeStripper"]

_ESC = "\x1b"
_BEL = "\x07"
_ST_C1 = "\x9c"
_STRING_STARTS = frozenset("]PX^_")
_LINE_BREAKS = frozenset("\n\r\x0b\x0c\x85\u2028\u2029")
_MAX_CSI = 64
_MAX_STRING = 4096

State = Literal["text", "escape", "intermediate", "csi", "string", "string_escape"]


def _intermediate(char: str) -> bool:
    return " " <= char <= "/"


def _final(char: str) -> bool:
    return "0" <= char <= "~"


class EscapeStripper:
    """Streaming remover of terminal escape sequences (module docstring). Not thread-safe."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget any sequence in progress."""
        self._state: State = "text"
        self._held: list[str] = []  # characters of the open sequence after its introducer

    @property
    def holding(self) -> bool:
        """True while an escape sequence is open (its characters are held, never spoken)."""
        return self._state != "text"

    def feed(self, text: str) -> str:
        """Remove escape sequences from ``text``; return what is decided to be text."""
        if self._state == "text" and _ESC not in text:
            return text
        out: list[str] = []
        i, n = 0, len(text)
        while i < n:
            if self._state == "text":
                found = text.find(_ESC, i)
                if found < 0:
                    out.append(text[i:])
                    break
                out.append(text[i:found])
                self._state, self._held = "escape", []
                i = found + 1
                continue
            if not self._step(text[i], out):
                continue  # the character ended a malformed sequence: read it again as text
            i += 1
        return "".join(out)

    def _step(self, c: str, out: list[str]) -> bool:
        """Advance the open sequence by ``c``; False when ``c`` was not consumed."""
        state = self._state
        if state == "escape":
            if c in _STRING_STARTS or c == "[":
                self._state = "string" if c != "[" else "csi"
                return True
            state = "intermediate"  # the other forms: ESC, intermediate bytes, a final byte
        if state == "intermediate":
            if _intermediate(c) and len(self._held) < _MAX_CSI:
                self._state = "intermediate"
                self._held.append(c)
            elif _final(c):
                self._state = "text"
            else:
                return self._abort(out)
            return True
        if state == "csi":
            if "0" <= c <= "?" or _intermediate(c):
                if len(self._held) >= _MAX_CSI:
                    return self._abort(out)
                self._held.append(c)
            elif "@" <= c <= "~":
                self._state = "text"
            else:
                return self._abort(out)
            return True
        if state == "string_escape":
            if c == "\\":
                self._state = "text"
                return True
            # Another escape cuts the control string short and starts a sequence of its own.
            self._state, self._held = "escape", []
            return False
        # state == "string"
        if c in (_BEL, _ST_C1):
            self._state = "text"
        elif c == _ESC:
            self._state = "string_escape"
        elif c in _LINE_BREAKS or len(self._held) >= _MAX_STRING:
            return self._abort(out)
        else:
            self._held.append(c)
        return True

    def _abort(self, out: list[str]) -> bool:
        """A malformed sequence: its introducer becomes a space, what it held is text again."""
        out.append(" ")
        out.extend(self._held)
        self._state, self._held = "text", []
        return False
