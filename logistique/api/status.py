"""The API's status board of a territory.
Each endpoint calls the domain; none holds a rule of its own."""

from __future__ import annotations

from ..db import db
from ..domain import scope, status
from ..models import User
from . import schemas
from .framework import operation


def status_row_out(row: status.StatusRow) -> dict:
    return {
        "code": row.code,
        "name": row.name,
        "department": row.department,
        "needs": row.needs,
        "allocated": row.allocated,
        **row.counts,
        "devices": row.devices,
        **row.returns,
        "committed_eur": round(row.committed_cents / 100, 2),
        "reported": row.level == "total" or row.has_reported,
    }


@operation(
    "/status",
    "GET",
    summary="Avancement des livraisons et argent engagé, par département ou par QPV",
    roles=scope.OVERSIGHT,
    query=schemas.StatusQuery,
    response=schemas.StatusOut,
    errors=(400, 404),
    description="Les colonnes assigned à damaged partagent les équipements : leur somme vaut devices. "
    "Aucune donnée personnelle.",
)
def get_status(user: User, *, query: schemas.StatusQuery) -> dict:
    territory = status.resolve(db.session, user, query.territory)
    total, rows = status.board(db.session, territory, by=query.by)
    return {
        "territory": territory.label,
        "by": query.by,
        "total": status_row_out(total),
        "rows": [status_row_out(r) for r in rows],
    }
