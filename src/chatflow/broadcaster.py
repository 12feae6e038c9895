"""Per-topic publish/subscribe with persistence first and bounded subscriber queues.

The broadcaster knows nothing about chats or spreadsheets: a topic is a string, an event is a
dict.  ``publish`` hands events to a ``store`` callable that persists a batch and returns the
stored events (with their sequence numbers); only then are they fanned out, so anything a
subscriber receives can also be replayed from storage.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

Event = dict[str, Any]
# A store returns the stored events in the order given; None in an event's place means the
# store declined it (its condition no longer held): it is neither numbered nor delivered.
StoreFn = Callable[[str, list[Event]], Awaitable[list[Event | None]]]
FanoutFn = Callable[[str, list[Event]], Awaitable[None]]

log = logging.getLogger(__name__)


class SubscriptionClosed(Exception):
    """The subscription ended: its queue overflowed or the broadcaster is closing."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason  # "overflow" or "shutdown"


class Subscription:
    """One subscriber's bounded queue; a full queue closes it instead of blocking the publisher."""

    def __init__(self, topic: str, maxsize: int) -> None:
        self.topic = topic
        self._maxsize = maxsize
        # A deque and one waiter future instead of asyncio.Queue + wait(get, closed): a get that
        # has to wait costs one future, not two tasks, and every event wakes every subscriber.
        self._events: deque[Event] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self.closed = asyncio.Event()
        self.close_reason: str | None = None

    def offer(self, event: Event) -> bool:
        """Queue ``event``; on overflow close the subscription and return False."""
        if self.closed.is_set():
            return False
        if len(self._events) >= self._maxsize:
            self.close("overflow")
            return False
        self._events.append(event)
        self._wake()
        return True

    def close(self, reason: str) -> None:
        if not self.closed.is_set():
            self.close_reason = reason
            self.closed.set()
            self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self) -> None:
        """Until an event is queued or the subscription closes; raises SubscriptionClosed then
        (queued events are dropped, since the subscriber will catch up from storage)."""
        while True:
            if self.closed.is_set():
                raise SubscriptionClosed(self.close_reason or "closed")
            if self._events:
                return
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    async def get(self) -> Event:
        """The next event; raises SubscriptionClosed once closed."""
        await self._wait()
        return self._events.popleft()

    async def get_many(self, limit: int) -> list[Event]:
        """Every queued event (at least one, at most ``limit``), oldest first."""
        await self._wait()
        events = self._events
        if len(events) <= limit:
            batch = list(events)
            events.clear()
            return batch
        return [events.popleft() for _ in range(limit)]


@dataclass
class _Topic:
    subscribers: set[Subscription] = field(default_factory=set)
    pending: list[tuple[Event, asyncio.Future[Event | None]]] = field(default_factory=list)
    flusher: asyncio.Task[None] | None = None


class Broadcaster:
    """Stores then fans out events, one ordered stream per topic."""

    def __init__(
        self, *, store: StoreFn, queue_size: int = 1000, fanout: FanoutFn | None = None
    ) -> None:
        """``fanout``, when given, receives each stored batch instead of the subscribers: it
        decides what to hand to ``deliver`` and when (it must not raise)."""
        self._store = store
        self._fanout = fanout
        self._queue_size = queue_size
        self._topics: dict[str, _Topic] = {}
        self._closing = False

    def _topic(self, topic: str) -> _Topic:
        state = self._topics.get(topic)
        if state is None:
            state = self._topics[topic] = _Topic()
        return state

    def _forget_if_idle(self, topic: str) -> None:
        state = self._topics.get(topic)
        if state and not state.subscribers and not state.pending and state.flusher is None:
            del self._topics[topic]

    async def publish(self, topic: str, event: Event) -> Event | None:
        """Store ``event`` and deliver it to the topic's subscribers; returns the stored event
        (None if the store declined it).

        Concurrent publishes to one topic are stored in batches by a single flusher task,
        which keeps storage order, delivery order and sequence numbers identical.
        """
        (stored,) = await self.publish_all(topic, [event])
        return stored

    async def publish_all(self, topic: str, events: list[Event]) -> list[Event | None]:
        """``publish`` for several events that are stored together, in one call of the store,
        and delivered in order: all of them, or none if the store fails."""
        if self._closing:
            raise RuntimeError("broadcaster is closed")
        state = self._topic(topic)
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[Event | None]] = [loop.create_future() for _ in events]
        state.pending.extend(zip(events, futures, strict=True))
        if state.flusher is None:
            state.flusher = asyncio.create_task(self._flush(topic), name=f"flush:{topic}")
        # Shielded: a cancelled publisher must not cancel the flush that others wait on.
        return list(await asyncio.shield(asyncio.gather(*futures)))

    async def _flush(self, topic: str) -> None:
        state = self._topics[topic]
        try:
            while state.pending:
                batch, state.pending = state.pending, []
                try:
                    stored = await self._store(topic, [event for event, _ in batch])
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                kept = [event for event in stored if event is not None]
                if self._fanout is None:
                    self.deliver(topic, kept)
                elif kept:
                    await self._fanout(topic, kept)
                for (_, future), event in zip(batch, stored, strict=True):
                    if not future.done():
                        future.set_result(event)
        finally:
            state.flusher = None
            self._forget_if_idle(topic)

    def deliver(self, topic: str, events: list[Event]) -> None:
        """Hand already-stored events to the topic's subscribers, in the order given."""
        state = self._topics.get(topic)
        if state is None:
            return
        for event in events:
            for subscription in list(state.subscribers):
                if not subscription.offer(event):
                    state.subscribers.discard(subscription)

    @contextlib.asynccontextmanager
    async def subscribe(self, topic: str) -> AsyncIterator[Subscription]:
        """Receive events published to ``topic`` from now on, until the block exits."""
        subscription = Subscription(topic, self._queue_size)
        if self._closing:
            subscription.close("shutdown")
        state = self._topic(topic)
        state.subscribers.add(subscription)
        try:
            yield subscription
        finally:
            state.subscribers.discard(subscription)
            subscription.close("unsubscribed")
            self._forget_if_idle(topic)

    def subscriber_count(self, topic: str | None = None) -> int:
        if topic is not None:
            state = self._topics.get(topic)
            return len(state.subscribers) if state else 0
        return sum(len(state.subscribers) for state in self._topics.values())

    def close_topic(self, topic: str, reason: str) -> None:
        """Close every subscription of ``topic`` (e.g. the topic's owner was deleted)."""
        state = self._topics.get(topic)
        for subscription in list(state.subscribers if state else ()):
            subscription.close(reason)

    async def aclose(self) -> None:
        """Finish pending stores, then close every subscription with reason "shutdown"."""
        self._closing = True
        flushers = [s.flusher for s in self._topics.values() if s.flusher is not None]
        if flushers:
            await asyncio.gather(*flushers, return_exceptions=True)
        for state in list(self._topics.values()):
            for subscription in list(state.subscribers):
                subscription.close("shutdown")
