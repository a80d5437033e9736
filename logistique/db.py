"""Engine, session and declarative base shared by the whole application."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from flask import Flask, g
from sqlalchemy import MetaData, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base with a naming convention so constraint names match on SQLite and PostgreSQL."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    """Current time as a naive UTC datetime (how every timestamp is stored)."""
    return datetime.now(UTC).replace(tzinfo=None)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Python's sqlite3 opens transactions lazily; let SQLAlchemy's events issue BEGIN instead so that
    # writers take the lock at the start (BEGIN IMMEDIATE) and racing writers queue instead of failing.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _sqlite_begin(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str) -> Engine:
    """Create the engine for ``url`` with the per-backend settings the app relies on."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 10, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


class Database:
    """Flask extension holding the engine; one session per application context."""

    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.sessionmaker: sessionmaker[Session] | None = None

    def init_app(self, app: Flask) -> None:
        engine = make_engine(app.config["DATABASE_URL"])
        app.extensions["logistique.db"] = (engine, sessionmaker(engine, expire_on_commit=False))
        app.teardown_appcontext(self._teardown)

    @staticmethod
    def _factory() -> tuple[Engine, sessionmaker[Session]]:
        from flask import current_app

        return current_app.extensions["logistique.db"]

    def get_engine(self) -> Engine:
        return self._factory()[0]

    @property
    def session(self) -> Session:
        """The session of the current application context."""
        if "db_session" not in g:
            g.db_session = self._factory()[1]()
        return g.db_session

    @staticmethod
    def _teardown(_exc: BaseException | None) -> None:
        session = g.pop("db_session", None)
        if session is not None:
            session.close()

    @contextmanager
    def new_session(self) -> Iterator[Session]:
        """A session independent of the request's (for background work and tests of races)."""
        session = self._factory()[1]()
        try:
            yield session
        finally:
            session.close()


db = Database()
