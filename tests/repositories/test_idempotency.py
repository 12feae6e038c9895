"""Idempotency against real SQLite: the repository (expiry, replacement) and the service's
``keyed`` (replay, reuse with another body, what is stored, serialised retries)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from chatflow.db.engine import Database
from chatflow.db.models import IdempotencyRecord, utcnow
from chatflow.errors import BadRequest, Invalid
from chatflow.keylocks import KeyLocks
from chatflow.repositories import idempotency as idempotency_repo
from chatflow.runtime import Runtime
from chatflow.services import idempotency
from tests.repositories.conftest import OnDb


def _record(key: str, *, age: timedelta = timedelta(0), owner: str = "") -> IdempotencyRecord:
    return IdempotencyRecord(
        owner=owner,
        key=key,
        scope="POST /x",
        fingerprint="f",
        status=201,
        body={"key": key},
        created_at=utcnow() - age,
    )


async def _get(db: Database, key: str, owner: str = "") -> IdempotencyRecord | None:
    since = utcnow() - idempotency.TTL
    async with db.read() as session:
        return await idempotency_repo.get(
            session, owner=owner, key=key, scope="POST /x", since=since
        )


def test_records_expire_are_replaced_and_purged(on_db: OnDb) -> None:
    async def scenario(db: Database) -> None:
        old = idempotency.TTL + timedelta(minutes=1)
        async with db.write() as session:
            await idempotency_repo.put(session, row=_record("fresh"))
            await idempotency_repo.put(session, row=_record("fresh", owner="other"))
            await idempotency_repo.put(session, row=_record("stale", age=old))
        assert await _get(db, "fresh") is not None
        assert await _get(db, "stale") is None  # expired: as if never sent
        async with db.write() as session:
            await idempotency_repo.put(session, row=_record("stale"))  # replaces the old row
        assert await _get(db, "stale") is not None
        async with db.write() as session:
            await idempotency_repo.put(session, row=_record("gone", age=old))
            await idempotency_repo.purge(session, before=utcnow() - idempotency.TTL)
        async with db.read() as session:
            since = utcnow() - timedelta(days=365)
            gone = await idempotency_repo.get(
                session, owner="", key="gone", scope="POST /x", since=since
            )
        assert gone is None
        assert await _get(db, "fresh", owner="other") is not None

    on_db(scenario)


def _runtime(db: Database) -> Runtime:
    # keyed() uses only these two; a whole Runtime needs settings, workers and a broadcaster.
    runtime: Any = SimpleNamespace(db=db, idempotency_locks=KeyLocks())
    return runtime


async def _call(rt: Runtime, key: str | None, digest: str, status: int, body: Any) -> Any:
    """One keyed request: the replayed answer, or ``body`` after remembering it."""
    async with idempotency.keyed(
        rt=rt, owner=None, key=key, scope="POST /x", digest=digest
    ) as attempt:
        if attempt.replay is not None:
            return attempt.replay
        attempt.remember(status, body)
        return (status, body)


def test_a_retry_gets_the_first_answer_and_another_body_is_refused(on_db: OnDb) -> None:
    async def scenario(db: Database) -> None:
        rt = _runtime(db)
        assert await _call(rt, "k", "d1", 201, {"n": 1}) == (201, {"n": 1})
        assert await _call(rt, "k", "d1", 201, {"n": 2}) == (201, {"n": 1})
        with pytest.raises(Invalid) as reused:
            await _call(rt, "k", "d2", 201, {"n": 3})
        assert reused.value.code == "idempotency_key_reused"
        assert await _call(rt, None, "d1", 201, {"n": 4}) == (201, {"n": 4})  # no key: no replay

    on_db(scenario)


def test_errors_are_not_stored_so_they_may_be_retried(on_db: OnDb) -> None:
    async def scenario(db: Database) -> None:
        rt = _runtime(db)
        assert await _call(rt, "k", "d", 422, {"error": 1}) == (422, {"error": 1})
        assert await _call(rt, "k", "d", 201, {"n": 1}) == (201, {"n": 1})
        assert await _call(rt, "k", "d", 201, {"n": 2}) == (201, {"n": 1})

    on_db(scenario)


@pytest.mark.parametrize("key", ["", "k" * (idempotency.MAX_KEY_LENGTH + 1)])
def test_an_empty_or_overlong_key_is_a_bad_request(on_db: OnDb, key: str) -> None:
    async def scenario(db: Database) -> None:
        with pytest.raises(BadRequest) as refused:
            await _call(_runtime(db), key, "d", 201, {})
        assert refused.value.code == "invalid_idempotency_key"

    on_db(scenario)


def test_concurrent_requests_with_one_key_run_once(on_db: OnDb) -> None:
    async def scenario(db: Database) -> None:
        rt = _runtime(db)
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
