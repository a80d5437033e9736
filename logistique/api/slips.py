"""The API's slips: create, read, print, pick by scanning, ship, receive.
Each endpoint calls the domain; none holds a rule of its own."""

from __future__ import annotations

from flask import Response, current_app

from .. import pdf
from ..db import db
from ..domain import paperwork, scope, slips
from ..domain.errors import BusinessRuleViolation, InvalidTransition
from ..models import Slip, SlipStatus, User
from . import schemas
from .framework import operation


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


_SLIP_READERS = scope.ALL_ROLES
_SLIP_PATH = {"number": "Numéro du bordereau (BL-59-2020-000123)"}


@operation(
    "/slips",
    "POST",
    summary="Créer et émettre un bordereau",
    roles=scope.COORDINATION,
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
    roles=scope.WAREHOUSE,
    body=schemas.PickIn,
    response=schemas.PickOut,
    errors=(400, 404, 422),
    path_params=_SLIP_PATH,
    description="picked : préparé ; already : déjà préparé, sans effet ; refused (422) : hors bordereau.",
)
def create_pick(user: User, *, number: str, body: schemas.PickIn) -> Response | dict:
    result = slips.pick_by_number(db.session, user, number, body.serial)
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
    roles=scope.WAREHOUSE,
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
    roles=scope.COORDINATION,
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
