"""Engine, session and declarative base shared by the whole application."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from flask import Flask, g, has_request_context, request
from sqlalchemy import MetaData, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

if TYPE_CHECKING:
    from .statements import Prepared

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


# How long a writer waits for a lock (SQLite's single writer, a PostgreSQL row) before giving up: the request
# then answers 503 with Retry-After (logistique/busy.py), well before the server's 30 s timeout.
LOCK_TIMEOUT_MS = 10000


def rows_changed(result: Any) -> int:
    """How many rows an UPDATE or DELETE changed: a guarded update's verdict (``Result`` of ``execute``)."""
    return int(result.rowcount)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Python's sqlite3 opens transactions lazily; let SQLAlchemy's "begin" event issue BEGIN instead.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    # Switching a new database file to WAL takes its exclusive lock; two connections switching it at once
    # (two hosts running init-db, workers starting on a fresh file) can get "database is locked" at once,
    # without SQLite's busy handler (it would be a deadlock): tried again like BEGIN IMMEDIATE.
    _execute_when_free(dbapi_connection, "PRAGMA journal_mode=WAL", LOCK_TIMEOUT_MS)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={LOCK_TIMEOUT_MS}")
    cursor.execute("PRAGMA mmap_size=268435456")  # reads through the OS page cache: aggregations ~2x faster
    cursor.close()


# set on a pooled connection (its record's info) while its busy_timeout is 0, as a writer left it
_BUSY_ZERO = "logistique.busy_timeout_zero"


def _sqlite_begin(conn: Any) -> None:
    # Writers take SQLite's write lock at the start of their transaction (BEGIN IMMEDIATE), so that racing
    # writers queue behind it and then see its result, instead of failing on a stale snapshot. Readers begin
    # deferred and never block anybody (WAL).
    pooled = conn.connection
    raw = pooled.driver_connection
    options = conn.get_execution_options()
    if options.get("write"):
        # Each try answers at once; the pauses are ours (_execute_when_free). The setting stays on the
        # connection for the next writer (it holds the lock for the rest of its transaction: nothing of it
        # waits) and a reader puts SQLite's own wait back (two statements less per write).
        if not pooled.info.get(_BUSY_ZERO):
            raw.execute("PRAGMA busy_timeout=0")
            pooled.info[_BUSY_ZERO] = True
        _execute_when_free(raw, "BEGIN IMMEDIATE", options.get("lock_wait_ms", LOCK_TIMEOUT_MS))
    else:
        _wait_as_sqlite(pooled)
        raw.execute("BEGIN")


def _wait_as_sqlite(pooled: Any) -> None:
    """Put SQLite's own lock wait back on a pooled connection that a writer left at busy_timeout 0."""
    if pooled.info.pop(_BUSY_ZERO, False):
        pooled.driver_connection.execute(f"PRAGMA busy_timeout={LOCK_TIMEOUT_MS}")


# How a writer waits for SQLite's write lock: it tries again after these pauses (seconds), then after the
# last one, until LOCK_TIMEOUT_MS. SQLite's own busy handler sleeps 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50,
# then 100 ms between tries: a writer that came second to a transaction of 1 ms waited 3 ms or more, and one
# that missed a few turns waited tens of milliseconds while the lock was free most of the time (the p99 of a
# write). Trying again every few tenths of a millisecond costs a few microseconds a try.
_LOCK_PAUSES = (0.0001, 0.0002, 0.0003, 0.0005)


def _execute_when_free(raw: Any, sql: str, wait_ms: int) -> None:
    """``sql`` on ``raw``, tried again after _LOCK_PAUSES for ``wait_ms`` while the database is locked."""
    deadline = time.monotonic() + wait_ms / 1000
    tries = 0
    while True:
        try:
            raw.execute(sql)
            return
        except sqlite3.OperationalError as exc:
            if not str(exc).startswith("database is locked") or time.monotonic() >= deadline:
                raise OperationalError(sql, None, exc) from exc
        time.sleep(_LOCK_PAUSES[min(tries, len(_LOCK_PAUSES) - 1)])
        tries += 1


def _postgresql_settings(dbapi_connection: Any, _record: Any) -> None:
    # Once per connection rather than per write transaction (a SET LOCAL was a round trip per write): every
    # transaction of the app gives up waiting for a lock after LOCK_TIMEOUT_MS, a reader behind a migration's
    # lock as well as a writer behind another writer's row.
    cursor = dbapi_connection.cursor()
    cursor.execute(f"SET lock_timeout = {int(LOCK_TIMEOUT_MS)}")
    cursor.close()
    dbapi_connection.commit()


def make_engine(url: str) -> Engine:
    """Create the engine for ``url`` with the per-backend settings the app relies on."""
    # hide_parameters: a database error never writes a statement's values (a pupil's name) into a log
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"timeout": 10, "check_same_thread": False}, hide_parameters=True
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5, hide_parameters=True)
    event.listen(engine, "connect", _postgresql_settings)
    return engine


_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class _Factories:
    engine: Engine
    reader: sessionmaker[Session]
    writer: sessionmaker[Session]
    # SQLite: each thread's own connection for what a writing request reads before its transaction
    side: threading.local = field(default_factory=threading.local)


class Database:
    """Flask extension holding the engine; one session per application context."""

    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.sessionmaker: sessionmaker[Session] | None = None

    def init_app(self, app: Flask) -> None:
        engine = make_engine(app.config["DATABASE_URL"])
        factories = _Factories(
            engine,
            sessionmaker(engine, expire_on_commit=False),
            sessionmaker(engine.execution_options(write=True), expire_on_commit=False),
        )
        from .domain import tallies  # the board's counters follow every session this app makes

        tallies.install(factories.reader)
        tallies.install(factories.writer)
        app.extensions["logistique.db"] = factories
        app.teardown_appcontext(self._teardown)

    @staticmethod
    def _factory() -> _Factories:
        from flask import current_app

        return current_app.extensions["logistique.db"]

    def get_engine(self) -> Engine:
        return self._factory().engine

    @property
    def session(self) -> Session:
        """The session of the current application context (a writer's for POST, PUT, PATCH, DELETE)."""
        context_globals = g._get_current_object()  # once: a request asks for its session a dozen times
        session = getattr(context_globals, "db_session", None)
        if session is None:
            factories = self._factory()
            session = context_globals.db_session = (
                factories.writer
                if has_request_context() and request.method not in _SAFE_METHODS
                else factories.reader
            )()
        return session

    @staticmethod
    def _teardown(_exc: BaseException | None) -> None:
        session = g.pop("db_session", None)
        if session is not None:
            session.close()

    def read_first(self, statement: Prepared, values: Mapping[str, Any]) -> tuple | None:
        """The first row of ``statement``, for what a writing request reads before it writes (who is asking):
        on SQLite, outside the request's transaction, so that the database's single write lock is held for
        the writes and what they need, not while the request authenticates. Elsewhere, and once the request's
        transaction has begun, in the request's session."""
        session = self.session
        factories = self._factory()
        if (
            factories.engine.dialect.name != "sqlite"
            or not has_request_context()
            or request.method in _SAFE_METHODS
            or session.in_transaction()
        ):
            return statement.first(session, values)
        # autocommit (isolation_level None): a read of its own, on a connection this thread keeps out of the
        # pool for these reads (taking one from the pool and giving it back cost more than the read)
        raw = getattr(factories.side, "connection", None)
        if raw is None:
            pooled = factories.engine.raw_connection()
            _wait_as_sqlite(pooled)  # it may have served a writer
            raw = factories.side.connection = pooled.driver_connection
            pooled.detach()
        return statement.first_on(raw, factories.engine.dialect, values)

    @contextmanager
    def new_session(self, *, write: bool = False) -> Iterator[Session]:
        """A session independent of the request's (command line, background work, tests of races)."""
        factories = self._factory()
        session = (factories.writer if write else factories.reader)()
        try:
            yield session
        finally:
            session.close()


db = Database()
