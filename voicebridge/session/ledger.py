"""The ledger: text sent and not yet spoken, and where the turn's audio stands. Pure.

Exactly once (docs/design.md): text sent on a task stays *unacknowledged* until a sentence-end
names it. When a task dies, :meth:`Ledger.replay` gives the unacknowledged pieces to send again on
a new task, with the flushes that followed them, so that the service cuts the same sentences; the
audio of the sentence that was cut half-way is trimmed by the bytes already delivered, so nothing
is heard twice.

Positions are bytes of 16-bit PCM. The *timeline* is the audio delivered to the sinks in this
turn; a sentence's start on it is fixed at its first sentence-begin (a replay of that sentence
starts at the same place), so word times stay right through replays.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from ..text.billing import count_characters
from ..turn import Sentence, Word

__all__ = ["Acknowledgement", "Ledger", "Piece", "WordTimes"]

WordTimes = Literal["sentence", "task"]
"""What a word's ``begin_time`` counts from: its sentence's first audio, or its task's."""


@dataclass(frozen=True)
class Piece:
    """One continue-task's text; ``flush``: a flush followed it on the wire."""

    text: str
    flush: bool = False

    @property
    def billed(self) -> int:
        return count_characters(self.text)


@dataclass(frozen=True)
class Acknowledgement:
    """What a sentence-end (or task-finished) settled: text now spoken, its span, its words."""

    text: str
    sentence: Sentence
    words: tuple[Word, ...]


class Ledger:
    """Unacknowledged text of the current task and the turn's audio position (one turn)."""

    def __init__(self, bytes_per_second: int, word_times: WordTimes = "sentence") -> None:
        self._bps = bytes_per_second
        self._word_times = word_times
        self._pieces: deque[Piece] = deque()
        self._consumed = 0  # characters of _pieces[0] already acknowledged
        self.unacked_billed = 0
        self._spoken = 0  # characters acknowledged in this turn (offset of the next sentence)
        self.delivered = 0  # bytes on the timeline
        self._sentence_start: int | None = None  # timeline bytes where the open sentence began
        self._task_start: int | None = None  # timeline bytes of the task's first sentence
        self._position = 0  # bytes of the open sentence received on this task
        self._skip = 0  # bytes at the start of the next sentence already delivered (replay)
        self._task_text: list[str] = []  # acknowledged in the current task
        self._task_offset = 0  # where the current task's acknowledged text starts in the turn
        self._task_words = False  # the current task's sentence-ends carried words

    @property
    def empty(self) -> bool:
        return not self._pieces

    def unacknowledged(self) -> str:
        text = "".join(p.text for p in self._pieces)
        return text[self._consumed :]

    def sent(self, piece: Piece) -> None:
        self._pieces.append(piece)
        self.unacked_billed += piece.billed

    # ------------------------------------------------------------------ audio (receive thread)

    def sentence_begin(self) -> float:
        """A sentence starts; returns its start on the timeline, in seconds."""
        if self._sentence_start is None:
            self._sentence_start = self.delivered - self._skip
        if self._task_start is None:
            self._task_start = self._sentence_start
        self._position = 0
        return self._sentence_start / self._bps

    def audio(self, size: int) -> int:
        """A frame of ``size`` bytes arrived: how many of its first bytes to drop (replay)."""
        start = self._position
        self._position += size
        skip = min(max(self._skip - start, 0), size)
        self.delivered += size - skip
        return skip

    def sentence_end(
        self, original_text: str | None, words: Sequence[Mapping[str, Any]]
    ) -> Acknowledgement | None:
        """Acknowledge the sentence the service spoke; None when its text is not found at the
        head of the unacknowledged text (the rest is settled at task-finished)."""
        start = self._sentence_start if self._sentence_start is not None else self.delivered
        self._sentence_start = None
        self._skip = 0
        match = _match(self.unacknowledged(), original_text or "")
        if match is None:
            return None
        end, index_map = match
        base = self._task_start if self._word_times == "task" else start
        return self._acknowledge(end, start, base, words, index_map)

    def task_finished(self, words: Sequence[Mapping[str, Any]]) -> Acknowledgement | None:
        """The task ended: whatever it still owed was spoken (the service finishes a task only
        after synthesizing all its text). Words sent with task-finished instead of with each
        sentence-end are placed over the whole task's text, from the task's first audio."""
        self._sentence_start = None
        self._skip = 0
        task_start = self._task_start if self._task_start is not None else self.delivered
        self._task_start = None
        remainder = self.unacknowledged()
        settled = self._acknowledge(len(remainder), self.delivered, None, (), None)
        late_words = () if self._task_words else words
        text, limit = "".join(self._task_text), self.delivered / self._bps
        placed = _place_words(
            late_words, text, self._task_offset, task_start / self._bps, None, limit
        )
        self._task_text, self._task_words = [], False
        if not settled.text and not placed:
            return None
        return replace(settled, words=placed)

    def replay(self) -> list[Piece]:
        """The task died: the pieces to send again (the first trimmed of what was spoken), and
        the audio of the sentence in progress to drop when it comes again."""
        if self._sentence_start is not None:  # cut half-way: its delivered bytes are on the line
            self._skip = max(self._skip, self._position)
        self._position = 0
        self._task_start = None
        self._task_text, self._task_words = [], False
        pieces = list(self._pieces)
        if pieces and self._consumed:
            pieces[0] = Piece(pieces[0].text[self._consumed :], pieces[0].flush)
        self._pieces = deque(p for p in pieces if p.text)
        self._consumed = 0
        self.unacked_billed = sum(p.billed for p in self._pieces)
        return list(self._pieces)

    def clear(self) -> str:
        """Forget the unacknowledged text (a turn that ended or was cancelled); returns it."""
        text = self.unacknowledged()
        self._pieces.clear()
        self._consumed = 0
        self.unacked_billed = 0
        self._sentence_start = self._task_start = None
        self._position = self._skip = 0
        self._task_text, self._task_words = [], False
        return text

    # ------------------------------------------------------------------ internals

    def _acknowledge(
        self,
        end: int,
        start_bytes: int,
        base_bytes: int | None,
        words: Sequence[Mapping[str, Any]],
        index_map: list[int] | None,
    ) -> Acknowledgement:
        unacked = self.unacknowledged()
        while end < len(unacked) and unacked[end].isspace():
            end += 1  # the spaces after a sentence belong to it
        text = unacked[:end]
        self._drop(end)
        offset = self._spoken
        self._spoken += len(text)
        if not self._task_text:
            self._task_offset = offset
        self._task_text.append(text)
        start = start_bytes / self._bps
        sentence = Sentence(start, self.delivered / self._bps, offset, offset + len(text))
        base = start if base_bytes is None else base_bytes / self._bps
        placed = _place_words(words, text, offset, base, index_map, self.delivered / self._bps)
        self._task_words = self._task_words or bool(placed)
        return Acknowledgement(text, sentence, placed)

    def _drop(self, count: int) -> None:
        while count and self._pieces:
            head = self._pieces[0]
            left = len(head.text) - self._consumed
            if count < left:
                self.unacked_billed -= count_characters(
                    head.text[self._consumed : self._consumed + count]
                )
                self._consumed += count
                return
            self.unacked_billed -= count_characters(head.text[self._consumed :])
            self._pieces.popleft()
            self._consumed = 0
            count -= left


def _match(unacked: str, spoken: str) -> tuple[int, list[int]] | None:
    """Where ``spoken`` ends in ``unacked``, comparing without white space; and for every index
    of ``spoken``, the index of the same character in ``unacked``. None if it is not there."""
    target = spoken.strip()
    if not target:
        return None
    index_map = [0] * len(spoken)
    i = 0
    for j, char in enumerate(spoken):
        if char.isspace():
            index_map[j] = i
            continue
        while i < len(unacked) and unacked[i].isspace():
            i += 1
        if i == len(unacked) or unacked[i] != char:
            break
        index_map[j] = i
        i += 1
    else:
        return i, index_map
    found = unacked.find(target)  # the service dropped or changed something before it
    if found < 0:
        return None
    lead = len(spoken) - len(spoken.lstrip())
    return found + len(target), [max(0, found + j - lead) for j in range(len(spoken))]


def _place_words(
    words: Sequence[Mapping[str, Any]],
    text: str,
    offset: int,
    base: float,
    index_map: list[int] | None,
    limit: float,
) -> tuple[Word, ...]:
    """Words of one acknowledgement on the turn's text and timeline; malformed entries are
    skipped, times never go backwards nor past ``limit`` (the end of the audio they speak:
    it was all delivered before the sentence-end or task-finished that brought the words)."""
    placed: list[Word] = []
    cursor = 0
    last_end = base
    for raw in words:
        word = raw.get("text")
        begin, finish = raw.get("begin_time"), raw.get("end_time")
        if not isinstance(word, str) or not word.strip():
            continue
        if not isinstance(begin, int | float) or not isinstance(finish, int | float):
            continue
        if isinstance(begin, bool) or isinstance(finish, bool):
            continue
        start_index = _text_index(raw, word, text, cursor, index_map)
        if start_index is None:
            continue
        end_index = start_index + len(word.strip())
        cursor = end_index
        start = min(limit, max(last_end if placed else base, base + float(begin) / 1000))
        end = min(limit, max(start, base + float(finish) / 1000))
        last_end = end
        placed.append(Word(word.strip(), start, end, offset + start_index, offset + end_index))
    return tuple(placed)


def _text_index(
    raw: Mapping[str, Any], word: str, text: str, cursor: int, index_map: list[int] | None
) -> int | None:
    """Where ``word`` starts in ``text``: from ``begin_index`` when it points at the word, else
    the next occurrence after ``cursor``."""
    begin = raw.get("begin_index")
    stripped = word.strip()
    if index_map is not None and isinstance(begin, int) and 0 <= begin < len(index_map):
        candidate = index_map[begin]
        if text.startswith(stripped, candidate) and candidate >= cursor:
            return candidate
    found = text.find(stripped, cursor)
    return found if found >= 0 else None
