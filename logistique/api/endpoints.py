"""The API's endpoints (DESIGN §8). Each calls the domain; none holds a rule of its own."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import joinedload, selectinload

from ..db import db
from ..domain import assignments, pupils, scope
from ..domain import devices as device_domain
from ..domain.errors import ValidationFailed
from ..domain.money import find_model
from ..domain.scope import PERMISSIONS, Permission
from ..models import Assignment, Device, DeviceModel, Lot, Organisation, Pupil, Role, User
from . import schemas
from .framework import operation


def device_out(device: Device) -> dict:
    """A device as the API shows it."""
    return {
        "serial": device.serial,
        "asset_tag": device.asset_tag,
        "kind": device.model.kind,
        "model": device.model.name,
        "condition": device.condition,
        "status": device.status,
        "lot": device.lot.reference,
        "warehouse_id": device.warehouse_id,
        "updated_at": device.updated_at,
    }


@operation(
    "/organisations",
    "GET",
    summary="Structures du périmètre",
    roles=set(Role),
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


@operation(
    "/devices",
    "GET",
    summary="Équipements du périmètre, filtrés et paginés",
    roles=PERMISSIONS[Permission.VIEW_DEVICES],
    query=schemas.DeviceQuery,
    response=schemas.DevicePage,
    errors=(400,),
)
def list_devices(user: User, *, query: schemas.DeviceQuery) -> dict:
    stmt = sa.select(Device).where(scope.device_filter(user))
    if query.status:
        stmt = stmt.where(Device.status == query.status)
    if query.kind:
        stmt = stmt.where(
            Device.model_id.in_(sa.select(DeviceModel.id).where(DeviceModel.kind == query.kind))
        )
    if query.lot:
        stmt = stmt.where(
            Device.lot_id.in_(sa.select(Lot.id).where(Lot.reference == query.lot.strip().upper()))
        )
    total = db.session.scalar(sa.select(sa.func.count()).select_from(stmt.subquery()))
    rows = db.session.scalars(
        stmt.options(joinedload(Device.model), joinedload(Device.lot))
        .order_by(Device.id)
        .limit(query.per_page)
        .offset((query.page - 1) * query.per_page)
    )
    return {
        "items": [device_out(d) for d in rows],
        "page": query.page,
        "per_page": query.per_page,
        "total": total,
    }


@operation(
    "/devices/<serial>",
    "GET",
    summary="Un équipement et son journal",
    roles=PERMISSIONS[Permission.VIEW_DEVICES],
    response=schemas.DeviceWithHistory,
    errors=(404,),
    path_params={"serial": "Numéro de série"},
)
def get_device(user: User, *, serial: str) -> dict:
    device = scope.get_device(db.session, user, serial=serial.strip().upper())
    history = [
        {
            "at": e.at,
            "actor": e.actor_label,
            "action": e.action,
            "from_status": e.from_status,
            "to_status": e.to_status,
            "reason": e.reason,
        }
        for e in device.events
    ]
    return {**device_out(device), "history": history}


@operation(
    "/devices",
    "POST",
    summary="Réceptionner un équipement d'un lot (entrepôt)",
    roles=PERMISSIONS[Permission.RECEIVE_STOCK],
    body=schemas.DeviceIn,
    response=schemas.Device,
    status=201,
    errors=(400, 404, 409),
    description="Le stock entre dans l'entrepôt du lot ; le modèle doit avoir un coût unitaire dans le lot.",
)
def create_device(user: User, *, body: schemas.DeviceIn) -> dict:
    lot = scope.get_lot(db.session, user, reference=body.lot.strip().upper())
    model = find_model(db.session, body.kind, body.model)
    if model is None:
        raise ValidationFailed(f"Modèle inconnu : {body.model} ({body.kind.label.lower()}).")
    device = device_domain.receive_device(
        db.session,
        lot=lot,
        model=model,
        serial=body.serial,
        condition=body.condition,
        by=user,
        asset_tag=body.asset_tag,
    )
    return device_out(device)


# ---------------------------------------------------------------- pupils and assignments

_COORDINATION = {Role.COORDINATOR, Role.ADMIN}


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


def assignment_out(assignment: Assignment) -> dict:
    return {
        "id": assignment.id,
        "serial": assignment.device.serial,
        "pupil": assignment.pupil.reference,
        "kind": assignment.kind,
        "envelope_id": assignment.envelope_id,
        "unit_cost_cents": assignment.unit_cost_cents,
        "created_at": assignment.created_at,
        "cancelled_at": assignment.cancelled_at,
    }


@operation(
    "/pupils",
    "GET",
    summary="Élèves du périmètre (noms pour les coordinateurs de la structure)",
    roles=_COORDINATION,
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


@operation(
    "/assignments",
    "POST",
    summary="Attribuer un équipement en stock à un élève",
    roles=_COORDINATION,
    body=schemas.AssignmentIn,
    response=schemas.Assignment,
    status=201,
    errors=(400, 404, 409, 422),
    description="409 si l'équipement ou l'élève est déjà pris ; 422 si l'enveloppe, le plafond de 15 % "
    "ou le quota du QPV serait dépassé.",
)
def create_assignment(user: User, *, body: schemas.AssignmentIn) -> dict:
    pupil = pupils.get_pupil(db.session, user, reference=body.pupil)
    device = scope.get_device(db.session, user, serial=body.serial.strip().upper())
    return assignment_out(assignments.assign(db.session, pupil=pupil, device=device, by=user))


@operation(
    "/assignments/<int:assignment_id>",
    "DELETE",
    summary="Annuler une attribution avant expédition",
    roles=_COORDINATION,
    response=schemas.Assignment,
    errors=(404, 409),
    path_params={"assignment_id": "Identifiant de l'attribution"},
)
def delete_assignment(user: User, *, assignment_id: int) -> dict:
    assignment = assignments.get_assignment(db.session, user, assignment_id)
    assignments.cancel(db.session, assignment, by=user)
    return assignment_out(assignment)
