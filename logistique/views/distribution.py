"""The distribution-day list: pupils whose device has arrived, with the guardian to call (coordinators)."""

from __future__ import annotations

from flask import Blueprint, Response, g, render_template

from ..access import roles
from ..db import db, utcnow
from ..domain import worklists
from ..exports import csv_bytes, download
from ..models import Role
from ..pdf.distribution import distribution_pdf

bp = Blueprint("distribution", __name__)

HEADERS = (
    "Nom",
    "Prénom",
    "Référence",
    "Niveau",
    "Responsable",
    "Téléphone du responsable",
    "Besoin",
    "Modèle",
    "N° de série",
    "Étiquette",
    "Bordereau",
)


@bp.after_request
def _no_store(response: Response) -> Response:
    """Names and phone numbers: no browser or proxy keeps a copy."""
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/distribution")
@roles(Role.COORDINATOR)
def distribution_page():
    """The list on screen, with its printable and spreadsheet versions."""
    rows = worklists.distribution_list(db.session, g.user)
    return render_template("distribution/list.html", rows=rows, organisation=g.user.organisation)


@bp.route("/distribution.csv")
@roles(Role.COORDINATOR)
def distribution_csv():
    """The same list for a spreadsheet (« ; », UTF-8 with BOM)."""
    rows = worklists.distribution_list(db.session, g.user)
    data = csv_bytes(
        HEADERS,
        (
            (
                r.last_name,
                r.first_name,
                r.reference,
                r.grade,
                r.guardian_name,
                r.guardian_phone,
                r.kind.label,
                r.model,
                r.serial,
                r.asset_tag,
                r.slip_number,
            )
            for r in rows
        ),
    )
    return download(data, "liste-de-distribution.csv")


@bp.route("/distribution.pdf")
@roles(Role.COORDINATOR)
def distribution_print():
    """The list to print for the day, with a box to tick at each handover."""
    rows = worklists.distribution_list(db.session, g.user)
    data = distribution_pdf(
        g.user.organisation.name,
        utcnow(),
        [
            (
                f"{r.last_name.upper()} {r.first_name}",
                r.reference,
                r.grade,
                r.guardian_name,
                r.guardian_phone,
                f"{r.kind.label} — {r.model}",
                r.asset_tag,
                r.slip_number,
            )
            for r in rows
        ],
    )
    response = Response(data, mimetype="application/pdf")
    response.headers["Content-Disposition"] = 'inline; filename="liste-de-distribution.pdf"'
    return response
