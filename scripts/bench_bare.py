"""The bare counterparts of ``scripts/bench api``: a Flask app with no login, no validation and no ORM, on the
same engine as the application (``logistique.db.make_engine``: same pragmas, same pool, writers in
BEGIN IMMEDIATE on SQLite), served by the same gunicorn settings. Each endpoint does the least its real
counterpart must do against the database:

- ``POST /bare/pick/<id>`` and ``POST /bare/scan/<id>`` (form): one guarded row update in a write transaction;
- ``GET /bare/device/<serial>``: one row read by a unique key.

The table ``bench_bare`` is created and filled by scripts/bench_api.py. Run as
``gunicorn 'bench_bare:create_app()'`` with ``--pythonpath scripts`` and ``LOGISTIQUE_DATABASE_URL`` set."""

from __future__ import annotations

import json
import os

import sqlalchemy as sa
from flask import Flask, Response, request

from logistique.db import make_engine, utcnow

TABLE = sa.Table(
    "bench_bare",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("serial", sa.String(64), unique=True),
    sa.Column("status", sa.String(20)),
    sa.Column("picked_at", sa.DateTime, nullable=True),
)


def create_app() -> Flask:
    """The bare app on ``LOGISTIQUE_DATABASE_URL``."""
    app = Flask(__name__)
    engine = make_engine(os.environ["LOGISTIQUE_DATABASE_URL"])
    writer = engine.execution_options(write=True)

    def pick(row_id: int) -> Response:
        with writer.begin() as conn:
            won = conn.execute(
                sa.update(TABLE)
                .where(TABLE.c.id == row_id, TABLE.c.picked_at.is_(None))
                .values(picked_at=utcnow(), status="prepare")
            ).rowcount
        body = json.dumps({"outcome": "picked" if won else "already", "id": row_id})
        return Response(body, mimetype="application/json")

    @app.post("/bare/pick/<int:row_id>")
    def bare_pick(row_id: int) -> Response:
        request.get_json(silent=True)
        return pick(row_id)

    @app.post("/bare/scan/<int:row_id>")
    def bare_scan(row_id: int) -> Response:
        request.form.get("code")
        return pick(row_id)

    @app.get("/bare/device/<serial>")
    def bare_device(serial: str) -> Response:
        with engine.connect() as conn:
            row = conn.execute(sa.select(TABLE).where(TABLE.c.serial == serial)).one_or_none()
        if row is None:
            return Response('{"error": "not found"}', status=404, mimetype="application/json")
        body = json.dumps({"serial": row.serial, "status": row.status, "picked_at": str(row.picked_at)})
        return Response(body, mimetype="application/json")

    return app
