"""keylocks.KeyLocks: one holder per key at a time, other keys free, nothing kept afterwards."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable

import pytest

from chatflow.keylocks import KeyLocks


def test_one_key_is_held_by_one_at_a_time_in_arrival_order() -> None:
    async def scenario() -> list[str]:
        locks = KeyLocks()
        order: list[str] = []
        first_in = asyncio.Event()
        release = asyncio.Event()

        async def first() -> None:
            async with locks.hold("k"):
                order.append("first in")
                first_in.set()
                await release.wait()
                order.append("first out")

        async def second() -> None:
            await first_in.wait()
            async with locks.hold("k"):
                order.append("second in")

        tasks = [asyncio.create_task(first()), asyncio.create_task(second())]
        await first_in.wait()
        for _ in range(3):  # turns of the loop: the second runs until it blocks on the lock
            await asyncio.sleep(0)
        assert order == ["first in"]
        release.set()
        await asyncio.gather(*tasks)
        assert locks._locks == {}
        return order

    assert asyncio.run(scenario()) == ["first in", "first out", "second in"]


def test_different_keys_do_not_wait_for_each_other() -> None:
    async def scenario() -> None:
        locks = KeyLocks()
        async with locks.hold("a"):
            await asyncio.wait_for(_enter(locks, "b"), timeout=1)
            await asyncio.wait_for(_enter(locks, ("a", "scope")), timeout=1)
            assert set(locks._locks) == {"a"}
        assert locks._locks == {}

    asyncio.run(scenario())


async def _enter(locks: KeyLocks, key: Hashable) -> None:
    async with locks.hold(key):
        pass


def test_a_failing_holder_and_a_cancelled_waiter_leave_nothing_behind() -> None:
    async def scenario() -> None:
        locks = KeyLocks()
        with pytest.raises(RuntimeError):
            async with locks.hold("k"):
                raise RuntimeError("inside")
        assert locks._locks == {}
        async with locks.hold("k"):
            waiter = asyncio.create_task(_enter(locks, "k"))
            await asyncio.sleep(0)  # one turn of the loop: the waiter runs until it blocks
            assert locks._locks["k"][1] == 2
            waiter.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiter
            assert locks._locks["k"][1] == 1
        assert locks._locks == {}

    asyncio.run(scenario())
