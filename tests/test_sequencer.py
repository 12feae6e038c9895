"""The relay's Sequencer: a chat's events reach the local broadcaster in seq order, each once,
gaps filled from storage (here a list) before anything newer; and the broadcaster's fan-out
hook, through which a process's own stored events take the same path."""

from __future__ import annotations

import asyncio
from typing import Any

from chatflow.broadcaster import Broadcaster, Subscription
from chatflow.services.relay import Sequencer

Event = dict[str, Any]


class Log:
    """One chat's stored events, and the reads of them the sequencer made."""

    def __init__(self, count: int) -> None:
        self.events = [{"chat_id": "c", "seq": n, "type": "t"} for n in range(1, count + 1)]
        self.reads: list[int] = []

    async def read_since(self, chat_id: str, since: int) -> list[Event]:
        self.reads.append(since)
        return [event for event in self.events if event["seq"] > since]

    def seqs(self, *seqs: int) -> list[Event]:
        return [self.events[seq - 1] for seq in seqs]


async def _not_stored(topic: str, events: list[Event]) -> list[Event]:
    raise AssertionError("the sequencer only delivers stored events")


def _drain(subscription: Subscription) -> list[int]:
    seqs = []
    while subscription._events:
        seqs.append(subscription._events.popleft()["seq"])
    return seqs


def test_in_order_events_pass_and_duplicates_are_dropped_without_reading_storage() -> None:
    async def scenario() -> None:
        log = Log(4)
        broadcaster = Broadcaster(store=_not_stored)
        sequencer = Sequencer(broadcaster, log.read_since)
        async with broadcaster.subscribe("c") as subscription:
            await sequencer.deliver("c", log.seqs(1, 2))
            await sequencer.deliver("c", log.seqs(2))  # heard twice: from Redis and locally
            await sequencer.deliver("c", log.seqs(1, 2, 3))
            await sequencer.deliver("c", log.seqs(4))
            assert _drain(subscription) == [1, 2, 3, 4]
        assert log.reads == []

    asyncio.run(scenario())


def test_a_gap_is_backfilled_from_storage_before_the_newer_event() -> None:
    async def scenario() -> None:
        log = Log(7)
        broadcaster = Broadcaster(store=_not_stored)
        sequencer = Sequencer(broadcaster, log.read_since)
        async with broadcaster.subscribe("c") as subscription:
            await sequencer.deliver("c", log.seqs(1, 2))
            await sequencer.deliver("c", log.seqs(5))  # 3 and 4 were lost
            assert log.reads == [2]
            # Storage already had 6 and 7: they went out with the backfill, so live copies of
            # them are duplicates now.
            await sequencer.deliver("c", log.seqs(6, 7))
            assert _drain(subscription) == [1, 2, 3, 4, 5, 6, 7]
        assert log.reads == [2]

    asyncio.run(scenario())


def test_catch_up_reads_what_was_stored_while_disconnected() -> None:
    async def scenario() -> None:
        log = Log(5)
        broadcaster = Broadcaster(store=_not_stored)
        sequencer = Sequencer(broadcaster, log.read_since)
        async with broadcaster.subscribe("c") as subscription:
            await sequencer.deliver("c", log.seqs(1, 2))
            await sequencer.catch_up()  # after a reconnect: 3..5 were published meanwhile
            await sequencer.deliver("c", log.seqs(5))
            assert _drain(subscription) == [1, 2, 3, 4, 5]
        assert log.reads == [2]

    asyncio.run(scenario())


def test_a_chat_nobody_follows_is_neither_tracked_nor_read() -> None:
    async def scenario() -> None:
        log = Log(3)
        broadcaster = Broadcaster(store=_not_stored)
        sequencer = Sequencer(broadcaster, log.read_since)
        await sequencer.deliver("c", log.seqs(1))
        await sequencer.deliver("c", log.seqs(3))
        await sequencer.catch_up()
        assert sequencer.followed() == 0
        assert log.reads == []

    asyncio.run(scenario())


def test_the_fanout_hook_replaces_direct_delivery() -> None:
    async def scenario() -> None:
        handed: list[tuple[str, list[int]]] = []
        broadcaster: Broadcaster

        async def store(topic: str, events: list[Event]) -> list[Event]:
            return [{**event, "seq": 10 + i} for i, event in enumerate(events)]

        async def fanout(topic: str, stored: list[Event]) -> None:
            handed.append((topic, [event["seq"] for event in stored]))
            broadcaster.deliver(topic, stored[1:])  # the hook decides what goes out

        broadcaster = Broadcaster(store=store, fanout=fanout)
        async with broadcaster.subscribe("c") as subscription:
            stored = await broadcaster.publish_all("c", [{"n": 1}, {"n": 2}])
            assert [event["seq"] for event in stored] == [10, 11]
            assert handed == [("c", [10, 11])]
            assert _drain(subscription) == [11]

    asyncio.run(scenario())
