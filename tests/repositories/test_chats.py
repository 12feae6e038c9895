"""repositories/chats.py against real SQLite: owner filters, newest-first pages, cascades."""

from __future__ import annotations

from chatflow.db.engine import Database
from chatflow.repositories import chats as chats_repo
from chatflow.repositories import files as files_repo
from tests.repositories.conftest import OnDb, add_chat, stored_file


def test_get_finds_a_chat_only_for_its_owner_when_one_is_given(on_db: OnDb) -> None:
    async def scenario(db: Database) -> None:
        await add_chat(db, "c1", owner="alice")
        async with db.read() as session:
            assert (await chats_repo.get(session, chat_id="c1")) is not None
            found = await chats_repo.get(session, chat_id="c1", owner="alice")
            assert found is not None and found.owner == "alice" and found.last_seq == 0
            assert await chats_repo.get(session, chat_id="c1", owner="bob") is None
            assert await chats_repo.get(session, chat_id="nope") is None

    on_db(scenario)


def test_pages_are_newest_first_and_continue_after_the_cursor(on_db: OnDb) -> None:
    async def scenario(db: Database) -> None:
        for n in range(5):
            await add_chat(db, f"c{n}", owner="alice" if n != 2 else "bob")
        async with db.read() as session:
            first = await chats_repo.list_page(session, limit=2, before=None)
            assert [c.id for c in first] == ["c4", "c3"]
            cursor = (first[-1].created_at, first[-1].id)
            rest = await chats_repo.list_page(session, limit=10, before=cursor)
            assert [c.id for c in rest] == ["c2", "c1", "c0"]
            mine = await chats_repo.list_page(session, limit=10, before=None, owner="alice")
            assert [c.id for c in mine] == ["c4", "c3", "c1", "c0"]

    on_db(scenario)


def test_remove_says_whether_it_removed_and_takes_the_chat_s_files(on_db: OnDb) -> None:
    async def scenario(db: Database) -> None:
        await add_chat(db, "c1")
        async with db.write() as session:
            await files_repo.insert(session, row=stored_file("c1", "a.csv", 1, "s1"))
        async with db.write() as session:
            assert await chats_repo.remove(session, chat_id="c1") is True
            assert await chats_repo.remove(session, chat_id="c1") is False
        async with db.read() as session:
            assert await files_repo.all_storage_names(session) == set()

    on_db(scenario)
