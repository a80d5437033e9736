"""The API's endpoints (DESIGN §8). Each calls the domain; none holds a rule of its own."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Response, current_app
from sqlalchemy.orm import joinedload, selectinload

from .. import pdf
from ..db import db
from ..domain import assignments, paperwork, pupils, scope, slips, status
from ..domain import devices as device_domain
from ..domain import handover as handover_domain
from ..domain.errors import BusinessRuleViolation, InvalidTransition, ValidationFailed
from ..domain.money import find_model
from ..domain.scope import PERMISSIONS, Permission
from ..models import Assignment, Device, DeviceModel, Lot, Organisation, Pupil, Role, Slip, SlipStatus, User
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
        raise ValidationFailed(f"Modèle inconnu : {body.model} ({body.kind.label_lower}).")
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


PUPIL_PERSONAL_FIELDS = ("first_name", "last_name", "guardian_name", "guardian_phone")


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
    personal=PUPIL_PERSONAL_FIELDS,
    replay=lambda user, reference: pupil_out(pupils.get_pupil(db.session, user, reference=reference), user),
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


# ---------------------------------------------------------------- slips and handovers


def slip_out(slip: Slip) -> dict:
    """A slip as the API shows it (pupil references only)."""
    base = current_app.config["BASE_URL"]
    return {
        "number": slip.number,
        "status": slip.status,
        "warehouse_id": slip.warehouse_id,
        "destination": slip.destination_id,
        "qr_url": paperwork.slip_url(slip, base, current_app.config["SECRET_KEY"]),
        "pdf_url": f"{base}/api/v1/slips/{slip.number}/pdf",
        "issued_at": slip.issued_at,
        "shipped_at": slip.shipped_at,
        "received_at": slip.received_at,
        "lines": [
            {
                "serial": ln.device.serial,
                "asset_tag": ln.device.asset_tag,
                "kind": ln.device.model.kind,
                "model": ln.device.model.name,
                "pupil": ln.assignment.pupil.reference,
                "device_status": ln.device.status,
                "picked": ln.picked_at is not None,
                "reception": ln.reception_state,
                "handed_over": ln.handover_id is not None,
            }
            for ln in slip.active_lines
        ],
    }


_SLIP_READERS = set(Role)
_SLIP_PATH = {"number": "Numéro du bordereau (BL-59-2020-000123)"}


@operation(
    "/slips",
    "POST",
    summary="Créer et émettre un bordereau",
    roles=_COORDINATION,
    body=schemas.SlipIn,
    response=schemas.Slip,
    status=201,
    errors=(400, 404, 409, 422),
    description="Équipements attribués aux élèves de la structure, tous du même entrepôt.",
)
def create_slip(user: User, *, body: schemas.SlipIn) -> dict:
    destination = scope.get_organisation(db.session, user, body.destination)
    return slip_out(
        slips.create_slip(db.session, destination=destination, serials=body.serials, by=user, issue=True)
    )


@operation(
    "/slips/<number>",
    "GET",
    summary="Un bordereau, ses lignes et leurs états",
    roles=_SLIP_READERS,
    response=schemas.Slip,
    errors=(404,),
    path_params=_SLIP_PATH,
)
def get_slip(user: User, *, number: str) -> dict:
    return slip_out(slips.get_slip(db.session, user, number=number))


@operation(
    "/slips/<number>/pdf",
    "GET",
    summary="Le bordereau en PDF (A4, avec son QR code)",
    roles=_SLIP_READERS,
    errors=(404, 409),
    path_params=_SLIP_PATH,
    raw=True,
)
def get_slip_pdf(user: User, *, number: str) -> Response:
    slip = slips.get_slip(db.session, user, number=number)
    if slip.status in (SlipStatus.DRAFT, SlipStatus.CANCELLED):
        raise InvalidTransition("Un bordereau s'imprime une fois émis.")
    document = paperwork.slip_document(
        slip, base_url=current_app.config["BASE_URL"], secret=current_app.config["SECRET_KEY"]
    )
    response = Response(pdf.slip_pdf(document), mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'inline; filename="{slip.number}.pdf"'
    return response


@operation(
    "/slips/<number>/picks",
    "POST",
    summary="L'entrepôt a scanné cet équipement pour ce bordereau",
    roles={Role.WAREHOUSE, Role.ADMIN},
    body=schemas.PickIn,
    response=schemas.PickOut,
    errors=(400, 404, 422),
    path_params=_SLIP_PATH,
    description="picked : préparé ; already : déjà préparé, sans effet ; refused (422) : hors bordereau.",
)
def create_pick(user: User, *, number: str, body: schemas.PickIn) -> Response | dict:
    slip = slips.get_slip(db.session, user, number=number)
    result = slips.scan_for_pick(db.session, slip, body.serial, by=user)
    payload = {
        "outcome": result.outcome,
        "message": result.message,
        "picked": result.picked,
        "total": result.total,
        "serial": result.serial,
    }
    if result.outcome == "refused":
        raise BusinessRuleViolation(result.message, code="not_on_slip")
    return payload


@operation(
    "/slips/<number>/ship",
    "POST",
    summary="Le colis quitte l'entrepôt",
    roles={Role.WAREHOUSE, Role.ADMIN},
    response=schemas.Slip,
    errors=(404, 409),
    path_params=_SLIP_PATH,
)
def ship_slip(user: User, *, number: str) -> dict:
    slip = slips.get_slip(db.session, user, number=number)
    slips.ship(db.session, slip, by=user)
    return slip_out(slip)


@operation(
    "/slips/<number>/reception",
    "POST",
    summary="Réception ligne à ligne par la structure",
    roles=_COORDINATION,
    body=schemas.ReceptionIn,
    response=schemas.Slip,
    errors=(400, 404, 409),
    path_params=_SLIP_PATH,
    description="Un commentaire est obligatoire pour manquant et endommagé.",
)
def receive_slip(user: User, *, number: str, body: schemas.ReceptionIn) -> dict:
    slip = slips.get_slip(db.session, user, number=number)
    slips.receive(
        db.session, slip, [slips.ReceptionLine(ln.serial, ln.state, ln.comment) for ln in body.lines], by=user
    )
    return slip_out(slip)


@operation(
    "/handovers",
    "POST",
    summary="Remise à la famille, signée",
    roles=_COORDINATION,
    body=schemas.HandoverIn,
    response=schemas.HandoverOut,
    status=201,
    errors=(400, 404, 409, 422),
    description="Une signature couvre le lot de l'élève (par exemple une tablette et sa clé 4G).",
    personal=("receiver_name",),
)
def create_handover(user: User, *, body: schemas.HandoverIn) -> dict:
    serials = list(body.serials or []) + ([body.serial] if body.serial else [])
    if not serials:
        raise ValidationFailed("Indiquez « serial » ou « serials ».")
    device = scope.get_device(db.session, user, serial=slips.parse_scan(serials[0]))
    assignment = db.session.scalar(
        sa.select(Assignment).where(Assignment.device_id == device.id, Assignment.cancelled_at.is_(None))
    )
    if assignment is None:
        raise ValidationFailed(f"{device.serial} n'est attribué à aucun élève.")
    pupil = pupils.get_pupil(db.session, user, pupil_id=assignment.pupil_id)
    done = handover_domain.hand_over(
        db.session,
        pupil=pupil,
        serials=serials,
        receiver_name=body.receiver_name,
        relation=body.relation,
        mode=body.mode,
        signature=body.signature,
        by=user,
    )
    base = current_app.config["BASE_URL"]
    return {
        "number": done.number,
        "pupil": pupil.reference,
        "mode": done.mode,
        "serials": [ln.device.serial for ln in done.lines],
        "signature_sha256": done.signature_sha256,
        "handed_over_at": done.handed_over_at,
        "receipt_url": f"{base}/remises/{done.id}/recu.pdf",
    }


# ---------------------------------------------------------------- status


def status_row_out(row: status.StatusRow) -> dict:
    return {
        "code": row.code,
        "name": row.name,
        "department": row.department,
        "needs": row.needs,
        "allocated": row.allocated,
        **row.counts,
        "devices": row.devices,
        "committed_eur": round(row.committed_cents / 100, 2),
    }


@operation(
    "/status",
    "GET",
    summary="Avancement des livraisons et argent engagé, par département ou par QPV",
    roles={Role.PREFECTURE, Role.ADMIN},
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
