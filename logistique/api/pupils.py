"""The API's pupils: list (names only for their own coordinators) and register.
Each endpoint calls the domain; none holds a rule of its own."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import selectinload

from ..db import db
from ..domain import pupils, scope
from ..models import Pupil, Role, User
from . import schemas
from .framework import operation


def pupil_out(pupil: Pupil, user: User) -> dict:
    """A pupil as the API shows it: names only to the coordinators of the pupil's organisation."""
    named = pupils.may_see_names(user, pupil)
    return {
        "reference": pupil.reference,
        "first_name": pupil.first_name if named else None,
        "last_name": pupil.last_name if named else None,
        "grade": pupil.grade,
        "school_uai": pupil.school_uai,
        "qpv": pupil.qpv_code,
        "guardian_name": pupil.guardian_name if named else None,
        "guardian_phone": pupil.guardian_phone if named else None,
        "needs": pupil.needs,
        "assignments": [
            {"id": a.id, "serial": a.device.serial, "kind": a.kind}
            for a in pupil.assignments
            if a.cancelled_at is None
        ],
        "created_at": pupil.created_at,
    }



@operation(
    "/pupils",
    "GET",
    summary="Élèves du périmètre (noms pour les coordinateurs de la structure)",
    roles=scope.COORDINATION,
    query=schemas.PupilQuery,
    response=schemas.PupilPage,
    errors=(400,),
)
def list_pupils(user: User, *, query: schemas.PupilQuery) -> dict:
    stmt = sa.select(Pupil).where(pupils.pupil_filter(user))
    if query.qpv:
        stmt = stmt.where(Pupil.qpv_code == query.qpv.strip().upper())
    total = db.session.scalar(sa.select(sa.func.count()).select_from(stmt.subquery()))
    rows = db.session.scalars(
        stmt.options(selectinload(Pupil.assignments))
        .order_by(Pupil.id)
        .limit(query.per_page)
        .offset((query.page - 1) * query.per_page)
    )
    return {
        "items": [pupil_out(p, user) for p in rows],
        "page": query.page,
        "per_page": query.per_page,
        "total": total,
    }


@operation(
    "/pupils",
    "POST",
    summary="Enregistrer un élève (coordinateur)",
    roles={Role.COORDINATOR},
    body=schemas.PupilIn,
    response=schemas.Pupil,
    status=201,
    errors=(400, 409),
    description="La référence pseudonyme est donnée par le serveur.",
)
def create_pupil(user: User, *, body: schemas.PupilIn) -> dict:
    pupil = pupils.register_pupil(
        db.session,
        pupils.PupilData(
            body.first_name,
            body.last_name,
            body.grade,
            body.school_uai,
            body.qpv,
            body.guardian_name,
            body.guardian_phone,
            [k.value for k in body.needs],
        ),
        by=user,
    )
    return pupil_out(pupil, user)
