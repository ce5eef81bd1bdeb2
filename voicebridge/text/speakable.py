"""Speakable text: Markdown, code, links, URLs, HTML, emoji and control characters removed.

:class:`SpeakableFilter` works on a stream. ``feed(delta)`` returns the cleaned text that is
decided and holds back only what the next raw characters may still change: a ``*`` that may become
``**``, a line start that may be a list marker, a URL host, an HTML tag. Its output never depends on
how the input was split into deltas (only on the text and on where ``flush()`` was called).

What it does to the text:

- emphasis (``*``, ``**``, ``_``, ``__``, ``~~``), headings, block quotes, list markers (``-``,
  ``*``, ``+``, ``1.``, ``1)``), horizontal rules and setext underlines are removed;
- links and images keep their text (``[the docs](https://x)`` -> ``the docs``), brackets go;
- inline code keeps its words (backticks go, Markdown inside is not interpreted);
- fenced code blocks are skipped, or replaced by a short placeholder line;
- table rows become comma-separated cells, separator rows vanish;
- terminal escape sequences (``\\x1b[31m``, OSC titles and links, ...) vanish before anything else
  (see :mod:`voicebridge.text.ansi`);
- HTML tags are removed, but only real tag shapes (``<b>``, ``</p>``, ``<br/>``, ``<a href="x">``,
  ``<!-- ... -->``); ``a<b and c>d``, ``x < y`` and ``i<3`` stay text; ``<https://...>`` autolinks
  are treated as URLs;
- URLs are shortened to their host (``https://www.python.org/doc/`` -> ``python.org``);
- control characters act as spaces (``"before\\x00after"`` is two words); emoji, format
  characters (zero-width, bidi marks), private-use and lone surrogate characters vanish, also
  inside a word;
- whitespace is collapsed: a run of spaces becomes one space, a run with a line break becomes one
  ``"\\n"``, and nothing is emitted at the very start.
"""

from __future__ import annotations

import re
from typing import Literal

from ..errors import ConfigurationError
from .ansi import EscapeStripper
from .billing import IDEOGRAPH_CLASS

__all__ = ["CodeBlocks", "SpeakableFilter", "speakable"]

CodeBlocks = Literal["skip", "placeholder"]

_LINE_BREAKS = "\n\r\x0b\x0c\x85\u2028\u2029"
# Control characters (Cc) other than line breaks act as spaces: "before\x00after" stays two words.
_SPACES = " \t\xa0\u1680\u2000-\u200a\u202f\u205f\u3000\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f"
# Format (Cf), surrogate (Cs) and private-use (Co) characters, emoji, variation selectors and the
# keycap mark: none of them is spoken, and inside a word they vanish without a trace.
_DROP = (
    "\xad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2"
    "\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
    "\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0001\U000e0020-\U000e007f\ud800-\udfff\ue000-\uf8ff\U000f0000-\U0010ffff"
    "\U0001f000-\U0001faff\u2600-\u27bf\u2b00-\u2bff\u231a\u231b\u2328\u23cf\u23e9-\u23fa"
    "\u24c2\u3030\u303d\u3297\u3299\ufe00-\ufe0f\u20e3\U000e0100-\U000e01ef"
)
_SPECIAL = r"*_~`\[\]!<\\|hHwW"
# A run of characters that need no decision in plain text. h/w may start a URL unless they
# follow an ASCII letter or digit.
_PLAIN_CHAR = f"[^{_SPECIAL}{_LINE_BREAKS}{_SPACES}{_DROP}]|(?<=[A-Za-z0-9])[hHwW]"
_PLAIN = re.compile(f"(?:{_PLAIN_CHAR})+")
# A whole delta of plain words between single spaces needs no decision at all.
_SIMPLE = re.compile(f" ?(?:{_PLAIN_CHAR})+(?: (?:{_PLAIN_CHAR})+)* ?")
_DROP_CHAR = re.compile(f"[{_DROP}]")
_SPACE_CHAR = re.compile(f"[{_SPACES}]")
_LINE_BREAK_SEARCH = re.compile(f"[{_LINE_BREAKS}]")
_CJK_TEXT = re.compile(f"[{IDEOGRAPH_CLASS}\u3000-\u30ff\uff00-\uffef\uac00-\ud7af]")
_ASCII_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_ASCII_PUNCT = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
_HOST_CHARS = _ASCII_ALNUM | {"-"}
_URL_STARTS = ("http://", "https://", "www.")
_URL_TRAILING = frozenset(".,;:!?'*")
_URL_END = frozenset('<>"`]')
_MAX_HOST = 253
_MAX_TAG = 256
_MAX_COMMENT = 4096
_MAX_LINE_START = 256
_MAX_URL_TRAILING = 16

_INDENT = re.compile(r"[ \t]*")
_RULE = re.compile(r"([-*_=])(?:[ \t]*\1)*[ \t]*")
_TABLE_SEPARATOR = re.compile(r"[|:\- \t]*")
_DIGITS = re.compile(r"[0-9]{1,9}")
# Real tag shapes only: a name, then attributes that have a value or are HTML boolean
# attributes; "a<b and c>d" is no tag. Doctypes, CDATA and processing instructions too (comments
# are read by _resolve_tag itself).
_TAG_NAME = r"[A-Za-z][A-Za-z0-9]*(?:[:-][A-Za-z0-9]+)*"
_ATTRIBUTE_NAME = r"[A-Za-z_:@][\w:.@-]*"
_ATTRIBUTE_VALUE = r"""(?:"[^"]*"|'[^']*'|[^\s"'=<>`]+)"""
_BOOLEAN_ATTRIBUTES = (
    "allowfullscreen|async|autofocus|autoplay|checked|controls|default|defer|disabled|"
    "formnovalidate|hidden|inert|ismap|itemscope|loop|multiple|muted|nomodule|novalidate|open|"
    "playsinline|readonly|required|reversed|selected"
)
_ATTRIBUTE = (
    rf"(?:{_ATTRIBUTE_NAME}\s*=\s*{_ATTRIBUTE_VALUE}|(?i:{_BOOLEAN_ATTRIBUTES})(?![\w:.@-]))"
)
_OPEN_TAG = rf"{_TAG_NAME}(?:\s+{_ATTRIBUTE})*"
_TAG = re.compile(
    rf"{_OPEN_TAG}\s*/?|/{_TAG_NAME}\s*|(?i:!doctype\s.*)|!\[CDATA\[.*\]\]|\?.*\?",
    re.DOTALL,
)
# A tag cut short by a ">" inside a quoted attribute value: <a title="x>y">.
_OPEN_QUOTE = re.compile(rf"{_OPEN_TAG}\s+{_ATTRIBUTE_NAME}\s*=\s*(?:\"[^\"]*|'[^']*)")
_EMAIL = re.compile(r"[^\s@<>]+@[^\s@<>]+\.[^\s@<>]+")
_BREAKING_TAGS = frozenset({"br", "p", "div", "li", "tr", "td", "th", "hr", "h1", "h2", "h3"})

Hold = Literal[
    "line",
    "fence_line",
    "run",
    "bang",
    "close",
    "escape",
    "tag",
    "url_prefix",
    "url_dot",
    "url_punct",
    "pipe",
]
Mode = Literal["text", "url_host", "url_path", "link_dest", "fence_info", "fence"]
_HOLD_FOR: dict[str, Hold] = {"!": "bang", "<": "tag", "\\": "escape", "|": "pipe"}
LineStart = tuple[Literal["quote", "fence", "marker", "table", "drop", "text"], int]


def _is_space(char: str | None) -> bool:
    return char is None or char in _LINE_BREAKS or _SPACE_CHAR.match(char) is not None


def _is_line_break(char: str | None) -> bool:
    return char is not None and char in _LINE_BREAKS


def _sayable_host(host: str) -> str:
    """``www.python.org`` -> ``python.org``; an empty or bare ``www.`` host stays as written."""
    name = host[4:] if host[:4].lower() == "www." else host
    return name.rstrip(".-") or host


def _url_host(url: str) -> str:
    """The host part of an absolute ``http(s)://`` or ``www.`` URL."""
    rest = url.split("://", 1)[1] if "://" in url else url
    return re.split(r"[/?#:@]", rest, maxsplit=1)[0]


def _line_start(text: str, final: bool) -> LineStart | None:
    """Decide what the start of a line is; ``None`` means "need more characters".

    ``text`` holds the line so far (its last character may be the line break ending it). The
    answer is ``(kind, n)``: the first ``n`` characters are markup to drop, the rest is processed
    as ``kind`` says. With ``final`` (no more input for now) the answer is never ``None``.
    """
    lead = _INDENT.match(text).end()  # type: ignore[union-attr]
    rest = text[lead:]
    if not rest:
        return ("drop", lead) if final else None
    decision = _line_marker(rest, final)
    if decision is None:
        return ("text", lead) if len(text) >= _MAX_LINE_START else None
    kind, n = decision
    return kind, lead + n


def _line_marker(rest: str, final: bool) -> LineStart | None:
    ended = final or rest[-1] in _LINE_BREAKS
    body = rest[:-1] if rest[-1] in _LINE_BREAKS else rest
    first = rest[0]
    if first == ">":
        return "quote", 1
    if first in "`~":
        run = len(body) - len(body.lstrip(first))
        if run == len(body) and not ended:
            return None
        return ("fence", run) if run >= 3 else ("text", 0)
    if first == "#":
        run = len(body) - len(body.lstrip("#"))
        if run > 6:
            return "text", 0
        if run == len(body):
            return ("marker", run) if ended else None
        return ("marker", run) if body[run] in " \t" else ("text", 0)
    if first == "|":
        if _TABLE_SEPARATOR.fullmatch(body):
            return ("drop", len(body)) if ended else None
        return "table", 1
    if first.isascii() and first.isdigit():
        digits = _DIGITS.match(body).end()  # type: ignore[union-attr]
        if digits == len(body):
            return ("text", 0) if ended else None
        if body[digits] not in ".)":
            return "text", 0
        if digits + 1 == len(body):
            return ("marker", digits + 1) if ended else None
        return ("marker", digits + 1) if body[digits + 1] in " \t" else ("text", 0)
    if first in "-*_=+":
        if first != "+" and _RULE.fullmatch(body):
            if not ended:
                return None
            count = body.count(first)
            if first == "=" or count >= 3 or (count == 1 and first in "-*"):
                return "drop", len(body)
            return "text", 0
        if first in "-*+":
            if len(body) < 2:
                return ("drop", len(body)) if ended else None
            if body[1] in " \t":
                return "marker", 1
    return "text", 0


class SpeakableFilter:
    """Streaming Markdown-to-speech cleaner (see the module docstring). Not thread-safe.

    ``code_blocks="skip"`` drops fenced code blocks; ``"placeholder"`` speaks
    ``code_placeholder`` on a line of its own instead.
    """

    def __init__(
        self, *, code_blocks: CodeBlocks = "skip", code_placeholder: str = "code block"
    ) -> None:
        if code_blocks not in ("skip", "placeholder"):
            raise ConfigurationError(
                f"code_blocks must be 'skip' or 'placeholder', not {code_blocks!r}"
            )
        placeholder = " ".join(code_placeholder.split())
        if code_blocks == "placeholder" and not placeholder:
            raise ConfigurationError("code_placeholder must contain visible text")
        self._placeholder = placeholder if code_blocks == "placeholder" else ""
        self._escapes = EscapeStripper()
        self.reset()

    def reset(self) -> None:
        """Forget everything: state, held characters, whitespace context."""
        self._escapes.reset()
        self._escaping = False  # an escape sequence is open (cached from the stripper)
        self._out: list[str] = []
        self._last = ""  # last character emitted; "" at the start of the output
        self._space_pending = False  # a space deferred inside a table row
        self._prev: str | None = None  # last raw character processed
        self._mode: Mode = "text"
        self._hold: Hold | None = "line"
        self._held = ""
        self._run_char = ""
        self._run_len = 0
        self._run_prev: str | None = None
        self._code = 0  # length of the backtick run that opened inline code; 0 outside
        self._brackets = 0  # "[" seen on this line and not closed yet
        self._depth = 0  # parentheses open inside a link destination or URL path
        self._host = ""
        self._fence: tuple[str, int] = ("`", 3)
        self._table_row = False

    @property
    def pending(self) -> str:
        """The raw text held back until the next characters decide what it is; empty after
        :meth:`flush` (what a flush keeps, like a table cell separator, is never spoken)."""
        if self._kept_by_flush():
            return ""
        if self._hold == "run":
            return self._run_char * self._run_len
        held = self._held if self._hold is not None else ""
        return (self._host + held) if self._mode == "url_host" else held

    def feed(self, delta: str) -> str:
        """Clean ``delta`` and return the newly decided speakable text (maybe ``""``)."""
        if not isinstance(delta, str):
            raise TypeError(f"SpeakableFilter.feed() takes str, not {type(delta).__name__}")
        if self._escaping or "\x1b" in delta:
            delta = self._escapes.feed(delta)
            self._escaping = self._escapes.holding
        if (
            self._hold is None
            and self._mode == "text"
            and not (self._code or self._table_row)
            and (delta[:1] != " " or self._last not in ("", " ", "\n"))
            and _SIMPLE.fullmatch(delta)
        ):
            self._last = self._prev = delta[-1]
            return delta
        self._out = []
        self._process(delta)
        return "".join(self._out)

    def flush(self) -> str:
        """Decide everything held as if the input ended here; structural state is kept.

        Inside a code fence, a table row, a link destination or a URL path the filter stays
        there, so text fed after a flush continues correctly. A URL host is spoken now. An open
        terminal escape sequence stays open (it is never spoken either way).
        """
        self._out = []
        while self._hold is not None and not self._kept_by_flush():
            self._resolve(None)
        if self._mode == "url_host":
            self._end_host()
            self._mode = "url_path"
        return "".join(self._out)

    def _kept_by_flush(self) -> bool:
        """A line start with nothing on it yet, or a table cell separator: nothing to speak."""
        return self._hold == "pipe" or (self._hold in ("line", "fence_line") and not self._held)

    # -- emission -------------------------------------------------------------------------------

    def _emit(self, text: str) -> None:
        """Emit visible text (no leading or trailing whitespace)."""
        if self._space_pending:
            self._space_pending = False
            if self._last not in ("", " ", "\n"):
                self._out.append(" ")
        self._out.append(text)
        self._last = text[-1]

    def _space(self, newline: bool) -> None:
        if newline:
            self._space_pending = False
            if self._last not in ("", "\n"):
                self._out.append("\n")
                self._last = "\n"
        elif self._table_row:
            self._space_pending = True
        elif self._last not in ("", " ", "\n"):
            self._out.append(" ")
            self._last = " "

    # -- the character machine ------------------------------------------------------------------

    def _process(self, text: str) -> None:
        i, n = 0, len(text)
        while i < n:
            if self._hold is None:
                if self._mode == "text" and not self._code:
                    match = _PLAIN.match(text, i)
                    if match is not None:
                        run = match.group()
                        self._emit(run)
                        self._prev = run[-1]
                        i = match.end()
                        continue
                elif self._mode in ("fence", "fence_info"):
                    found = _LINE_BREAK_SEARCH.search(text, i)
                    if found is None:
                        self._prev = text[-1]
                        return
                    i = found.start()
            self._char(text[i])
            i += 1

    def _char(self, c: str) -> None:
        # Deciding a hold may re-process held text and start a new hold: decide until none is left.
        while self._hold is not None:
            if self._resolve(c):
                self._prev = c
                return
        mode = self._mode
        if mode == "text":
            self._text_char(c)
        elif mode == "url_host":
            self._host_char(c)
        elif mode == "url_path":
            self._path_char(c)
        elif mode == "link_dest":
            self._link_char(c)
        elif c in _LINE_BREAKS:
            self._mode = "fence"
            self._hold, self._held = "fence_line", ""
        self._prev = c

    def _text_char(self, c: str) -> None:
        if c in _LINE_BREAKS:
            self._table_row = False
            self._code = 0
            self._brackets = 0
            self._space(True)
            self._hold, self._held = "line", ""
            return
        if _SPACE_CHAR.match(c):
            self._space(False)
            return
        if _DROP_CHAR.match(c):
            return
        if c == "`" or (not self._code and c in "*_~"):
            self._hold, self._run_char, self._run_len, self._run_prev = "run", c, 1, self._prev
            return
        if not self._code:
            if c == "[":
                self._brackets += 1
                return
            if c == "]":
                if self._brackets:
                    self._brackets -= 1
                    self._hold, self._held = "close", c
                return
            if c in "!<\\" or (c == "|" and self._table_row):
                self._hold, self._held = _HOLD_FOR[c], c
                return
        if c in "hHwW" and self._prev not in _ASCII_ALNUM:
            self._hold, self._held = "url_prefix", c
            return
        self._emit(c)

    def _host_char(self, c: str) -> None:
        if c in _HOST_CHARS and len(self._host) < _MAX_HOST:
            self._host += c
            return
        if c == "." and len(self._host) < _MAX_HOST:
            self._hold, self._held = "url_dot", c
            return
        self._end_host()
        if c in "/?#:@" or c in _HOST_CHARS or c == ".":
            self._mode, self._depth = "url_path", 0
            return
        self._mode = "text"
        self._text_char(c)

    def _end_host(self) -> None:
        if self._host:
            self._emit(_sayable_host(self._host))
        self._host = ""

    def _leaves_url(self, c: str | None) -> bool:
        return (
            c is None
            or _is_space(c)
            or c in _URL_END
            or (c == ")" and self._depth == 0)
            or _CJK_TEXT.match(c) is not None
        )

    def _path_char(self, c: str) -> None:
        if self._leaves_url(c):
            self._mode = "text"
            self._text_char(c)
        elif c == "(":
            self._depth += 1
        elif c == ")":
            self._depth -= 1
        elif c in _URL_TRAILING:
            self._hold, self._held = "url_punct", c

    def _link_char(self, c: str) -> None:
        if c in _LINE_BREAKS:
            self._mode = "text"
            self._text_char(c)
        elif c == "(":
            self._depth += 1
        elif c == ")":
            self._depth -= 1
            if not self._depth:
                self._mode = "text"

    # -- held characters: decide with the next character (None: input ends here) ---------------

    def _resolve(self, c: str | None) -> bool:
        """Decide the held text with ``c``; True when ``c`` was consumed."""
        hold = self._hold
        if hold == "line":
            return self._resolve_line(c)
        if hold == "fence_line":
            return self._resolve_fence_line(c)
        if hold == "run":
            if c == self._run_char:
                self._run_len += 1
                return True
            self._end_run(c)
            return False
        if hold == "tag":
            return self._resolve_tag(c)
        if hold == "url_prefix":
            return self._resolve_url_prefix(c)
        if hold == "url_punct":
            return self._resolve_url_punct(c)
        if hold == "pipe" and c is not None and c in " \t":
            return True
        self._hold = None
        if hold == "bang":
            if c != "[":
                self._emit("!")
                self._prev = "!"
        elif hold == "close":
            if c == "(":
                self._mode, self._depth = "link_dest", 1
                return True
        elif hold == "escape":
            if c is not None and c in _ASCII_PUNCT:
                self._emit(c)
                return True
            if not _is_space(c):
                self._emit("\\")
        elif hold == "url_dot":
            if c is not None and c in _HOST_CHARS:
                self._host += "."
            else:
                self._end_host()
                self._mode = "text"
                self._emit(".")
                self._prev = "."
        elif hold == "pipe" and not _is_line_break(c) and c is not None:
            self._space_pending = False
            self._emit(",")
            self._space(False)
        return False

    def _end_run(self, c: str | None) -> None:
        self._hold = None
        char, length = self._run_char, self._run_len
        if char == "`":
            if not self._code:
                self._code = length
            elif self._code == length:
                self._code = 0
        elif char == "*":
            if _is_space(self._run_prev) and c is not None and _is_space(c):
                self._emit(char * length)
        elif char == "_":
            if (
                self._run_prev is not None
                and self._run_prev.isalnum()
                and c is not None
                and c.isalnum()
            ):
                self._emit(char * length)
        elif length == 1:
            self._emit(char)
        self._prev = char

    def _resolve_line(self, c: str | None) -> bool:
        text = self._held if c is None else self._held + c
        decision = _line_start(text, final=c is None)
        if decision is None:
            self._held = text
            return True
        kind, cut = decision
        self._hold, self._held = None, ""
        if kind == "quote":
            self._hold = "line"
        elif kind == "fence":
            marker = text[:cut].lstrip(" \t")
            self._fence = (marker[0], len(marker))
            self._mode = "fence_info"
            if self._placeholder:
                self._space(True)
                self._emit(self._placeholder)
                self._space(True)
        elif kind == "table":
            self._table_row = True
        elif kind == "drop" and c is None and cut == len(text) and not text.strip(" \t"):
            self._hold = "line"  # only indentation so far: still at the start of a line
        self._prev = "\n"
        self._process(text[cut:])
        return True

    def _resolve_fence_line(self, c: str | None) -> bool:
        text = self._held if c is None else self._held + c
        char, length = self._fence
        lead = _INDENT.match(text).end()  # type: ignore[union-attr]
        rest = text[lead:]
        run = len(rest) - len(rest.lstrip(char))
        if lead <= 3 and run == len(rest) and c is not None and c not in _LINE_BREAKS:
            self._held = text
            return True
        self._hold, self._held = None, ""
        if lead <= 3 and run >= length and (run == len(rest) or _is_space(rest[run])):
            self._mode = "text"
            self._process(rest[run:])
        elif c is not None and c in _LINE_BREAKS:
            self._hold = "fence_line"
        return True

    def _resolve_tag(self, c: str | None) -> bool:
        held = self._held
        if held.startswith("<!--"):  # a comment may hold anything, line breaks and "<" too
            if c is not None and len(held) < _MAX_COMMENT:
                self._held = held + c
                if c == ">" and held.endswith("--"):
                    self._hold, self._held = None, ""
                    self._prev = ">"
                return True
        elif c == ">" and len(held) > 1:
            if _OPEN_QUOTE.fullmatch(held, 1):
                self._held = held + c
                return True
            self._hold, self._held = None, ""
            self._close_tag(held[1:])
            return True
        starts = len(held) > 1 or (c is not None and c.isascii() and (c.isalpha() or c in "/!?"))
        if c is None or c in _LINE_BREAKS or c == "<" or len(held) >= _MAX_TAG or not starts:
            self._hold, self._held = None, ""
            self._emit("<")
            self._prev = "<"
            self._process(held[1:])
            return False
        self._held = held + c
        return True

    def _close_tag(self, content: str) -> None:
        if content.lower().startswith(_URL_STARTS):
            host = _url_host(content)
            if host:
                self._emit(_sayable_host(host))
        elif _EMAIL.fullmatch(content):
            self._emit(content)
        elif _TAG.fullmatch(content):
            name = re.split(r"[\s/]", content.lstrip("/"), maxsplit=1)[0].lower()
            if name in _BREAKING_TAGS:
                self._space(False)
        else:
            self._emit("<")
            self._prev = "<"
            self._process(content + ">")
            return
        self._prev = ">"

    def _resolve_url_prefix(self, c: str | None) -> bool:
        held = self._held
        if c is not None:
            candidate = (held + c).lower()
            if any(start.startswith(candidate) for start in _URL_STARTS):
                self._held = held + c
                if candidate in _URL_STARTS:
                    self._hold, self._held = None, ""
                    self._mode = "url_host"
                    self._host = held + c if candidate == "www." else ""
                return True
        self._hold, self._held = None, ""
        self._emit(held)
        self._prev = held[-1]
        return False

    def _resolve_url_punct(self, c: str | None) -> bool:
        held = self._held
        if c is not None and c in _URL_TRAILING and len(held) < _MAX_URL_TRAILING:
            self._held = held + c
            return True
        self._hold, self._held = None, ""
        if self._leaves_url(c):
            self._mode = "text"
            self._process(held)
        return False


def speakable(
    text: str, *, code_blocks: CodeBlocks = "skip", code_placeholder: str = "code block"
) -> str:
    """The speakable form of a whole text (no trailing whitespace); see :class:`SpeakableFilter`."""
    cleaner = SpeakableFilter(code_blocks=code_blocks, code_placeholder=code_placeholder)
    return (cleaner.feed(text) + cleaner.flush()).rstrip(" \n")
