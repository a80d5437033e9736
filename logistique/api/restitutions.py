"""The API's restitutions: what a family brings back at the end of the loan, and its receipt.
Each endpoint calls the domain; none holds a rule of its own."""

from __future__ import annotations

from flask import Response, current_app

from .. import pdf
from ..db import db
from ..domain import paperwork, returns, scope
from ..models import DeviceStatus, User
from . import schemas
from .framework import operation


@operation(
    "/restitutions",
    "POST",
    summary="Restitution par la famille en fin de prêt",
    roles=scope.COORDINATION,
    body=schemas.RestitutionIn,
    response=schemas.RestitutionOut,
    status=201,
    errors=(400, 403, 404, 409, 422),
    description="Les équipements remis à un même élève, rendus en bon état (« retourne ») ou défectueux "
    "(« defectueux », motif obligatoire) : tous enregistrés, ou aucun. Les mêmes équipements renvoyés "
    "donnent la même restitution. Un équipement d'une autre structure est refusé.",
)
def create_restitution(user: User, *, body: schemas.RestitutionIn) -> dict:
    done = returns.record_return(
        db.session,
        [returns.ReturnItem(line.serial, DeviceStatus(line.state), line.reason) for line in body.lines],
        by=user,
    )
    base = current_app.config["BASE_URL"]
    return {
        "id": done.id,
        "number": done.number,
        "pupil": done.pupil.reference if done.pupil else "",
        "returned_at": done.returned_at,
        "lines": [
            {"serial": line.device.serial, "state": line.state.value, "reason": line.reason}
            for line in done.lines
        ],
        "receipt_url": f"{base}/api/v1/restitutions/{done.id}/receipt",
    }


@operation(
    "/restitutions/<int:restitution_id>/receipt",
    "GET",
    summary="Le reçu de restitution de la famille en PDF",
    roles=scope.COORDINATION,
    errors=(404,),
    path_params={"restitution_id": "Identifiant de la restitution (champ « id » de POST /restitutions)."},
    raw=True,
    description="Avec le même jeton que la restitution ; une restitution d'une autre structure répond 404.",
)
def get_restitution_receipt(user: User, *, restitution_id: int) -> Response:
    done = returns.get_restitution(db.session, user, restitution_id)
    response = Response(pdf.restitution_pdf(paperwork.restitution_document(done)), mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'attachment; filename="{done.number}.pdf"'
    response.headers["Cache-Control"] = "no-store"
    return response
