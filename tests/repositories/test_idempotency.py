"""Idempotency against real SQLite and PostgreSQL: the repository (claim, finish, abandon,
takeover of a stale claim, expiry) and the service's ``keyed`` in one process (replay, reuse
with another body, what is stored, serialised retries)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar

import pytest
from sqlalchemy import text

from chatflow.db.engine import Database
from chatflow.db.migrate import upgrade
from chatflow.db.models import IdempotencyRecord, utcnow
from chatflow.errors import BadRequest, Invalid
from chatflow.keylocks import KeyLocks
from chatflow.repositories import idempotency as idempotency_repo
from chatflow.runtime import Runtime
from chatflow.services import idempotency
from tests.repositories.conftest import OnDb

T = TypeVar("T")


def on_both(database_url: str, scenario: Callable[[Database], Awaitable[T]]) -> T:
    """Run ``scenario`` on a Database of ``database_url`` (migrated, empty)."""

    async def main() -> T:
        db = Database(database_url)
        try:
            return await scenario(db)
        finally:
            await db.dispose()

    return asyncio.run(main())


def pending(key: str, *, alive: datetime | None = None, digest: str = "f") -> IdempotencyRecord:
    return IdempotencyRecord(
        owner="",
        key=key,
        scope="POST /x",
        fingerprint=digest,
        alive_at=alive or utcnow(),
        claim_token=uuid.uuid4().hex,
    )


def token(row: IdempotencyRecord) -> str:
    assert row.claim_token is not None
    return row.claim_token


async def read(db: Database, key: str, since: timedelta = idempotency.TTL) -> Any:
    async with db.read() as session:
        return await idempotency_repo.get(
            session, owner="", key=key, scope="POST /x", since=utcnow() - since
        )


async def claim(db: Database, row: IdempotencyRecord) -> bool:
    async with db.write() as session:
        return await idempotency_repo.claim(
            session, row=row, expired_before=utcnow() - idempotency.TTL
        )


def test_a_key_is_claimed_once_then_finished_or_given_up(database_url: str) -> None:
    async def scenario(db: Database) -> None:
        first = pending("k")
        assert await claim(db, first)
        assert not await claim(db, pending("k"))  # UNIQUE decides; no error escapes
        assert await claim(db, pending("other"))
        found = await read(db, "k")
        assert (found.id, found.status, found.body) == (first.id, None, None)
        async with db.write() as session:
            assert await idempotency_repo.finish(
                session, token=token(first), status=201, body=[{"n": 1}]
            )
        found = await read(db, "k")
        assert (found.status, found.body, found.alive_at) == (201, [{"n": 1}], None)
        async with db.write() as session:  # finished: neither given up nor finished again
            await idempotency_repo.abandon(session, token=token(first))
            assert not await idempotency_repo.finish(
                session, token=token(first), status=200, body={}
            )
            assert not await idempotency_repo.heartbeat(session, token=token(first), at=utcnow())
        assert (await read(db, "k")).status == 201
        other = await read(db, "other")
        async with db.write() as session:
            await idempotency_repo.abandon(session, token=token(other))
        assert await read(db, "other") is None
        assert await claim(db, pending("other"))  # given up: free again

    on_both(database_url, scenario)


def test_only_a_claim_that_stopped_beating_is_dropped(database_url: str) -> None:
    async def scenario(db: Database) -> None:
        now = utcnow()
        alive, dead = pending("alive"), pending("dead", alive=now - timedelta(minutes=2))
        assert await claim(db, alive) and await claim(db, dead)
        cutoff = now - idempotency.STALE_AFTER
        async with db.write() as session:
            assert not await idempotency_repo.drop_stale(
                session, record_id=alive.id, alive_before=cutoff
            )
            assert await idempotency_repo.drop_stale(
                session, record_id=dead.id, alive_before=cutoff
            )
            assert not await idempotency_repo.drop_stale(  # a second taker finds nothing
                session, record_id=dead.id, alive_before=cutoff
            )
        assert await read(db, "dead") is None
        taker = pending("dead")
        assert await claim(db, taker)  # on SQLite it may get the dropped record's id
        async with db.write() as session:  # the old owner's token names nothing now
            assert not await idempotency_repo.heartbeat(session, token=token(dead), at=now)
            assert not await idempotency_repo.finish(
                session, token=token(dead), status=201, body={}
            )
            await idempotency_repo.abandon(session, token=token(dead))
        assert (await read(db, "dead")).claim_token == taker.claim_token
        later = utcnow() + timedelta(minutes=5)
        async with db.write() as session:
            assert await idempotency_repo.heartbeat(session, token=token(alive), at=later)
            assert not await idempotency_repo.drop_stale(
                session, record_id=alive.id, alive_before=later
            )
        assert (await read(db, "alive")).alive_at == later

    on_both(database_url, scenario)


def test_expired_records_are_replaced_and_purged(database_url: str) -> None:
    async def scenario(db: Database) -> None:
        old = utcnow() - idempotency.TTL - timedelta(minutes=1)
        for key in ("expired", "gone"):
            row = pending(key)
            row.created_at, row.status, row.body = old, 201, {"old": True}
            assert await claim(db, row)
        assert await read(db, "expired") is None  # expired: as if never sent
        assert await claim(db, pending("expired"))  # replaces the old record
        assert (await read(db, "expired")).status is None
        async with db.write() as session:
            await idempotency_repo.purge(session, before=utcnow() - idempotency.TTL)
        assert await read(db, "gone", since=timedelta(days=365)) is None
        assert await read(db, "expired") is not None

    on_both(database_url, scenario)


def runtime(db: Database, wait_s: float = 5.0) -> Runtime:
    """What keyed() uses of a Runtime; a whole one needs workers and a broadcaster."""
    settings = SimpleNamespace(idempotency_wait_s=wait_s)
    found: Any = SimpleNamespace(db=db, idempotency_locks=KeyLocks(), settings=settings)
    return found


async def call(rt: Runtime, key: str | None, digest: str, status: int, body: Any) -> Any:
    """One keyed request: the replayed answer, or ``body`` after remembering it."""
    async with idempotency.keyed(
        rt=rt, owner=None, key=key, scope="POST /x", digest=digest
    ) as attempt:
        if attempt.replay is not None:
            return attempt.replay
        attempt.remember(status, body)
        return (status, body)


def test_a_retry_gets_the_first_answer_and_another_body_is_refused(database_url: str) -> None:
    async def scenario(db: Database) -> None:
        rt = runtime(db)
        assert await call(rt, "k", "d1", 201, {"n": 1}) == (201, {"n": 1})
        assert await call(rt, "k", "d1", 201, {"n": 2}) == (201, {"n": 1})
        with pytest.raises(Invalid) as reused:
            await call(rt, "k", "d2", 201, {"n": 3})
        assert reused.value.code == "idempotency_key_reused"
        assert await call(rt, None, "d1", 201, {"n": 4}) == (201, {"n": 4})  # no key: no replay

    on_both(database_url, scenario)


def test_errors_are_not_stored_so_they_may_be_retried(database_url: str) -> None:
    async def scenario(db: Database) -> None:
        rt = runtime(db)
        assert await call(rt, "k", "d", 422, {"error": 1}) == (422, {"error": 1})
        assert await read(db, "k") is None
        with pytest.raises(RuntimeError):
            async with idempotency.keyed(rt=rt, owner=None, key="k", scope="POST /x", digest="d"):
                raise RuntimeError("the work failed")
        assert await read(db, "k") is None
        assert await call(rt, "k", "d", 201, {"n": 1}) == (201, {"n": 1})
        assert await call(rt, "k", "d", 201, {"n": 2}) == (201, {"n": 1})

    on_both(database_url, scenario)


@pytest.mark.parametrize("key", ["", "k" * (idempotency.MAX_KEY_LENGTH + 1)])
def test_an_empty_or_overlong_key_is_a_bad_request(on_db: OnDb, key: str) -> None:
    async def scenario(db: Database) -> None:
        with pytest.raises(BadRequest) as refused:
            await call(runtime(db), key, "d", 201, {})
        assert refused.value.code == "invalid_idempotency_key"

    on_db(scenario)


def test_concurrent_requests_with_one_key_run_once(on_db: OnDb) -> None:
    async def scenario(db: Database) -> None:
        rt = runtime(db)
        runs = 0

        async def request(n: int) -> Any:
            nonlocal runs
            async with idempotency.keyed(
                rt=rt, owner=None, key="k", scope="POST /x", digest="d"
            ) as attempt:
                if attempt.replay is not None:
                    return attempt.replay
                runs += 1
                attempt.remember(201, {"n": n})
                return (201, {"n": n})

        answers = await asyncio.gather(*(request(n) for n in range(5)))
        assert runs == 1
        assert len({str(a) for a in answers}) == 1

    on_db(scenario)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_an_answer_stored_before_claims_existed_still_replays(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'chatflow.db'}"
    else:
        url = request.getfixturevalue("postgres").fresh()
    upgrade(url, "0005")

    async def store(db: Database) -> None:
        async with db.write() as session:
            await session.execute(
                text(
                    "INSERT INTO idempotency_keys (owner, key, scope, fingerprint, status, body,"
                    " created_at) VALUES ('', 'k', 'POST /x', 'd', 201, '{\"n\": 1}', :now)"
                ),
                {"now": utcnow()},
            )

    on_both(url, store)
    upgrade(url)

    async def retry(db: Database) -> Any:
        return await call(runtime(db), "k", "d", 201, {"n": 2})

    assert on_both(url, retry) == (201, {"n": 1})
