"""The API's assignments: assign a device to a pupil, cancel before shipping.
Each endpoint calls the domain; none holds a rule of its own."""

from __future__ import annotations

from ..db import db
from ..domain import assignments, bulk_assign, pupils, scope
from ..domain.errors import DomainError
from ..models import Assignment, User
from . import schemas
from .framework import operation


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
    "/assignments",
    "POST",
    summary="Attribuer un équipement en stock à un élève",
    roles=scope.COORDINATION,
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
    roles=scope.COORDINATION,
    response=schemas.Assignment,
    errors=(404, 409),
    path_params={"assignment_id": "Identifiant de l'attribution"},
)
def delete_assignment(user: User, *, assignment_id: int) -> dict:
    assignment = assignments.get_assignment(db.session, user, assignment_id)
    assignments.cancel(db.session, assignment, by=user)
    return assignment_out(assignment)


@operation(
    "/assignments/batch",
    "POST",
    summary="Attribuer plusieurs équipements à la fois, avec une réponse par ligne",
    roles=scope.COORDINATION,
    body=schemas.AssignmentBatchIn,
    response=schemas.AssignmentBatchOut,
    errors=(400,),
    description="Chaque ligne suit les règles de POST /assignments et réussit ou échoue seule (status 201, "
    "409, 422, 404 dans la ligne). Au plus 200 lignes.",
)
def create_assignments(user: User, *, body: schemas.AssignmentBatchIn) -> dict:
    items = []
    for item in body.items:
        try:
            with db.session.begin_nested():
                pupil = pupils.get_pupil(db.session, user, reference=item.pupil)
                device = scope.get_device(db.session, user, serial=item.serial.strip().upper())
                done = assignments.assign(db.session, pupil=pupil, device=device, by=user)
        except DomainError as exc:
            items.append(
                {
                    "serial": item.serial,
                    "pupil": item.pupil,
                    "status": exc.status,
                    "code": exc.code,
                    "message": exc.message,
                }
            )
            continue
        items.append({"serial": device.serial, "pupil": pupil.reference, "status": 201, "id": done.id})
    assigned = sum(1 for i in items if i["status"] == 201)
    return {"assigned": assigned, "refused": len(items) - assigned, "items": items}


@operation(
    "/assignments/scan",
    "POST",
    summary="Attribuer l'équipement scanné au prochain élève qui l'attend",
    roles=scope.COORDINATION,
    body=schemas.AssignmentScanIn,
    response=schemas.Assignment,
    status=201,
    errors=(400, 404, 409, 422),
    description="L'élève de la structure qui attend ce type d'équipement depuis le plus longtemps, dans le "
    "respect des quotas, des enveloppes et du plafond de 15 %.",
)
def scan_assignment(user: User, *, body: schemas.AssignmentScanIn) -> dict:
    return assignment_out(bulk_assign.assign_next(db.session, body.serial, by=user))
