"""What a chat numbers (event seqs, file versions) stays unique and gap-free when writers are
truly concurrent: two Database objects, as two processes would be, on SQLite and PostgreSQL.

In one process the broadcaster already stores a chat's events one batch at a time; these tests
go around it, so only the database's own locking keeps the numbers straight.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

from sqlalchemy import Connection

from chatflow.db.engine import Database
from chatflow.repositories import files as files_repo
from chatflow.services.events import event_body, list_since, make_store
from tests.repositories.conftest import add_chat, stored_file

WRITERS = 40


def _record_file(n: int, conn: Connection) -> dict[str, Any]:
    """An upload's ``with_row``: the next version of one shared name, in the event's
    transaction."""
    row = files_repo.insert_next_version(
        conn, row=stored_file("chat", "same.csv", 0, f"upload-{n}")
    )
    return {"version": row.version}


async def _two_processes(url: str) -> tuple[Database, Database]:
    first, second = Database(url, pool_size=5), Database(url, pool_size=5)
    await add_chat(first, "chat")
    return first, second


def test_concurrent_event_stores_give_unique_gap_free_seqs(database_url: str) -> None:
    async def scenario() -> tuple[list[list[int]], list[dict[str, Any]]]:
        first, second = await _two_processes(database_url)
        stores = [make_store(first), make_store(second)]
        try:

            def bodies(n: int) -> list[dict[str, Any]]:
                # 1 to 3 events a batch; every other batch also writes a file version.
                made = [
                    event_body(chat_id="chat", type="note", message=f"{n}.{i}")
                    for i in range(n % 3 + 1)
                ]
                if n % 2 == 0:
                    made[0] = event_body(
                        chat_id="chat",
                        type="file_uploaded",
                        message=f"{n}.0",
                        with_row=partial(_record_file, n),
                    )
                return made

            stored = await asyncio.gather(
                *(stores[n % 2]("chat", bodies(n)) for n in range(WRITERS))
            )
            return [[e["seq"] for e in batch] for batch in stored], await list_since(
                first, chat_id="chat", since=0
            )
        finally:
            await first.dispose()
            await second.dispose()

    batches, replayed = asyncio.run(scenario())
    total = sum(n % 3 + 1 for n in range(WRITERS))
    assert sorted(seq for batch in batches for seq in batch) == list(range(1, total + 1))
    # A batch's events are consecutive: its transaction held the chat from first to last.
    assert all(batch == list(range(batch[0], batch[0] + len(batch))) for batch in batches)
    assert [e["seq"] for e in replayed] == list(range(1, total + 1))
    versions = sorted(e["version"] for e in replayed if e["type"] == "file_uploaded")
    assert versions == list(range(1, WRITERS // 2 + 1))


def test_concurrent_output_versions_and_uploads_never_share_a_version(database_url: str) -> None:
    async def scenario() -> list[int]:
        first, second = await _two_processes(database_url)
        store = make_store(second)

        async def output(n: int) -> None:
            async with first.write() as session:
                rows = [stored_file("chat", "same.csv", 0, f"output-{n}", source="output")]
                assert await files_repo.insert_versions(session, chat_id="chat", rows=rows)

        async def uploaded(n: int) -> None:
            body = event_body(
                chat_id="chat", type="file_uploaded", message="", with_row=partial(_record_file, n)
            )
            await store("chat", [body])

        try:
            await asyncio.gather(*(output(n) if n % 2 else uploaded(n) for n in range(WRITERS)))
            async with first.read() as session:
                rows = await files_repo.list_for_chat(session, chat_id="chat")
            return [row.version for row in rows]
        finally:
            await first.dispose()
            await second.dispose()

    assert asyncio.run(scenario()) == list(range(1, WRITERS + 1))


def test_output_versions_of_a_deleted_chat_are_not_inserted(database_url: str) -> None:
    async def scenario() -> list[Any] | None:
        db = Database(database_url)
        try:
            async with db.write() as session:
                rows = [stored_file("gone", "a.csv", 0, "output-gone", source="output")]
                return await files_repo.insert_versions(session, chat_id="gone", rows=rows)
        finally:
            await db.dispose()

    assert asyncio.run(scenario()) is None
