"""repositories/workflows.py against real SQLite: names are per owner, no owner is an owner."""

from __future__ import annotations

from chatflow.db.engine import Database
from chatflow.db.models import SavedWorkflow
from chatflow.repositories import workflows as workflows_repo
from tests.repositories.conftest import OnDb

STEPS = [{"operation": "excel/sort", "arguments": {"by": [{"column": "a"}]}}]


async def _save(db: Database, owner: str | None, name: str) -> None:
    async with db.write() as session:
        await workflows_repo.insert(session, row=SavedWorkflow(name=name, steps=STEPS, owner=owner))


def test_each_owner_sees_only_its_own_workflows(on_db: OnDb) -> None:
    async def scenario(db: Database) -> None:
        await _save(db, "alice", "zeta")
        await _save(db, "alice", "alpha")
        await _save(db, "bob", "alpha")
        await _save(db, None, "alpha")
        async with db.read() as session:
            alice = await workflows_repo.list_all(session, owner="alice")
            nobody = await workflows_repo.list_all(session, owner=None)
            bobs = await workflows_repo.get(session, owner="bob", name="alpha")
            missing = await workflows_repo.get(session, owner="bob", name="zeta")
        assert [w.name for w in alice] == ["alpha", "zeta"]
        assert [(w.name, w.owner) for w in nobody] == [("alpha", None)]
        assert bobs is not None and bobs.owner == "bob" and bobs.steps == STEPS
        assert missing is None

    on_db(scenario)


def test_remove_touches_only_the_owner_s_workflow(on_db: OnDb) -> None:
    async def scenario(db: Database) -> None:
        await _save(db, "alice", "alpha")
        await _save(db, None, "alpha")
        async with db.write() as session:
            assert await workflows_repo.remove(session, owner="bob", name="alpha") is False
            assert await workflows_repo.remove(session, owner=None, name="alpha") is True
            assert await workflows_repo.remove(session, owner=None, name="alpha") is False
        async with db.read() as session:
            assert [w.owner for w in await workflows_repo.list_all(session, owner="alice")] == [
                "alice"
            ]

    on_db(scenario)
