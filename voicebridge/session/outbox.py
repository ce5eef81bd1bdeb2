"""The turn's text on its way to the service: what the fragmenter decided, and the flushes. Pure.

Which pieces are followed by a flush (docs/protocol.md: the service then speaks its tail at once
instead of waiting for a sentence end): the first piece of a turn and the first after a pause
(``flush_first_fragment``), every piece cut by length or at a phrase space (no sentence mark for
the service to end at), and the last piece of a source's flush or of an idle flush.

The idle rules (numbers in :class:`~voicebridge.session.settings.SessionSettings`): when the
source is quiet for ``idle_flush_after``, held text goes out up to its last whole word; a word the
pause cut stays held until ``rollover_after``, then goes too.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from ..text.fragmenter import Fragment, Fragmenter
from .ledger import Piece
from .settings import SessionSettings

__all__ = ["Outbox"]

_NO_SENTENCE_END = ("length", "phrase")


class Outbox:
    """Pieces decided and not yet sent, in order; ``text_at`` is when the source last wrote."""

    def __init__(self, fragmenter: Fragmenter, settings: SessionSettings) -> None:
        self.fragmenter = fragmenter
        self._settings = settings
        self.pieces: deque[Piece] = deque()
        self.text_at: float | None = None
        self._fresh = True  # the next piece is the first of the turn or after a pause
        self._idle_flushed = False  # this pause's whole-word flush is done

    def reset(self) -> str:
        """A new turn, or a dropped one: forget everything; returns the text not sent."""
        unsent = "".join(p.text for p in self.pieces)
        unsent += "".join(f.text for f in self.fragmenter.flush())
        self.fragmenter.reset()
        self.pieces.clear()
        self.text_at = None
        self._idle_flushed = False
        self._fresh = True
        return unsent

    @property
    def empty(self) -> bool:
        """Nothing decided and nothing held."""
        return not self.pieces and not self.fragmenter.pending

    def feed(self, text: str, now: float) -> bool:
        """Text from the source; True when it decided new pieces."""
        self.text_at = now
        self._idle_flushed = False
        return self._add(self.fragmenter.feed(text), flush_last=False)

    def flush(self) -> bool:
        """The source says its text so far is complete: all of it goes, flushed."""
        added = self._add(self.fragmenter.flush(), flush_last=True)
        self._fresh = True
        return added

    def end(self) -> bool:
        """The source is exhausted: all of it goes (finish-task will force it out)."""
        return self._add(self.fragmenter.flush(), flush_last=False)

    def idle(self, now: float) -> bool:
        """Apply the idle rules at ``now``; True when pieces were added."""
        if not self.fragmenter.pending or self.text_at is None:
            return False
        s = self._settings
        if now >= self.text_at + s.rollover_after:  # a word cut by a long pause goes too
            fragments = self.fragmenter.flush()
        elif not self._idle_flushed and now >= self.text_at + s.idle_flush_after:
            self._idle_flushed = True
            fragments = self.fragmenter.flush(whole_words=True)
        else:
            return False
        added = self._add(fragments, flush_last=True)
        self._fresh = True  # what the source writes after the pause starts speech again
        return added

    def deadline(self) -> float | None:
        """When :meth:`idle` has something to do, or None."""
        if not self.fragmenter.pending or self.text_at is None:
            return None
        s = self._settings
        return self.text_at + (s.rollover_after if self._idle_flushed else s.idle_flush_after)

    def _add(self, fragments: Iterable[Fragment], *, flush_last: bool) -> bool:
        pieces: list[Piece] = []
        for fragment in fragments:
            flush = fragment.boundary in _NO_SENTENCE_END or (
                self._fresh and self._settings.flush_first_fragment
            )
            self._fresh = False
            pieces.append(Piece(fragment.text, flush))
        if not pieces:
            return False
        if flush_last:
            pieces[-1] = Piece(pieces[-1].text, True)
        self.pieces.extend(pieces)
        return True
