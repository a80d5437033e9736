"""Health checks for load balancers and orchestrators: public, JSON, no data (DESIGN §8)."""

from __future__ import annotations

import logging

import sqlalchemy as sa
from flask import Blueprint, jsonify

from .. import migrate
from ..access import public
from ..db import db

bp = Blueprint("health", __name__)
log = logging.getLogger(__name__)


def _answer(body: dict[str, str], status: int):
    response = jsonify(body)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/healthz")
@public
def healthz():
    """The process answers (it does not touch the database: a restart would not cure a database outage)."""
    return _answer({"status": "ok"}, 200)


@bp.route("/readyz")
@public
def readyz():
    """Ready for traffic: the database answers and its schema is at the migration this code expects."""
    expected = migrate.head_revision()
    try:
        with db.get_engine().connect() as connection:
            connection.execute(sa.text("SELECT 1"))
            current = migrate.current_revision_on(connection)
    except sa.exc.SQLAlchemyError as exc:
        log.warning("readyz: base de données injoignable (%s)", type(exc).__name__)
        return _answer({"status": "indisponible", "database": "injoignable"}, 503)
    if current != expected:
        # behind: `logistique init-db` has not run yet; ahead: this host runs older code than the database
        return _answer({"status": "indisponible", "database": "ok", "schema": "pas à jour"}, 503)
    return _answer({"status": "ok", "database": "ok", "schema": "à jour"}, 200)
