"""Per-key asyncio locks that exist only while someone holds or waits for them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager


class KeyLocks:
    """One lock per key (an idempotency key, a run id) while someone holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[Hashable, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, identity: Hashable) -> AsyncIterator[None]:
        lock, users = self._locks.get(identity, (asyncio.Lock(), 0))
        self._locks[identity] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[identity]
            if users == 1:
                del self._locks[identity]
            else:
                self._locks[identity] = (lock, users - 1)
