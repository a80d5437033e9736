"""Run the Alembic migrations of ``migrations/`` from Python (init-db, tests, scripts)."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection, Engine

from .db import Base

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
# PostgreSQL advisory lock key taken by every migration run: two hosts starting at once migrate one after
# the other (the second finds the schema at head and does nothing). Any 64-bit number unique to this app.
MIGRATION_LOCK_KEY = zlib.crc32(b"logistique:migrations")


def alembic_config(url: str) -> Config:
    """An Alembic configuration pointing at the project's migrations and at ``url``."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.set_main_option("file_template", "%%(year)d_%%(month).2d_%%(day).2d_%%(rev)s_%%(slug)s")
    return cfg


@contextmanager
def _migrating(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction for the migrations. On SQLite, foreign keys are off meanwhile (the batch
    mode rebuilds a table by copying it, which a referenced table does not survive with them on) and checked
    all at once before the commit, as SQLite's documentation prescribes for schema changes."""
    # write=True: on SQLite the transaction begins IMMEDIATE, so that a second process migrating at the same
    # time waits for the first (busy_timeout) and then finds the schema at head, instead of failing
    with engine.execution_options(write=True).connect() as connection:
        raw = connection.connection.driver_connection if connection.dialect.name == "sqlite" else None
        if raw is not None:
            raw.execute("PRAGMA foreign_keys=OFF")  # outside any transaction, or SQLite ignores it
        try:
            with connection.begin():
                if connection.dialect.name == "postgresql":
                    # held until this transaction ends (SQLite: BEGIN IMMEDIATE above does the same)
                    connection.execute(
                        sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
                    )
                yield connection
                if raw is not None:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise RuntimeError(f"clés étrangères rompues après migration : {broken[:5]}")
        finally:
            if raw is not None:
                raw.execute("PRAGMA foreign_keys=ON")


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Bring the schema of ``engine``'s database to ``revision``; returns the revision it was at, read under
    the migration lock (a host that waited for another one finds the schema already migrated)."""
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with _migrating(engine) as connection:
        before = current_revision_on(connection)
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)
    return before


def downgrade(engine: Engine, revision: str) -> None:
    """Take the schema of ``engine``'s database back to ``revision`` (``base`` empties it)."""
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with _migrating(engine) as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, revision)


@cache
def head_revision() -> str:
    """The latest revision of the migrations shipped with this code (where ``init-db`` takes a database)."""
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None for an empty database."""
    with engine.connect() as connection:
        return current_revision_on(connection)


def current_revision_on(connection: Connection) -> str | None:
    """The revision the database of ``connection`` is at, or None for an empty database."""
    return MigrationContext.configure(connection).get_current_revision()


def drift(engine: Engine, metadata: MetaData | None = None) -> list:
    """Differences between the models (or ``metadata``) and the migrated schema (empty when they agree)."""
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "render_as_batch": connection.dialect.name == "sqlite"}
        )
        return compare_metadata(context, metadata if metadata is not None else Base.metadata)


def revision(engine: Engine, message: str) -> None:
    """Autogenerate a new revision from the difference between models and the database."""
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.revision(cfg, message=message, autogenerate=True)
