"""Storing events on SQLite and on PostgreSQL: what one transaction costs, and how many events
a second concurrent writers store (to different chats, and to one chat, whose row lock
serialises them).

    python -m benchmarks.event_store [--pg-url postgresql+asyncpg://postgres@127.0.0.1:5432/postgres]

Each figure is the median of ``--repeats`` rounds on a fresh database; PostgreSQL is skipped when
unreachable. Not part of ``make bench``: docs/scaling.md quotes its figures.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import make_url

from chatflow.db.engine import Database
from chatflow.db.migrate import upgrade
from chatflow.repositories import chats as chats_repo
from chatflow.services.events import event_body, make_store

SEQUENTIAL = 300  # one-event transactions, one after another
WRITERS = 8  # concurrent writers, each storing PER_WRITER one-event transactions
PER_WRITER = 100


async def _admin(pg_url: str, statement: str) -> None:
    import asyncpg

    url = make_url(pg_url)
    conn = await asyncpg.connect(
        host=url.host, port=url.port or 5432, user=url.username, database=url.database
    )
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def _chats(db: Database, count: int) -> list[str]:
    ids = [str(uuid.uuid4()) for _ in range(count)]
    async with db.write() as session:
        for chat_id in ids:
            await chats_repo.insert(session, chat_id=chat_id, title=None, owner=None)
    return ids


def _body(chat_id: str, n: int) -> dict[str, Any]:
    return event_body(chat_id=chat_id, type="progress", message=f"step {n}", progress=n)


async def _round(url: str) -> dict[str, float]:
    """One round on a migrated, empty database at ``url``."""
    first, second = Database(url, pool_size=WRITERS), Database(url, pool_size=WRITERS)
    stores = [make_store(first), make_store(second)]
    try:
        (solo,) = await _chats(first, 1)
        latencies = []
        for n in range(SEQUENTIAL):
            started = time.perf_counter()
            await stores[0](solo, [_body(solo, n)])
            latencies.append(time.perf_counter() - started)

        async def writers(chat_for: Callable[[int], str]) -> float:
            async def writer(w: int) -> None:
                for n in range(PER_WRITER):
                    await stores[w % 2](chat_for(w), [_body(chat_for(w), n)])

            started = time.perf_counter()
            await asyncio.gather(*(writer(w) for w in range(WRITERS)))
            return WRITERS * PER_WRITER / (time.perf_counter() - started)

        many = await _chats(first, WRITERS)
        (shared,) = await _chats(first, 1)
        return {
            "one transaction, ms (median)": statistics.median(latencies) * 1000,
            f"{WRITERS} writers, {WRITERS} chats, events/s": await writers(lambda w: many[w]),
            f"{WRITERS} writers, one chat, events/s": await writers(lambda w: shared),
        }
    finally:
        await first.dispose()
        await second.dispose()


async def _measure(fresh: Callable[[], Awaitable[str]], repeats: int) -> dict[str, float]:
    rounds = []
    for _ in range(repeats):
        url = await fresh()
        await asyncio.to_thread(upgrade, url)
        rounds.append(await _round(url))
    return {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    async def run() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            counter = iter(range(1_000_000))

            async def fresh_sqlite() -> str:
                return f"sqlite+aiosqlite:///{Path(tmp) / f'{next(counter)}.db'}"

            report("sqlite", await _measure(fresh_sqlite, args.repeats))
        made: list[str] = []

        async def fresh_pg() -> str:
            name = f"chatflow_bench_{uuid.uuid4().hex[:12]}"
            await _admin(args.pg_url, f'CREATE DATABASE "{name}"')
            made.append(name)
            return str(make_url(args.pg_url).set(database=name))

        try:
            report("postgresql", await _measure(fresh_pg, args.repeats))
        except OSError as error:
            print(f"postgresql: skipped, unreachable ({error})")  # noqa: T201
        finally:
            for name in made:
                await _admin(args.pg_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    asyncio.run(run())
    return 0


def report(kind: str, figures: dict[str, float]) -> None:
    for key, value in figures.items():
        print(f"{kind:<11} {key:<34} {value:10.1f}")  # noqa: T201


if __name__ == "__main__":
    raise SystemExit(main())
