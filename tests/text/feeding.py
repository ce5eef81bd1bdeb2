"""Feeding helpers shared by the text tests."""

from __future__ import annotations

import itertools

from voicebridge.text.fragmenter import Fragment, Fragmenter


def feed_with_pauses(
    fragmenter: Fragmenter, text: str, steps: list[int], pauses: list[bool]
) -> list[Fragment]:
    """Feed ``text`` in pieces of ``steps[i]`` characters (cycling); after piece ``i`` call
    ``flush(whole_words=True)`` when ``pauses[i]``; end with a plain flush."""
    fragments: list[Fragment] = []
    start = index = 0
    while start < len(text):
        end = start + steps[index % len(steps)]
        fragments += fragmenter.feed(text[start:end])
        if index < len(pauses) and pauses[index]:
            fragments += fragmenter.flush(whole_words=True)
        start, index = end, index + 1
    return fragments + fragmenter.flush()


def cut_offsets(fragments: list[Fragment]) -> list[int]:
    """Offsets in the joined text where one fragment ends and the next begins."""
    return list(itertools.accumulate(len(f.text) for f in fragments[:-1]))
