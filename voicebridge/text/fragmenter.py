"""The fragmenter: cut an LLM text stream into the pieces sent to the speech engine.

Pure: no I/O, no clock, no threads. ``feed(delta)`` cleans the delta into speakable text (see
:mod:`voicebridge.text.speakable`) and returns the fragments that are decided; ``flush()`` releases
what is held, ``flush(whole_words=True)`` only the whole words of it. Concatenating every fragment's
text gives back ``speakable(input)``: nothing is lost, repeated or reordered (the last fragment may
keep one space or line break that ended the input). Work per input character is constant
(amortized): the held text is never re-scanned, and it stays shorter than
``sentence_max_characters`` plus one delta chunk.

Where it cuts:

- The first fragment (of the turn, or after a ``flush()``) is cut at the first boundary of any
  kind (sentence, clause, line) once it holds ``min_words`` words, so speech starts early; with no
  such boundary it is cut by length after ``first_max_characters``.
- Later fragments are cut at sentence, line or phrase boundaries only, and take every complete
  sentence available up to ``target_characters`` (a fast LLM gives longer fragments, which sound
  more natural; a slow one gives one sentence each). A sentence longer than
  ``sentence_max_characters`` is cut at its last clause boundary that fits, else by length.
- Run-on text (no boundary at all for ``run_on_max_characters``) is not held for a sentence end
  that may never come: what comes before it is released, then the run is cut by length.
- A cut by length (boundary ``"length"``) falls on the last word boundary that fits (see
  :mod:`voicebridge.text.segmenter` for which scripts count as spaced): after whitespace, next to
  a CJK character, at a segmenter break in Thai, Lao, Khmer or Myanmar. Only a word longer than
  the limit is cut inside, and then never inside a grapheme cluster. The service sees no sentence
  end there: the caller should follow a ``"length"`` or ``"phrase"`` fragment with a flush.
- Boundaries: ``. ! ? …`` followed by a space or a CJK character, ``。！？`` and their Arabic and
  Devanagari counterparts, Myanmar ``။`` and Khmer ``។ ៕``, with any closing quotes and
  brackets; clause marks ``, ; :`` followed by a space, dashes, ``，、；：``, Myanmar ``၊``,
  Khmer ``៖``; line breaks (list items, headings and table rows end lines); phrase boundaries: a
  space between two characters of Thai, Lao, Khmer or Myanmar, which use spaces where other
  scripts put commas and periods. Not
  boundaries: abbreviations (Dr. e.g. U.S.A. a.m.), decimals and versions (3.14, v1.2.3), times
  (9:30), URLs and e-mail addresses, list numbers (``Steps: 1. Open``; Markdown list markers are
  already gone), an ellipsis followed by a lower-case word.
- A mark at the end of the held text waits for the character after it (after its closing quotes;
  after an ellipsis and its space, the first letter), no longer. ``，、；：`` need nothing more.

Lengths are billed characters (:func:`~voicebridge.text.billing.count_characters`, CJK ideograph
= 2). A word is a run of letters or digits; ``cjk_chars_per_word`` CJK characters (ideographs,
kana) count as one word; in Thai, Lao, Khmer and Myanmar the segmenter counts the words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from ..errors import ConfigurationError
from .billing import IDEOGRAPH_CLASS, MAX_MESSAGE_CHARACTERS, count_characters, prefix_within
from .segmenter import SPACELESS_CLASS, Segmenter, cluster_boundary, default_segmenter
from .speakable import CodeBlocks, SpeakableFilter

__all__ = ["Boundary", "Fragment", "Fragmenter"]

Boundary = Literal["sentence", "clause", "line", "phrase", "length", "flush"]

_CJK = f"{IDEOGRAPH_CLASS}\u3040-\u30ff"
_CJK_CHAR = re.compile(f"[{_CJK}]")
_SPACELESS_CHAR = re.compile(f"[{SPACELESS_CLASS}]")
_SPACELESS_RUN = re.compile(f"[{SPACELESS_CLASS}]+")
_UNSPACED = _CJK + SPACELESS_CLASS  # scripts whose words are not counted by _WORD_START
_WORD_START = re.compile(f"(?<!(?![{_UNSPACED}])[^\\W_])(?![{_UNSPACED}])[^\\W_]")
_MARKS = "[.!?…,;:—–\n。！？｡，、；：؟۔।،؛။၊។៕៖]"
_MARK = re.compile(_MARKS)
# The same, plus a space after a spaceless-script character (a phrase boundary candidate). The
# look-behind makes the search several times slower: used only once the turn has such text.
_MARK_OR_PHRASE = re.compile(f"{_MARKS}|(?<=[{SPACELESS_CLASS}]) ")
_LATIN_TERMINAL = frozenset(".!?…")
_CJK_TERMINAL = frozenset("。！？｡؟۔।!?။។៕")
_CJK_CLAUSE = frozenset("，、；：၊៖")
_CONTEXT = 32  # characters after a length cut shown to the segmenter (the word that is cut)
# A segmenter break is used only with this many characters of the run after it (or the run's end):
# ICU's dictionary breaks in Thai, Lao, Khmer and Myanmar were measured to change with less
# context (up to 15% of the last breaks of a cut-off text), and never with 12 characters or more.
_SETTLED = 12
_CLOSERS = frozenset("\"')]}»›”’」』）】〕》〉")
_OPENERS = "\"'([{“‘«「『（"
_WHITESPACE = frozenset(" \n")
_ABBREVIATIONS = frozenset(
    {"mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "vs", "cf", "fig", "figs", "approx"}
    | {"dept", "est", "gen", "gov", "lt", "col", "sgt", "capt", "rev", "hon", "no", "nos", "vol"}
    | {"vols", "pp", "ca"}
)
_CHUNK = 512  # cleaned characters appended per scan, so that one huge delta stays linear


@dataclass(frozen=True)
class Fragment:
    """One piece of speakable text for one continue-task.

    ``text`` is never empty nor only whitespace; it keeps the whitespace separating it from the
    next fragment. ``characters`` is its billed count, at most the fragmenter's
    ``max_characters``. ``boundary`` says why it was cut: at a ``"sentence"`` end, a ``"clause"``
    mark, a ``"line"`` break, a ``"phrase"`` space (Thai, Lao, Khmer, Myanmar), by ``"length"``
    (run-on text or a word too long; the cut is at a word boundary whenever one fits), or by a
    ``"flush"`` call. After ``"length"`` and ``"phrase"`` the text has no mark the service ends
    a sentence at.
    """

    text: str
    characters: int
    boundary: Boundary


@dataclass(frozen=True)
class _Candidate:
    end: int  # offset in the held text just after the boundary (and the whitespace after it)
    kind: Boundary
    units: int  # word units from the start of the held text to ``end``
    billed: int  # billed characters from the start of the held text to ``end``


class Fragmenter:
    """Cut a stream of text deltas into :class:`Fragment` objects. Not thread-safe.

    Thresholds (billed characters unless said otherwise):

    - ``min_words=3``: words a fragment must hold before a boundary may end it (a
      ``flush()`` releases shorter text).
    - ``first_max_characters=60``: the first fragment is cut by length at the latest here, at a
      word boundary. About 4 s of speech (English is spoken at about 15 characters a second), and
      at most twice the typical first clause (30-60 characters), so run-on text starts within 2x
      of punctuated text; long enough that the next fragment (``run_on_max_characters``) arrives
      before it has been spoken whenever the LLM writes at least 30 characters a second.
    - ``target_characters=120``: a later fragment takes every complete sentence available while
      it stays within this (at least one sentence).
    - ``run_on_max_characters=120``: a later fragment held this long without any boundary is cut
      at a word boundary (boundary ``"length"``). The size of an ordinary later fragment, about
      8 s of speech: short enough to keep speech flowing, long enough that the flush after each
      cut (a sentence break in the voice) comes at most every few seconds of speech. No effect
      above ``sentence_max_characters``.
    - ``sentence_max_characters=300``: a sentence longer than this is cut at a clause boundary.
    - ``max_characters=2000``: the service's per-message limit; no fragment is longer, not even
      one released by ``flush()``.
    - ``cjk_chars_per_word=2``: CJK characters counted as one word for ``min_words``.
    - ``segmenter``: word cut points for Thai, Lao, Khmer and Myanmar; default
      :func:`~voicebridge.text.segmenter.default_segmenter` (ICU when ``icu4py`` is installed).
    - ``code_blocks`` and ``code_placeholder``: see
      :class:`~voicebridge.text.speakable.SpeakableFilter`.
    """

    def __init__(
        self,
        *,
        min_words: int = 3,
        first_max_characters: int = 60,
        target_characters: int = 120,
        run_on_max_characters: int = 120,
        sentence_max_characters: int = 300,
        max_characters: int = MAX_MESSAGE_CHARACTERS,
        cjk_chars_per_word: int = 2,
        segmenter: Segmenter | None = None,
        code_blocks: CodeBlocks = "skip",
        code_placeholder: str = "code block",
    ) -> None:
        if min_words < 1 or cjk_chars_per_word < 1:
            raise ConfigurationError("min_words and cjk_chars_per_word must be at least 1")
        if not (
            10 <= first_max_characters <= sentence_max_characters <= max_characters
            and 10 <= target_characters <= sentence_max_characters
            and run_on_max_characters >= 10
        ):
            raise ConfigurationError(
                "need 10 <= first_max_characters, target_characters <= sentence_max_characters "
                f"<= max_characters and 10 <= run_on_max_characters, got {first_max_characters}, "
                f"{target_characters}, {sentence_max_characters}, {max_characters}, "
                f"{run_on_max_characters}"
            )
        self._filter = SpeakableFilter(code_blocks=code_blocks, code_placeholder=code_placeholder)
        self._cjk_per_word = cjk_chars_per_word
        self._min_units = min_words * cjk_chars_per_word
        self._target = target_characters
        self._run_on_max = run_on_max_characters
        # Per "first fragment or not": the length limit, and the held length below which no cut
        # can be due without a new boundary.
        self._limits = {
            True: (first_max_characters, min(first_max_characters, run_on_max_characters)),
            False: (sentence_max_characters, min(sentence_max_characters, run_on_max_characters)),
        }
        self._max = max_characters
        self._segmenter = segmenter
        self.reset()

    def reset(self) -> None:
        """Drop everything held (barge-in) and start a new turn; the running total restarts."""
        self._filter.reset()
        self._total = 0
        self._first = True
        self._spaceless = False  # Thai, Lao, Khmer or Myanmar text seen in this turn
        self._buf = ""  # cleaned text not released yet
        self._buf_billed = 0
        self._scanned = 0  # offset of the first character not classified yet
        self._candidates: list[_Candidate] = []
        self._checked = 0  # candidates before this index were already considered for a cut
        self._acc = 0  # offset up to which _units and _billed are counted
        self._units = 0
        self._billed = 0

    @property
    def pending(self) -> str:
        """Text held back, not released yet: cleaned text awaiting a boundary, then raw text
        awaiting a Markdown decision. Empty right after :meth:`flush` (after
        ``flush(whole_words=True)``, the partial word and any undecided markup stay)."""
        return (self._buf if self._buf.strip() else "") + self._filter.pending

    @property
    def total_characters(self) -> int:
        """Billed characters released since construction or the last :meth:`reset`."""
        return self._total

    def feed(self, delta: str) -> list[Fragment]:
        """Take the next piece of LLM text; return the fragments it completes (often none)."""
        if not isinstance(delta, str):
            raise TypeError(
                f"Fragmenter.feed() takes str, not {type(delta).__name__}; "
                "skip None and other non-text stream items before feeding"
            )
        return self._take(self._filter.feed(delta))

    def flush(self, *, whole_words: bool = False) -> list[Fragment]:
        """Release what is held. Feeding may continue; the next fragment counts as a first.

        ``whole_words=False`` releases everything (the end of a turn, or a pause long enough that
        the rest of a word is not coming soon). ``whole_words=True`` (a short pause, the LLM may
        be in the middle of a word) releases only up to the last word boundary: after whitespace,
        after a CJK character, at a segmenter break in Thai, Lao, Khmer or Myanmar. The partial
        word after it ("wait" of "waits"), and markup not decided yet, stay held.

        Markdown state (an open code fence, a table) carries over. Whitespace at the end stays
        held and starts the next fragment, so words never run together.
        """
        if whole_words:
            fragments = []
            visible = len(self._buf) - len(self._buf.lstrip(" \n"))
            body = self._word_cut(visible, len(self._buf)) or 0
        else:
            fragments = self._take(self._filter.flush())
            self._scan(final=True)
            body = len(self._buf.rstrip(" \n"))
        while body and count_characters(self._buf[:body]) > self._max:
            end, kind = self._length_cut(self._max)
            fragments.append(self._release(end, kind))
            body -= end
        if self._buf[:body].strip(" \n"):
            fragments.append(self._release(body, "flush"))
        self._first = True
        self._checked = 0
        return fragments

    # -- internals ------------------------------------------------------------------------------

    def _take(self, clean: str) -> list[Fragment]:
        fragments: list[Fragment] = []
        for start in range(0, len(clean), _CHUNK):
            chunk = clean[start : start + _CHUNK] if len(clean) > _CHUNK else clean
            self._buf += chunk
            self._buf_billed += count_characters(chunk)
            if not self._spaceless and not chunk.isascii():
                self._spaceless = _SPACELESS_CHAR.search(chunk) is not None
            self._scan(final=False)
            while (cut := self._next_cut()) is not None:
                fragments.append(self._release(*cut))
        return fragments

    def _scan(self, *, final: bool) -> None:
        """Classify the marks after ``_scanned``; stop at one that needs more text."""
        buf = self._buf
        marks = _MARK_OR_PHRASE if self._spaceless else _MARK
        while (found := marks.search(buf, self._scanned)) is not None:
            decided = _decide(buf, found.start(), final)
            if decided is None:
                self._scanned = found.start()
                return
            end, kind = decided
            if kind is not None:
                self._add(end, kind)
            self._scanned = max(end, found.start() + 1)
        self._scanned = len(buf)

    def _add(self, end: int, kind: Boundary) -> None:
        buf, acc = self._buf, self._acc
        self._billed += count_characters(buf[acc:end])
        self._units += self._units_in(acc, end)
        self._acc = end
        self._candidates.append(_Candidate(end, kind, self._units, self._billed))

    def _next_cut(self) -> tuple[int, Boundary] | None:
        limit, quiet = self._limits[self._first]
        if self._checked == len(self._candidates) and self._buf_billed <= quiet:
            return None  # nothing new to consider
        # Candidates already checked never qualify later: their counts are fixed.
        best: tuple[int, Boundary] | None = None
        for candidate in self._candidates[self._checked :]:
            if candidate.billed > limit:
                break
            if candidate.units < self._min_units:
                continue
            if self._first:
                best = (candidate.end, candidate.kind)
                break
            if candidate.kind in ("sentence", "line", "phrase"):
                within_target = candidate.billed <= self._target
                if within_target or best is None:
                    best = (candidate.end, candidate.kind)
                if not within_target:
                    break
        self._checked = len(self._candidates)
        # Billed characters after the last boundary (``_billed`` counts up to it).
        run_on = not self._first and self._buf_billed - self._billed > self._run_on_max
        if best is None and run_on:
            # The text before the run goes first (cut at the last boundary), then the run itself.
            best = self._length_cut(min(limit, self._billed + self._run_on_max))
        elif best is None and self._buf_billed > limit:
            best = self._length_cut(limit)
        return best

    def _length_cut(self, limit: int) -> tuple[int, Boundary]:
        """Where to cut held text longer than ``limit``: the last boundary that fits, else the
        last word boundary that fits, else at the limit (moved back to a grapheme cluster
        boundary, unless one cluster is longer than the limit)."""
        buf = self._buf
        end = prefix_within(buf, limit)
        for candidate in reversed(self._candidates):
            if candidate.end <= end:
                return candidate.end, candidate.kind
        visible = len(buf) - len(buf.lstrip(" \n"))
        cut = self._word_cut(visible, end)
        if cut is not None:
            return cut, "length"
        cut = end
        while cut > visible + 1 and not cluster_boundary(buf, cut):
            cut -= 1
        return (cut if cluster_boundary(buf, cut) else end), "length"

    def _word_cut(self, start: int, end: int) -> int | None:
        """The last word boundary ``cut`` with ``start < cut <= end`` in the held text, or None.
        Work is proportional to ``end - start``, plus one segmenter call."""
        buf = self._buf
        cut = end
        while cut > start:
            before = buf[cut - 1]
            if before in _WHITESPACE:
                return cut
            if _SPACELESS_CHAR.match(before):
                run = cut - 1
                while run > start and _SPACELESS_CHAR.match(buf, run - 1):
                    run -= 1
                found = self._spaceless_cut(run, cut)
                if found is not None:
                    return found
                cut = run  # no break inside the run: the script change before it may be one
                if cut > start and cluster_boundary(buf, cut):
                    return cut
                continue
            cjk = _CJK_CHAR.match(before) or _CJK_CHAR.match(buf, cut)
            if cjk and cluster_boundary(buf, cut):
                return cut
            cut -= 1
        return None

    def _spaceless_cut(self, run: int, cut: int) -> int | None:
        """The last settled segmenter break after ``run`` and at most ``cut`` in the spaceless
        run that starts at ``run``; ``cut`` itself when the run ends there."""
        buf = self._buf
        if cut < len(buf) and not _SPACELESS_CHAR.match(buf, cut) and cluster_boundary(buf, cut):
            return cut
        stop, context = cut, min(len(buf), cut + _CONTEXT)
        while stop < context and _SPACELESS_CHAR.match(buf, stop):
            stop += 1
        ended = stop < len(buf) and not _SPACELESS_CHAR.match(buf, stop)
        last = cut if ended else min(cut, stop - _SETTLED)
        found = None
        for offset in self._segments().breaks(buf[run:stop]):
            if run + offset > last:
                break
            if cluster_boundary(buf, run + offset):  # ICU breaks "ยวน้|ำ" when cut mid-word
                found = run + offset
        return found

    def _segments(self) -> Segmenter:
        if self._segmenter is None:
            self._segmenter = default_segmenter()  # imports ICU only once spaceless text needs it
        return self._segmenter

    def _units_in(self, start: int, end: int) -> int:
        """Word units in ``_buf[start:end]``: a word counts ``cjk_chars_per_word``, a CJK
        character 1; words of spaceless scripts are counted by the segmenter."""
        buf, per_word = self._buf, self._cjk_per_word
        words = len(_WORD_START.findall(buf, start, end))
        if self._spaceless:
            for run in _SPACELESS_RUN.finditer(buf, start, end):
                words += self._segments().count_words(run.group())
        return words * per_word + len(_CJK_CHAR.findall(buf, start, end))

    def _release(self, end: int, kind: Boundary) -> Fragment:
        buf = self._buf
        text = buf[:end]
        billed = count_characters(text)
        rest = buf[end:]
        if end <= self._acc:
            units = self._units_in(0, end)
            self._units -= units
            self._billed -= billed
            self._acc -= end
            # A boundary left with only whitespace before it (after a length cut) is no cut.
            start = end + len(rest) - len(rest.lstrip(" \n"))
            self._candidates = [
                _Candidate(c.end - end, c.kind, c.units - units, c.billed - billed)
                for c in self._candidates
                if c.end > start
            ]
        else:
            self._units = self._billed = self._acc = 0
            self._candidates = []
        self._checked = 0
        self._buf = rest
        self._buf_billed -= billed
        self._scanned = max(0, self._scanned - end)
        self._first = False
        self._total += billed
        return Fragment(text, billed, kind)


def _skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i] in _WHITESPACE:
        i += 1
    return i


def _decide(text: str, i: int, final: bool) -> tuple[int, Boundary | None] | None:
    """Classify the mark at ``text[i]``: ``(end, kind)`` (kind None: no boundary), or None when
    the next character is needed and ``final`` is false."""
    n = len(text)
    mark = text[i]
    if mark == "\n":
        return i + 1, "line"
    if mark == " ":  # after a Thai, Lao, Khmer or Myanmar character (see _MARK_OR_PHRASE)
        if i + 1 == n:
            return (n, "phrase") if final else None
        return (i + 1, "phrase") if _SPACELESS_CHAR.match(text, i + 1) else (i + 1, None)
    if mark in ",;:–،؛":
        if i + 1 == n:
            return (n, "clause") if final else None
        after = text[i + 1]
        if after in _WHITESPACE or (mark != "–" and _CJK_CHAR.match(after)):
            return _skip_space(text, i + 1), "clause"
        return i + 1, None
    if mark in _CJK_CLAUSE:
        return _skip_space(text, i + 1), "clause"
    end = i
    if mark == "—":
        while end < n and text[end] == "—":
            end += 1
        kind: Boundary = "clause"
    elif mark in _CJK_TERMINAL and mark not in "!?":
        while end < n and text[end] in _CJK_TERMINAL:
            end += 1
        kind = "sentence"
    else:
        return _decide_latin(text, i, final)
    while end < n and text[end] in _CLOSERS:
        end += 1
    if end == n:
        return (n, kind) if final else None
    return _skip_space(text, end), kind


def _decide_latin(text: str, i: int, final: bool) -> tuple[int, Boundary | None] | None:
    n = len(text)
    end = i
    while end < n and text[end] in _LATIN_TERMINAL:
        end += 1
    cluster = text[i:end]
    while end < n and text[end] in _CLOSERS:
        end += 1
    if end == n:
        return (n, "sentence") if final else None
    after = text[end]
    cjk_after = _CJK_CHAR.match(after) is not None
    if ("…" in cluster or ".." in cluster) and "!" not in cluster and "?" not in cluster:
        if cjk_after:
            return end, "clause"
        if after not in _WHITESPACE:
            return end, None
        word = _skip_space(text, end)
        if word == n:
            return (n, "sentence") if final else None
        return (word, None) if text[word].islower() else (word, "sentence")
    if after not in _WHITESPACE and not cjk_after:
        return end, None
    if cluster == "." and _abbreviation(text, i):
        return end, None
    return _skip_space(text, end), "sentence"


def _abbreviation(text: str, dot: int) -> bool:
    """True when the word before the period at ``text[dot]`` is an abbreviation, an initial, or
    the number of an inline list item (``Steps: 1. Open it 2. Close it``)."""
    start = dot
    while start > 0 and dot - start < 24 and text[start - 1] not in _WHITESPACE:
        start -= 1
    word = text[start:dot].lstrip(_OPENERS)
    if word.lower() in _ABBREVIATIONS:
        return True
    if word.isascii() and word.isdigit() and len(word) <= 2:
        before = start - 1
        while before >= 0 and text[before] == " ":
            before -= 1
        return before < 0 or text[before] in ":;.!?\n"
    if len(word) == 1:
        return word.isalpha() and word.isupper()
    parts = word.split(".")
    return len(parts) > 1 and all(part.isalpha() and len(part) <= 2 for part in parts)
