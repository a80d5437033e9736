"""A database too busy to take one more writer in time is a retryable answer, never a 500.

SQLite has a single writer: when it stays saturated past the busy timeout, the request fails with "database is
locked". PostgreSQL can likewise give up on a lock, a deadlock or a serialization conflict, and the
connection pool can run dry. Each of these rolls the whole transaction back, so nothing was changed: the
client gets 503 with ``Retry-After`` and a French message (JSON for the API and for scripts asking for JSON,
a page otherwise)."""

from __future__ import annotations

import logging
import sqlite3

import sqlalchemy as sa
from flask import Flask, Response, current_app, jsonify, request

from .db import db

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 2
BUSY_CODE = "busy"
BUSY_MESSAGE = (
    "Le service est très sollicité : votre demande n'a pas pu être enregistrée et rien n'a été modifié. "
    "Réessayez dans quelques secondes."
)

# SQLSTATEs of PostgreSQL that mean "try again": serialization failure, deadlock, lock not available,
# too many connections, cannot connect now
_RETRYABLE_SQLSTATES = frozenset({"40001", "40P01", "55P03", "53300", "57P03"})
_SQLITE_BUSY_MESSAGES = ("database is locked", "database table is locked", "database is busy")


def is_busy(exc: BaseException) -> bool:
    """True when ``exc`` says the database could not serve this transaction now, but could later."""
    if isinstance(exc, sa.exc.TimeoutError):  # the connection pool stayed empty
        return True
    orig = getattr(exc, "orig", None)
    if isinstance(orig, sqlite3.OperationalError):
        return str(orig).lower().startswith(_SQLITE_BUSY_MESSAGES)
    return getattr(orig, "sqlstate", None) in _RETRYABLE_SQLSTATES


def busy_response() -> Response:
    """The 503 answer: JSON ``{"error": {"code", "message"}}`` or the French page, with Retry-After."""
    wants_json = request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"
    if wants_json:
        response = jsonify({"error": {"code": BUSY_CODE, "message": BUSY_MESSAGE}})
    else:
        # rendered without the context processors: they would load the logged-in user, a query that could
        # wait for the saturated writer again
        page = current_app.jinja_env.get_template("errors/503.html").render(message=BUSY_MESSAGE)
        response = Response(page, mimetype="text/html")
    response.status_code = 503
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def register(app: Flask) -> None:
    """Answer 503 instead of 500 when the database is busy; other database errors stay errors."""

    def database_error(exc: Exception):
        if not is_busy(exc):
            raise exc
        db.session.rollback()
        # the driver's message only: the statement's parameters could hold personal data
        reason = str(getattr(exc, "orig", None) or exc.__class__.__name__).splitlines()[0]
        log.warning("database busy, answered 503: %s %s: %s", request.method, request.path, reason)
        return busy_response()

    app.register_error_handler(sa.exc.OperationalError, database_error)
    app.register_error_handler(sa.exc.TimeoutError, database_error)
