"""The framework plugins' pool of warm bridges, without a framework: every bridge it makes is
closed and its threads joined, whatever the turns borrowing them do."""

from __future__ import annotations

import asyncio
import threading

import pytest

from voicebridge.integrations._common import BridgePool
from voicebridge.server import ServerThread


def session_threads() -> int:
    return sum(t.name == "voicebridge-session" for t in threading.enumerate())


async def hold(pool: BridgePool, seconds: float) -> None:
    async with pool.borrow():
        await asyncio.sleep(seconds)


def test_a_turn_cancelled_while_its_bridge_is_made_leaves_no_thread(
    tone_server: ServerThread,
) -> None:
    before = session_threads()

    async def main() -> None:
        pool = BridgePool({"url": tone_server.url})
        async with pool.borrow():  # the first bridge is busy: the next turn gets a new one
            turn = asyncio.create_task(hold(pool, 60))
            await asyncio.sleep(0)  # the turn now waits for its bridge to be made
            turn.cancel()  # a barge-in
            with pytest.raises(asyncio.CancelledError):
                await turn
        await pool.aclose()

    asyncio.run(main())
    assert session_threads() == before


def test_closes_that_overlap_close_each_bridge_once(tone_server: ServerThread) -> None:
    before = session_threads()

    async def main() -> None:
        pool = BridgePool({"url": tone_server.url})
        await asyncio.gather(*(hold(pool, 0.2) for _ in range(3)))  # three bridges, two kept
        assert session_threads() == before + 2
        await asyncio.gather(pool.retire(), pool.retire())
        assert session_threads() == before
        await pool.aclose()

    asyncio.run(main())
    assert session_threads() == before
