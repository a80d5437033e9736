"""The API's organisations: those in the caller's scope.
Each endpoint calls the domain; none holds a rule of its own."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import selectinload

from ..db import db
from ..domain import scope
from ..models import Organisation, User
from . import schemas
from .framework import operation


@operation(
    "/organisations",
    "GET",
    summary="Structures du périmètre",
    roles=scope.ALL_ROLES,
    response=schemas.OrganisationList,
)
def list_organisations(user: User) -> dict:
    orgs = db.session.scalars(
        sa.select(Organisation)
        .where(scope.organisation_filter(user))
        .options(selectinload(Organisation.qpvs))
        .order_by(Organisation.id)
    )
    return {
        "items": [
            {
                "id": o.id,
                "kind": o.kind,
                "name": o.name,
                "department": o.department_code,
                "uai": o.uai,
                "city": o.city,
                "qpvs": [q.code for q in o.qpvs],
            }
            for o in orgs
        ]
    }
