"""repositories/files.py against real SQLite: versions per name, latest, removal."""

from __future__ import annotations

from chatflow.db.engine import Database
from chatflow.repositories import files as files_repo
from tests.repositories.conftest import OnDb, add_chat, stored_file


async def _add(db: Database, chat_id: str, name: str, storage: str, **extra: object) -> int:
    async with db.write() as session:
        version = await files_repo.next_version(session, chat_id=chat_id, name=name)
        row = stored_file(chat_id, name, version, storage, **extra)
        await files_repo.insert(session, row=row)
        return version


def test_versions_count_per_chat_and_name(on_db: OnDb) -> None:
    async def scenario(db: Database) -> None:
        await add_chat(db, "c1")
        await add_chat(db, "c2")
        assert await _add(db, "c1", "a.csv", "s1") == 1
        assert await _add(db, "c1", "a.csv", "s2") == 2
        assert await _add(db, "c1", "b.csv", "s3") == 1
        assert await _add(db, "c2", "a.csv", "s4") == 1
        async with db.read() as session:
            latest = await files_repo.get(session, chat_id="c1", name="a.csv")
            first = await files_repo.get(session, chat_id="c1", name="a.csv", version=1)
            missing = await files_repo.get(session, chat_id="c1", name="a.csv", version=3)
            listed = await files_repo.list_for_chat(session, chat_id="c1")
            newest = await files_repo.latest_versions(session, chat_id="c1")
        assert latest is not None and latest.storage_name == "s2"
        assert first is not None and first.storage_name == "s1"
        assert missing is None
        assert [(f.name, f.version) for f in listed] == [("a.csv", 1), ("a.csv", 2), ("b.csv", 1)]
        assert sorted(f.storage_name for f in newest) == ["s2", "s3"]

    on_db(scenario)


def test_latest_upload_skips_outputs_and_runs_find_their_files(on_db: OnDb) -> None:
    async def scenario(db: Database) -> None:
        await add_chat(db, "c1")
        async with db.read() as session:
            assert await files_repo.latest_upload(session, chat_id="c1") is None
        await _add(db, "c1", "in.csv", "s1")
        await _add(db, "c1", "out.csv", "s2", source="output", run_id="r1")
        await _add(db, "c1", "out2.csv", "s3", source="output", run_id="r2")
        async with db.read() as session:
            upload = await files_repo.latest_upload(session, chat_id="c1")
            outputs = await files_repo.list_for_runs(session, run_ids=["r1", "r2", "r3"])
            none = await files_repo.list_for_runs(session, run_ids=["r3"])
        assert upload is not None and upload.storage_name == "s1"
        assert [(f.run_id, f.storage_name) for f in outputs] == [("r1", "s2"), ("r2", "s3")]
        assert none == []

    on_db(scenario)


def test_remove_returns_the_storage_names_of_one_version_or_all(on_db: OnDb) -> None:
    async def scenario(db: Database) -> None:
        await add_chat(db, "c1")
        for storage in ("s1", "s2", "s3"):
            await _add(db, "c1", "a.csv", storage)
        await _add(db, "c1", "b.csv", "s4")
        async with db.write() as session:
            one = await files_repo.remove(session, chat_id="c1", name="a.csv", version=2)
            gone = await files_repo.remove(session, chat_id="c1", name="a.csv", version=2)
        async with db.write() as session:
            rest = await files_repo.remove(session, chat_id="c1", name="a.csv")
        async with db.read() as session:
            left = await files_repo.all_storage_names(session)
        assert one == ["s2"]
        assert gone == []
        assert sorted(rest) == ["s1", "s3"]
        assert left == {"s4"}

    on_db(scenario)
