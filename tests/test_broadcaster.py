"""Unit tests of the broadcaster with an in-memory store."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from chatflow.broadcaster import Broadcaster, SubscriptionClosed


class MemoryStore:
    """Assigns per-topic sequence numbers like the events repository does."""

    def __init__(self, delay: float = 0.0) -> None:
        self.log: dict[str, list[dict[str, Any]]] = {}
        self.batches: list[int] = []
        self.delay = delay
        self.fail_next = False
        self.called = asyncio.Event()  # set once a batch reached the store

    async def __call__(self, topic: str, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        self.called.set()
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("disk full")
        stored = self.log.setdefault(topic, [])
        out = [{**event, "seq": len(stored) + i + 1} for i, event in enumerate(events)]
        stored.extend(out)
        self.batches.append(len(events))
        return out


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_events_are_stored_before_delivery_in_publish_order() -> None:
    async def scenario() -> None:
        store = MemoryStore()
        broadcaster = Broadcaster(store=store, queue_size=100)
        async with broadcaster.subscribe("a") as sub_a, broadcaster.subscribe("b") as sub_b:
            results = await asyncio.gather(*(broadcaster.publish("a", {"n": i}) for i in range(50)))
            await broadcaster.publish("b", {"n": "only b"})
            assert [r["seq"] for r in results] == list(range(1, 51))
            got = [await sub_a.get() for _ in range(50)]
            assert [e["n"] for e in got] == list(range(50))
            assert got == store.log["a"]
            assert await sub_b.get() == {"n": "only b", "seq": 1}
        # Concurrent publishes were batched into fewer store calls.
        assert len(store.batches) < 51

    run(scenario())


def test_a_full_queue_closes_only_that_subscriber() -> None:
    async def scenario() -> None:
        broadcaster = Broadcaster(store=MemoryStore(), queue_size=3)
        async with broadcaster.subscribe("t") as slow, broadcaster.subscribe("t") as fast:
            for i in range(5):
                await broadcaster.publish("t", {"n": i})
                assert (await fast.get())["n"] == i
            assert slow.close_reason == "overflow"
            with pytest.raises(SubscriptionClosed) as closed:
                await slow.get()
            assert closed.value.reason == "overflow"
            assert broadcaster.subscriber_count("t") == 1

    run(scenario())


def test_store_failure_reaches_the_publisher_and_later_events_still_flow() -> None:
    async def scenario() -> None:
        store = MemoryStore()
        broadcaster = Broadcaster(store=store)
        async with broadcaster.subscribe("t") as sub:
            store.fail_next = True
            with pytest.raises(RuntimeError, match="disk full"):
                await broadcaster.publish("t", {"n": 0})
            stored = await broadcaster.publish("t", {"n": 1})
            assert stored["seq"] == 1
            assert await sub.get() == stored  # the failed event was never delivered

    run(scenario())


def test_cancelled_publisher_does_not_lose_the_event() -> None:
    async def scenario() -> None:
        store = MemoryStore(delay=0.05)
        broadcaster = Broadcaster(store=store)
        async with broadcaster.subscribe("t") as sub:
            task = asyncio.create_task(broadcaster.publish("t", {"n": 0}))
            await store.called.wait()  # the event is in the store's hands
            task.cancel()
            assert (await asyncio.wait_for(sub.get(), 1))["n"] == 0

    run(scenario())


def test_unsubscribe_cleans_up_and_close_marks_shutdown() -> None:
    async def scenario() -> None:
        broadcaster = Broadcaster(store=MemoryStore())
        async with broadcaster.subscribe("t"):
            assert broadcaster.subscriber_count() == 1
        assert broadcaster.subscriber_count() == 0
        async with broadcaster.subscribe("t") as sub:
            waiter = asyncio.create_task(sub.get())
            await asyncio.sleep(0)
            await broadcaster.aclose()
            with pytest.raises(SubscriptionClosed) as closed:
                await waiter
            assert closed.value.reason == "shutdown"
        with pytest.raises(RuntimeError):
            await broadcaster.publish("t", {})

    run(scenario())


def test_get_many_takes_what_is_queued_in_order_up_to_the_limit() -> None:
    async def scenario() -> None:
        broadcaster = Broadcaster(store=MemoryStore(), queue_size=100)
        async with broadcaster.subscribe("t") as sub:
            waiter = asyncio.create_task(sub.get_many(3))
            await asyncio.sleep(0)  # the waiter is parked on an empty queue
            await broadcaster.publish("t", {"n": 0})
            assert [e["n"] for e in await waiter] == [0]
            await asyncio.gather(*(broadcaster.publish("t", {"n": i}) for i in range(1, 6)))
            assert [e["n"] for e in await sub.get_many(3)] == [1, 2, 3]
            assert [e["n"] for e in await sub.get_many(3)] == [4, 5]
            sub.close("deleted")
            with pytest.raises(SubscriptionClosed) as closed:
                await sub.get_many(3)
            assert closed.value.reason == "deleted"

    run(scenario())
