"""Files table: named, versioned files of a chat."""

from __future__ import annotations

from sqlalchemy import Connection, delete, func, select
from sqlalchemy import insert as insert_into
from sqlalchemy.ext.asyncio import AsyncSession

from chatflow.db.models import StoredFile
from chatflow.repositories import chats as chats_repo


async def next_version(session: AsyncSession, *, chat_id: str, name: str) -> int:
    query = select(func.max(StoredFile.version)).where(
        StoredFile.chat_id == chat_id, StoredFile.name == name
    )
    return int((await session.execute(query)).scalar() or 0) + 1


def insert_next_version(conn: Connection, *, row: StoredFile) -> StoredFile:
    """Insert ``row`` as the next version of its name, in the caller's transaction; sets its
    ``version``, ``id`` and ``created_at``.

    The caller's transaction must hold the chat's row lock (an event transaction does: its
    ``events.take_seqs`` runs first), or two writers on PostgreSQL could take one version."""
    latest = select(func.max(StoredFile.version)).where(
        StoredFile.chat_id == row.chat_id, StoredFile.name == row.name
    )
    row.version = int(conn.execute(latest).scalar() or 0) + 1
    values = {c.key: getattr(row, c.key) for c in StoredFile.__table__.columns}
    values = {key: value for key, value in values.items() if value is not None}
    inserted = conn.execute(
        insert_into(StoredFile).values(**values).returning(StoredFile.id, StoredFile.created_at)
    ).one()
    row.id, row.created_at = inserted.id, inserted.created_at
    return row


async def insert_versions(
    session: AsyncSession, *, chat_id: str, rows: list[StoredFile]
) -> list[StoredFile] | None:
    """Insert ``rows`` (files of ``chat_id``), each as the next version of its name; None,
    inserting nothing, if the chat is gone.

    The chat's row stays locked until the transaction ends, so no concurrent writer (an upload,
    whose event transaction takes the same lock first) reads the same max version."""
    if not await chats_repo.lock(session, chat_id=chat_id):
        return None
    for row in rows:
        row.version = await next_version(session, chat_id=chat_id, name=row.name)
        session.add(row)
        # One at a time: the next row of the same name must see this one.
        await session.flush()
    return rows


async def insert(session: AsyncSession, *, row: StoredFile) -> StoredFile:
    session.add(row)
    await session.flush()
    return row


async def get(
    session: AsyncSession, *, chat_id: str, name: str, version: int | None = None
) -> StoredFile | None:
    """The given version of ``name``, or its latest."""
    query = select(StoredFile).where(StoredFile.chat_id == chat_id, StoredFile.name == name)
    if version is not None:
        query = query.where(StoredFile.version == version)
    else:
        query = query.order_by(StoredFile.version.desc()).limit(1)
    return (await session.execute(query)).scalar_one_or_none()


async def latest_upload(session: AsyncSession, *, chat_id: str) -> StoredFile | None:
    query = (
        select(StoredFile)
        .where(StoredFile.chat_id == chat_id, StoredFile.source == "upload")
        .order_by(StoredFile.id.desc())
        .limit(1)
    )
    return (await session.execute(query)).scalar_one_or_none()


async def list_for_chat(session: AsyncSession, *, chat_id: str) -> list[StoredFile]:
    """By name (code point order, as SQLite compares; a PostgreSQL database's collation may
    not), then version."""
    query = select(StoredFile).where(StoredFile.chat_id == chat_id)
    rows = (await session.execute(query)).scalars()
    return sorted(rows, key=lambda row: (row.name, row.version))


async def list_for_runs(session: AsyncSession, *, run_ids: list[str]) -> list[StoredFile]:
    query = select(StoredFile).where(StoredFile.run_id.in_(run_ids)).order_by(StoredFile.id)
    return list((await session.execute(query)).scalars())


async def latest_versions(session: AsyncSession, *, chat_id: str) -> list[StoredFile]:
    """The newest version of every file name in the chat."""
    newest = (
        select(StoredFile.name, func.max(StoredFile.version).label("version"))
        .where(StoredFile.chat_id == chat_id)
        .group_by(StoredFile.name)
        .subquery()
    )
    query = (
        select(StoredFile)
        .join(
            newest,
            (StoredFile.name == newest.c.name) & (StoredFile.version == newest.c.version),
        )
        .where(StoredFile.chat_id == chat_id)
    )
    return list((await session.execute(query)).scalars())


async def remove(
    session: AsyncSession, *, chat_id: str, name: str, version: int | None = None
) -> list[str]:
    """Delete rows; returns their storage names so the caller can unlink them after commit."""
    condition = [StoredFile.chat_id == chat_id, StoredFile.name == name]
    if version is not None:
        condition.append(StoredFile.version == version)
    result = await session.execute(
        delete(StoredFile).where(*condition).returning(StoredFile.storage_name)
    )
    return list(result.scalars())


async def all_storage_names(session: AsyncSession) -> set[str]:
    return set((await session.execute(select(StoredFile.storage_name))).scalars())
