"""Apply alembic migrations from code (CLI ``chatflow db upgrade`` and app start-up)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory


def _script_location() -> Path:
    # Installed wheels carry the migrations inside the package; a source checkout has them
    # at the top level of the repository.
    packaged = Path(__file__).resolve().parent.parent / "_alembic"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[3] / "alembic"


def alembic_config(database_url: str) -> Config:
    """An alembic Config pointing at our migrations and ``database_url``."""
    config = Config()
    config.set_main_option("script_location", str(_script_location()))
    # Passed as an attribute, not an ini option: configparser would mangle '%' in passwords.
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the schema to ``revision``; blocking, so call it off the event loop."""
    command.upgrade(alembic_config(database_url), revision)


def head_revisions() -> set[str]:
    """The head revisions of the migration scripts (what ``upgrade`` brings a database to)."""
    return set(ScriptDirectory.from_config(alembic_config("")).get_heads())
