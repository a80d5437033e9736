"""Writing API tokens' last use after the answer has left, so that a read never waits for SQLite's writer.

``accounts.user_for_token`` notes a use at most once every few minutes per token; this module writes it in a
transaction of its own once the response has been sent (``Response.call_on_close``), with a short lock wait:
when the database is busy the write is skipped and a later request of the same token writes it."""

from __future__ import annotations

import logging
from datetime import datetime

import sqlalchemy as sa
from flask import Response

from ..db import db
from ..domain import accounts

log = logging.getLogger(__name__)

LOCK_WAIT_MS = 250  # how long the after-answer write waits for the database's lock before giving up


def record_after(response: Response) -> None:
    """Write the token uses noted during this request once ``response`` has been sent."""
    uses = accounts.pending_token_uses(db.session)
    if uses:
        engine = db.get_engine()
        response.call_on_close(lambda: record(engine, uses))


def record(engine: sa.Engine, uses: dict[int, datetime]) -> None:
    """Write ``uses`` now; a busy database only delays them to a later request."""
    try:
        # SQLite: the writer's BEGIN IMMEDIATE gives up after lock_wait_ms (logistique.db)
        writer = engine.execution_options(write=True, lock_wait_ms=LOCK_WAIT_MS)
        with writer.connect() as conn, conn.begin():
            if engine.dialect.name == "postgresql":
                conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{LOCK_WAIT_MS}ms'")
            accounts.record_token_uses(conn, uses)
    except sa.exc.OperationalError as exc:
        log.info("last use of API tokens not written (database busy): %s", exc.orig)
