"""``keyed`` across processes, on SQLite and PostgreSQL: two Runtimes, each with its own
Database and its own in-process locks, on one database, as two API processes would be. The
claim in the database alone decides who does the work."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from functools import partial
from typing import Any

import pytest

from chatflow.db.engine import Database
from chatflow.db.models import utcnow
from chatflow.errors import Conflict
from chatflow.runtime import Runtime
from chatflow.services import idempotency
from tests.repositories.test_idempotency import claim, pending, read, runtime

Work = Callable[[], Awaitable[tuple[int, Any]]]


def on_two(
    database_url: str, scenario: Callable[[Runtime, Runtime], Awaitable[None]], wait_s: float
) -> None:
    async def main() -> None:
        first, second = Database(database_url), Database(database_url)
        try:
            await scenario(runtime(first, wait_s), runtime(second, wait_s))
        finally:
            await first.dispose()
            await second.dispose()

    asyncio.run(main())


async def request(rt: Runtime, work: Work, digest: str = "d", wait_s: float | None = None) -> Any:
    """One keyed request on ``rt`` doing ``work`` unless it replays."""
    async with idempotency.keyed(
        rt=rt, owner=None, key="k", scope="POST /x", digest=digest, wait_s=wait_s
    ) as attempt:
        if attempt.replay is not None:
            return attempt.replay
        answer = await work()
        attempt.remember(*answer)
        return answer


def test_first_attempts_at_once_on_two_processes_work_once(database_url: str) -> None:
    async def scenario(a: Runtime, b: Runtime) -> None:
        done: list[int] = []

        async def work(n: int) -> tuple[int, Any]:
            done.append(n)
            await asyncio.sleep(0.3)  # the others arrive while it works
            return (201, {"n": n})

        answers = await asyncio.gather(
            *(request((a, b)[n % 2], partial(work, n)) for n in range(6))
        )
        assert len(done) == 1
        assert answers == [(201, {"n": done[0]})] * 6
        assert (await read(a.db, "k")).body == {"n": done[0]}

    on_two(database_url, scenario, wait_s=10)


def test_a_loser_waits_for_the_answer_then_replays_it(database_url: str) -> None:
    async def scenario(a: Runtime, b: Runtime) -> None:
        release = asyncio.Event()

        async def slow() -> tuple[int, Any]:
            await release.wait()
            return (200, {"slow": True})

        async def never() -> tuple[int, Any]:
            raise AssertionError("the loser must not do the work")

        owner = asyncio.create_task(request(a, slow))
        await asyncio.sleep(0.2)  # a's claim is in
        loser = asyncio.create_task(request(b, never))
        await asyncio.sleep(0.5)
        assert not loser.done()  # waiting, not answering
        release.set()
        assert await owner == (200, {"slow": True})
        assert await loser == (200, {"slow": True})

    on_two(database_url, scenario, wait_s=10)


def test_past_its_bound_a_loser_gets_409_and_its_own_wait_extends_the_bound(
    database_url: str,
) -> None:
    async def scenario(a: Runtime, b: Runtime) -> None:
        release = asyncio.Event()

        async def slow() -> tuple[int, Any]:
            await release.wait()
            return (200, {"slow": True})

        owner = asyncio.create_task(request(a, slow))
        await asyncio.sleep(0.2)
        started = asyncio.get_running_loop().time()
        with pytest.raises(Conflict) as busy:
            await request(b, slow)
        assert 0.3 <= asyncio.get_running_loop().time() - started < 2
        assert busy.value.code == "idempotency_in_progress"
        assert busy.value.headers == {"Retry-After": str(idempotency.RETRY_AFTER_S)}
        with pytest.raises(Conflict) as busy_here:  # on the owner's process: its lock's bound
            await request(a, slow)
        assert busy_here.value.code == "idempotency_in_progress"
        # A request that would itself wait 10 s (execute ?wait=true) waits that long.
        patient = asyncio.create_task(request(b, slow, wait_s=10))
        await asyncio.sleep(1)
        release.set()
        assert await patient == (200, {"slow": True})
        assert await owner == (200, {"slow": True})

    on_two(database_url, scenario, wait_s=0.3)


def test_a_failed_owner_gives_the_key_up_to_a_waiting_request(database_url: str) -> None:
    async def scenario(a: Runtime, b: Runtime) -> None:
        async def fails() -> tuple[int, Any]:
            await asyncio.sleep(0.5)
            raise RuntimeError("the work failed")

        async def works() -> tuple[int, Any]:
            return (201, {"second": True})

        owner = asyncio.create_task(request(a, fails))
        await asyncio.sleep(0.2)
        assert await request(b, works) == (201, {"second": True})
        with pytest.raises(RuntimeError):
            await owner
        assert await request(a, fails) == (201, {"second": True})  # now a replay

    on_two(database_url, scenario, wait_s=10)


def test_a_claim_left_by_a_dead_process_is_taken_over(database_url: str) -> None:
    async def scenario(a: Runtime, b: Runtime) -> None:
        dead = pending("k", alive=utcnow() - idempotency.STALE_AFTER - timedelta(seconds=5))
        dead.fingerprint = "d"
        assert await claim(a.db, dead)

        async def works() -> tuple[int, Any]:
            return (201, {"took": "over"})

        assert await request(b, works) == (201, {"took": "over"})
        found = await read(a.db, "k")
        assert found.claim_token != dead.claim_token and found.status == 201

    on_two(database_url, scenario, wait_s=10)


def test_the_owner_keeps_its_claim_alive(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(idempotency, "HEARTBEAT_S", 0.1)

    async def scenario(a: Runtime, b: Runtime) -> None:
        async def slow() -> tuple[int, Any]:
            first = (await read(a.db, "k")).alive_at
            await asyncio.sleep(0.5)
            assert (await read(a.db, "k")).alive_at > first
            return (201, {})

        assert await request(a, slow) == (201, {})

    on_two(database_url, scenario, wait_s=10)
