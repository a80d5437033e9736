"""The API's handovers to families, signed on the phone.
Each endpoint calls the domain; none holds a rule of its own."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Response, current_app

from .. import pdf
from ..db import db
from ..domain import handover as handover_domain
from ..domain import paperwork, pupils, scope, slips
from ..domain.errors import ValidationFailed
from ..models import Assignment, User
from . import schemas
from .framework import operation


@operation(
    "/handovers",
    "POST",
    summary="Remise à la famille, signée",
    roles=scope.COORDINATION,
    body=schemas.HandoverIn,
    response=schemas.HandoverOut,
    status=201,
    errors=(400, 404, 409, 422),
    description="Une signature couvre le lot de l'élève (par exemple une tablette et sa clé 4G).",
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
        "id": done.id,
        "number": done.number,
        "pupil": pupil.reference,
        "mode": done.mode,
        "serials": [ln.device.serial for ln in done.lines],
        "signature_sha256": done.signature_sha256,
        "handed_over_at": done.handed_over_at,
        "receipt_url": f"{base}/api/v1/handovers/{done.id}/receipt",
    }


@operation(
    "/handovers/<int:handover_id>/receipt",
    "GET",
    summary="Le reçu de la famille en PDF (attestation de remise ou convention de prêt)",
    roles=scope.COORDINATION,
    errors=(404,),
    path_params={"handover_id": "Identifiant de la remise (champ « id » de la réponse de POST /handovers)."},
    raw=True,
    description="Avec le même jeton que la remise ; une remise d'une autre structure répond 404.",
)
def get_receipt(user: User, *, handover_id: int) -> Response:
    done = handover_domain.get_handover(db.session, user, handover_id)
    response = Response(pdf.receipt_pdf(paperwork.receipt_document(done)), mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'attachment; filename="{done.number}.pdf"'
    response.headers["Cache-Control"] = "no-store"
    return response
