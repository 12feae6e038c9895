"""Live events across API processes: stored events are published through Redis pub/sub, and
each process feeds what the others stored into its own broadcaster, gap-free.

One channel (``{prefix}:events``) carries every chat's events, each message a JSON array of one
stored batch (each event names its chat).  One channel, not one per chat: a process subscribes
once at start-up and again after a reconnect, instead of subscribing and unsubscribing as
WebSockets come and go, where every SUBSCRIBE would race the events published meanwhile; the
cost is that every process decodes every chat's events, and drops those nobody follows there.

Redis is only a fast path: the events table is the truth.  ``Sequencer`` delivers a chat's
events to the local subscribers in ``seq`` order, each once: a duplicate is dropped, and a gap
(a lost message, a reconnect) is filled from the database before anything newer is delivered.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from chatflow.broadcaster import Broadcaster, Event
from chatflow.db.engine import Database
from chatflow.keylocks import KeyLocks
from chatflow.metrics import Metrics
from chatflow.services.events import StoredEvent, list_since

log = logging.getLogger(__name__)

BACKFILL_PAGE = 500
# Batches waiting to be published while Redis is away; past it the oldest are dropped (they
# are stored: the other processes read them back when they see the next, newer seq).
PUBLISH_BACKLOG = 10_000
BACKOFF_FIRST_S = 0.1
BACKOFF_MAX_S = 5.0
LISTEN_POLL_S = 1.0

ReadSince = Callable[[str, int], Awaitable[list[Event]]]


class Sequencer:
    """Delivers each chat's stored events to the local broadcaster in seq order, each once."""

    def __init__(self, broadcaster: Broadcaster, read_since: ReadSince) -> None:
        self._broadcaster = broadcaster
        self._read_since = read_since
        # The last seq delivered, per chat that has subscribers here.
        self._last: dict[str, int] = {}
        self._locks = KeyLocks()

    async def deliver(self, chat_id: str, events: list[Event]) -> None:
        """Deliver ``events`` (stored, in seq order) after any that are missing before them."""
        if not events:
            return
        async with self._locks.hold(chat_id):
            if not self._broadcaster.subscriber_count(chat_id):
                # Nobody follows it here: a subscriber that comes later replays from storage.
                self._last.pop(chat_id, None)
                return
            last = self._last.get(chat_id, events[0]["seq"] - 1)
            fresh = [event for event in events if event["seq"] > last]
            if not fresh:
                return
            if fresh[0]["seq"] != last + 1:
                log.info("chat %s: events after %d missed, backfilling", chat_id, last)
                await self._backfill(chat_id, last)
                last = self._last[chat_id]
                fresh = [event for event in fresh if event["seq"] > last]
            self._hand_over(chat_id, fresh)

    async def catch_up(self) -> None:
        """Backfill every followed chat (after a reconnect: messages may have been lost)."""
        for chat_id in list(self._last):
            async with self._locks.hold(chat_id):
                last = self._last.get(chat_id)
                if not self._broadcaster.subscriber_count(chat_id):
                    self._last.pop(chat_id, None)
                elif last is not None:
                    await self._backfill(chat_id, last)

    async def _backfill(self, chat_id: str, last: int) -> None:
        """Deliver every stored event after ``last``; committed seqs have no holes, so what is
        read is consecutive."""
        self._last[chat_id] = last
        while True:
            page = await self._read_since(chat_id, last)
            self._hand_over(chat_id, page)
            if len(page) < BACKFILL_PAGE:
                return
            last = page[-1]["seq"]

    def _hand_over(self, chat_id: str, events: list[Event]) -> None:
        if events:
            self._broadcaster.deliver(chat_id, events)
            self._last[chat_id] = events[-1]["seq"]

    def followed(self) -> int:
        return len(self._last)


class RedisRelay:
    """Publishes this process's stored events and delivers the other processes' ones.

    Owns two tasks, started by ``start`` and ended by ``aclose``: one publisher (in store
    order, holding batches while Redis is away) and one subscriber (reconnecting with backoff,
    then catching up from the database).
    """

    def __init__(
        self, url: str, *, prefix: str, db: Database, metrics: Metrics | None = None
    ) -> None:
        # No retries inside redis-py: its silent reconnect would resubscribe without telling
        # us, and the messages lost meanwhile would only be noticed at the chat's next event.
        # Timeouts: a Redis that stops answering holds the publisher for 5 s at a time, not for
        # ever; the subscriber polls (LISTEN_POLL_S) so that its health-check PING goes out.
        self._redis = Redis.from_url(
            url,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=10,
            socket_connect_timeout=5,
            socket_timeout=5,
        )
        self.channel = f"{prefix}:events"
        self._db = db
        self._outbox: collections.deque[str] = collections.deque(maxlen=PUBLISH_BACKLOG)
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._sequencer: Sequencer | None = None
        self.connected = asyncio.Event()  # the subscriber is subscribed and caught up
        self.reconnects = 0
        self._metrics = metrics

    def attach(self, broadcaster: Broadcaster) -> None:
        """Deliver to ``broadcaster`` (built with ``fanout=relay.stored_here``)."""
        self._sequencer = Sequencer(broadcaster, self._read_since)

    async def _read_since(self, chat_id: str, since: int) -> list[Event]:
        return await list_since(self._db, chat_id=chat_id, since=since, limit=BACKFILL_PAGE)

    @property
    def sequencer(self) -> Sequencer:
        if self._sequencer is None:
            raise RuntimeError("RedisRelay.attach was not called")
        return self._sequencer

    async def stored_here(self, chat_id: str, events: list[Event]) -> None:
        """The broadcaster's fan-out: publish a batch this process stored, then deliver it."""
        self._outbox.append("[" + ",".join(_text(event) for event in events) + "]")
        self._wake.set()
        try:
            await self.sequencer.deliver(chat_id, events)
        except Exception:
            # Stored all the same: the subscribers read it back at their next gap.
            log.exception("delivering events of chat %s failed", chat_id)

    async def ping(self, timeout_s: float = 2.0) -> bool:
        """Whether Redis answers a PING within ``timeout_s``."""
        try:
            async with asyncio.timeout(timeout_s):
                answer = self._redis.ping()
                # redis-py types the asyncio client's commands as sync-or-async.
                return bool(await answer) if inspect.isawaitable(answer) else bool(answer)
        except Exception:
            return False

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._publish_forever(), name="redis-publisher"),
            asyncio.create_task(self._subscribe_forever(), name="redis-subscriber"),
        ]

    async def aclose(self, grace_s: float = 2.0) -> None:
        """Publish what is waiting (for at most ``grace_s``), then stop both tasks."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace_s):
                while self._outbox:
                    self._wake.set()
                    await asyncio.sleep(0.01)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._redis.aclose()

    async def _publish_forever(self) -> None:
        backoff = BACKOFF_FIRST_S
        while True:
            if not self._outbox:
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                await self._redis.publish(self.channel, self._outbox[0])
            except Exception as error:
                log.warning("publishing to Redis failed (%r); retrying in %.1f s", error, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                continue
            backoff = BACKOFF_FIRST_S
            if self._outbox:
                self._outbox.popleft()

    async def _subscribe_forever(self) -> None:
        backoff = BACKOFF_FIRST_S
        while True:
            try:
                await self._listen()
            except Exception as error:
                if self.connected.is_set():
                    backoff = BACKOFF_FIRST_S  # it was up: the first retry comes soon
                self.connected.clear()
                self.reconnects += 1
                if self._metrics is not None:
                    self._metrics.redis_reconnected()
                log.warning("Redis subscriber lost (%r); reconnecting in %.1f s", error, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)

    async def _listen(self) -> None:
        async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
            await pubsub.subscribe(self.channel)
            # Subscribed first, then caught up: whatever was stored while we were away is read
            # back, and anything published from now on arrives (duplicates are dropped).
            await self.sequencer.catch_up()
            self.connected.set()
            while True:
                message = await pubsub.get_message(timeout=LISTEN_POLL_S)
                if message is not None and message.get("type") == "message":
                    await self._received(message["data"])

    async def _received(self, data: bytes) -> None:
        try:
            batch: list[Event] = [StoredEvent(event) for event in json.loads(data)]
            chat_id = str(batch[0]["chat_id"])
        except (ValueError, TypeError, KeyError, IndexError):
            log.warning("ignored a malformed message on %s", self.channel)
            return
        await self.sequencer.deliver(chat_id, batch)


def _text(event: Event) -> str:
    text: Any = getattr(event, "text", None)
    return text if isinstance(text, str) else json.dumps(event, separators=(",", ":"))
