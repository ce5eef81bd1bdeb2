"""The conversation of one page, sans-I/O: turns, their replies as written, where each spoken word
sits in its reply, and what the history keeps after a Stop (only what was heard)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

__all__ = ["Conversation", "PlacedWord", "Reply", "Turn"]

_SEARCH_WINDOW = 200  # characters past the last placed word (markup, URLs the voice skipped)


@dataclass(frozen=True)
class PlacedWord:
    """A spoken word: seconds on its turn's audio timeline, and its ``[begin, end)`` characters in
    the reply as written (None when the spoken form is not found there, e.g. a number read out)."""

    index: int
    text: str
    start: float
    end: float
    span: tuple[int, int] | None


class Reply:
    """A reply as the LLM writes it, and the words spoken from it, in order."""

    def __init__(self) -> None:
        self.text = ""
        self.words: list[PlacedWord] = []
        self._cursor = 0  # where the next spoken word is searched from

    def write(self, delta: str) -> None:
        self.text += delta

    def place(self, text: str, start: float, end: float) -> PlacedWord:
        """Record the next spoken word; found by a forward search near the previous one."""
        span: tuple[int, int] | None = None
        found = self.text.find(text, self._cursor, self._cursor + _SEARCH_WINDOW + len(text))
        if text and found >= 0:
            span = (found, found + len(text))
            self._cursor = span[1]
        word = PlacedWord(len(self.words), text, start, end, span)
        self.words.append(word)
        return word

    def heard_end(self, count: int) -> int | None:
        """Where the reply as written ends after its first ``count`` spoken words (None when
        none of them was found in it)."""
        spans = [w.span for w in self.words[:count] if w.span is not None]
        if count == 0:
            return 0
        return spans[-1][1] if spans else None


@dataclass
class Turn:
    """One exchange. ``heard_text``: after a Stop, what the listener heard (the bridge's
    ``TurnMetrics.heard_text``)."""

    number: int
    user: str
    reply: Reply = field(default_factory=Reply)
    stopped: bool = False
    heard_text: str | None = None
    failed: bool = False

    @property
    def kept(self) -> str:
        """The reply as the history keeps it: whole, or as far as it was heard."""
        return self.reply.text if self.heard_text is None else self.heard_text


class Conversation:
    """Turns in order; :meth:`messages` is what the LLM is sent (the last ``max_turns``)."""

    def __init__(self, system: str | None, max_turns: int) -> None:
        self.system = system
        self.turns: deque[Turn] = deque(maxlen=max_turns)
        self._numbers = 0

    @property
    def begun(self) -> int:
        """Turns begun so far (the latest turn's number)."""
        return self._numbers

    def begin(self, user: str) -> Turn:
        self._numbers += 1
        turn = Turn(self._numbers, user)
        self.turns.append(turn)
        return turn

    def messages(self) -> list[dict[str, str]]:
        """Chat messages: the system prompt, then each turn's question and kept reply. A failed
        turn is left out; a stopped one with nothing heard keeps only its question."""
        messages = [{"role": "system", "content": self.system}] if self.system else []
        for turn in self.turns:
            if turn.failed:
                continue
            messages.append({"role": "user", "content": turn.user})
            kept = turn.kept
            if kept:
                messages.append({"role": "assistant", "content": kept})
        return messages
