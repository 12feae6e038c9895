"""Waiting for a run to end, from any process: its chat's events wake the wait, the database
says whether it has ended."""

from __future__ import annotations

import asyncio
import contextlib

from chatflow.broadcaster import Broadcaster, Subscription, SubscriptionClosed
from chatflow.db.engine import Database
from chatflow.repositories import runs as runs_repo
from chatflow.runs.outcomes import ENDING_EVENTS

# The run may execute in another process, whose events reach this one through Redis; if they
# cannot (Redis away, the subscription overflowed), the status is read again this often.  An
# ending event wakes the wait at once, so this only bounds the rare case, and keeps the
# database reads of many waiting requests low.
RECHECK_S = 2.0


async def wait_for_end(
    *, db: Database, broadcaster: Broadcaster, chat_id: str, run_id: str, timeout_s: float
) -> bool:
    """True once the run has a final status; False if ``timeout_s`` passed first."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    async with broadcaster.subscribe(chat_id) as subscription:
        # Subscribed before the first read: an ending stored after it is also delivered.
        while True:
            if await _ended(db, run_id):
                return True
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            with contextlib.suppress(TimeoutError, SubscriptionClosed):
                await asyncio.wait_for(_event_of(subscription, run_id), min(remaining, RECHECK_S))
            if subscription.closed.is_set():
                await asyncio.sleep(min(max(deadline - loop.time(), 0), RECHECK_S))


async def _event_of(subscription: Subscription, run_id: str) -> None:
    """Until an event of ``run_id`` arrives (the caller then reads the status)."""
    while True:
        for event in await subscription.get_many(1000):
            if event.get("run_id") == run_id and event.get("type") in ENDING_EVENTS:
                return


async def _ended(db: Database, run_id: str) -> bool:
    async with db.read() as session:
        status = await runs_repo.get_status(session, run_id=run_id)
    return status not in runs_repo.UNFINISHED
