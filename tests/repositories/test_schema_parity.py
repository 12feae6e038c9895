"""The same migrations give SQLite and PostgreSQL the same schema, from empty to head."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Connection, Integer, MetaData, String, Table, create_engine, inspect
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.types import TypeEngine

from chatflow.db.migrate import upgrade
from tests.postgres import PostgresDatabases

# What each backend reports for the types the migrations declare, reduced to one name.
_TYPE_NAMES = {
    "VARCHAR": "string",
    "TEXT": "text",
    "INTEGER": "integer",
    "BIGINT": "bigint",
    "JSON": "json",
    "DATETIME": "datetime",
    "TIMESTAMP": "datetime",
}


def _type(column_type: TypeEngine[Any]) -> str:
    name = type(column_type).__name__.upper()
    if name == "TIMESTAMP" and not getattr(column_type, "timezone", True):
        return "naive datetime"  # PostgreSQL would drop the offset: a real difference
    base = _TYPE_NAMES.get(name, name.lower())
    length = getattr(column_type, "length", None)
    return f"{base}({length})" if length else base


def _schema(conn: Connection) -> dict[str, Any]:
    inspector = inspect(conn)
    schema: dict[str, Any] = {}
    for table in sorted(inspector.get_table_names()):
        if table == "alembic_version" or table.startswith("procrastinate_"):
            continue  # procrastinate's job queue exists on PostgreSQL only (ADR 0003)
        schema[table] = {
            "columns": [
                (c["name"], _type(c["type"]), c["nullable"]) for c in inspector.get_columns(table)
            ],
            "primary key": inspector.get_pk_constraint(table)["constrained_columns"],
            # Compared by columns: SQLite does not keep the names PostgreSQL makes up.
            "unique": sorted(
                tuple(u["column_names"]) for u in inspector.get_unique_constraints(table)
            ),
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                for i in inspector.get_indexes(table)
                # PostgreSQL also lists the index behind each unique constraint.
                if not i.get("duplicates_constraint")
            ),
            "foreign keys": sorted(
                (
                    tuple(f["constrained_columns"]),
                    f["referred_table"],
                    tuple(f["referred_columns"]),
                    (f.get("options") or {}).get("ondelete"),
                )
                for f in inspector.get_foreign_keys(table)
            ),
        }
    return schema


def _schema_of(url: str) -> dict[str, Any]:
    async def read() -> dict[str, Any]:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(_schema)
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_sqlite_and_postgresql_migrate_to_the_same_schema(
    postgres: PostgresDatabases, tmp_path: Path
) -> None:
    sqlite_url = f"sqlite+aiosqlite:///{tmp_path / 'chatflow.db'}"
    postgres_url = postgres.fresh()
    upgrade(sqlite_url)
    upgrade(postgres_url)

    on_sqlite, on_postgres = _schema_of(sqlite_url), _schema_of(postgres_url)

    assert list(on_sqlite) == [
        "chats",
        "events",
        "files",
        "idempotency_keys",
        "messages",
        "run_steps",
        "runs",
        "saved_workflows",
    ]
    for table in on_sqlite:
        assert on_postgres[table] == on_sqlite[table], table
    assert on_postgres == on_sqlite
    # The ordering guarantees rest on these: one seq per chat, one version per file name.
    assert ("chat_id", "seq") in on_postgres["events"]["unique"]
    assert ("chat_id", "name", "version") in on_postgres["files"]["unique"]


def test_a_schema_difference_is_seen(tmp_path: Path) -> None:
    """The comparison is not blind: a column of another type or nullability shows up."""

    def make(path: Path, nullable: bool, kind: Any) -> dict[str, Any]:
        engine = create_engine(f"sqlite:///{path}")
        metadata = MetaData()
        Table(
            "t",
            metadata,
            Column("id", Integer, primary_key=True),
            Column("x", kind, nullable=nullable),
        )
        metadata.create_all(engine)
        with engine.connect() as conn:
            found = _schema(conn)
        engine.dispose()
        return found

    base = make(tmp_path / "a.db", True, String(10))
    assert make(tmp_path / "b.db", False, String(10)) != base
    assert make(tmp_path / "c.db", True, String(11)) != base
    assert make(tmp_path / "d.db", True, Integer) != base
