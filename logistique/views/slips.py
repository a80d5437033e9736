"""Slips (blueprint ``slips``): creation and printing (coordinators), labels, and what a slip's QR code opens.
Preparation in the warehouse is in ``views/preparation.py``; reception and handover at the destination in
``views/handover.py``."""

from __future__ import annotations

import sqlalchemy as sa
from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from sqlalchemy.orm import joinedload
from wtforms import SubmitField

from .. import pdf
from ..access import any_role, roles
from ..db import db
from ..domain import paperwork, scope, slips
from ..models import (
    Device,
    DeviceStatus,
    Organisation,
    OrganisationKind,
    Pupil,
    Role,
    Slip,
    SlipLine,
    SlipStatus,
)
from .boundary import commit
from .forms import Form

bp = Blueprint("slips", __name__)

COORDINATION = scope.COORDINATION
WAREHOUSE = scope.WAREHOUSE


def _pdf(data: bytes, filename: str, *, inline: bool = True) -> Response:
    response = Response(data, mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'{"inline" if inline else "attachment"}; filename="{filename}"'
    response.headers["Cache-Control"] = "no-store"
    return response


def _document(slip: Slip):
    return paperwork.slip_document(
        slip, base_url=current_app.config["BASE_URL"], secret=current_app.config["SECRET_KEY"]
    )


def _slip(number: str) -> Slip:
    return slips.get_slip(db.session, g.user, number=number)


@bp.route("/s/<token>")
@any_role
def scan_landing(token: str):
    """What a slip's QR code opens: the page of that slip for the user's role."""
    slip = slips.slip_from_token(db.session, current_app.config["SECRET_KEY"], token)
    slip = slips.get_slip(db.session, g.user, slip_id=slip.id)  # and it must be in the user's scope
    if g.user.role is Role.WAREHOUSE:
        return redirect(url_for("slips.prepare", number=slip.number))
    if g.user.role is Role.COORDINATOR and slip.status in (SlipStatus.SHIPPED,):
        return redirect(url_for("slips.reception", number=slip.number))
    return redirect(url_for("slips.slip_detail", number=slip.number))


@bp.route("/bordereaux")
@any_role
def slip_list():
    """Slips in scope, newest first, filtered by status."""
    status = request.args.get("statut", "")
    query = (
        sa.select(Slip)
        .where(slips.slip_filter(g.user))
        .options(joinedload(Slip.warehouse), joinedload(Slip.destination))
        .order_by(Slip.id.desc())
    )
    if status in [s.value for s in SlipStatus]:
        query = query.where(Slip.status == SlipStatus(status))
    rows = db.session.scalars(query.limit(300)).unique().all()
    counts = dict(
        db.session.execute(
            sa.select(SlipLine.slip_id, sa.func.count())
            .where(SlipLine.slip_id.in_([s.id for s in rows]), SlipLine.removed_at.is_(None))
            .group_by(SlipLine.slip_id)
        ).all()
    )
    warehouses = []
    if g.user.role in WAREHOUSE:
        warehouses = db.session.scalars(
            sa.select(Organisation)
            .where(Organisation.kind == OrganisationKind.WAREHOUSE, scope.organisation_filter(g.user))
            .order_by(Organisation.name)
        ).all()
    return render_template(
        "slips/list.html",
        slips=rows,
        counts=counts,
        status=status,
        statuses=list(SlipStatus),
        warehouses=warehouses,
    )


class NewSlipForm(Form):
    submit = SubmitField("Créer le bordereau")


@bp.route("/bordereaux/nouveau", methods=["GET", "POST"])
@roles(*COORDINATION)
def slip_new():
    """Pick assigned devices (one warehouse) for the organisation, and make a draft slip of them."""
    destinations = db.session.scalars(
        sa.select(Organisation)
        .where(
            Organisation.kind.in_([OrganisationKind.ASSOCIATION, OrganisationKind.SCHOOL]),
            scope.organisation_filter(g.user),
        )
        .order_by(Organisation.name)
    ).all()
    chosen = request.values.get("destination", type=int) or (
        g.user.organisation_id or (destinations[0].id if destinations else None)
    )
    destination = next((d for d in destinations if d.id == chosen), None)
    form = NewSlipForm()
    status = 200
    if form.validate_on_submit() and destination is not None:
        done = commit(
            lambda: slips.create_slip(
                db.session, destination=destination, serials=request.form.getlist("serial"), by=g.user
            ),
            lambda slip: f"Bordereau {slip.number} créé (brouillon) : vérifiez-le puis émettez-le.",
        )
        if done:
            return redirect(url_for("slips.slip_detail", number=done.value.number))
        status = done.status
    ready = []
    if destination is not None:
        ready = slips.assignable_devices(db.session, destination)
    by_warehouse: dict[str, list] = {}
    for device, assignment in ready:
        by_warehouse.setdefault(device.warehouse.name, []).append((device, assignment))
    return render_template(
        "slips/new.html",
        form=form,
        destinations=destinations,
        destination=destination,
        by_warehouse=by_warehouse,
    ), status


class ActionForm(Form):
    submit = SubmitField("Valider")


@bp.route("/bordereaux/<number>")
@any_role
def slip_detail(number: str):
    """A slip: its lines, journal and the actions the user's role may take now."""
    slip = _slip(number)
    token_url = paperwork.slip_url(slip, current_app.config["BASE_URL"], current_app.config["SECRET_KEY"])
    by_pupil: dict[int, list[SlipLine]] = {}
    for line in slip.active_lines:
        by_pupil.setdefault(line.assignment.pupil_id, []).append(line)
    return render_template(
        "slips/detail.html",
        slip=slip,
        form=ActionForm(),
        qr_url=token_url,
        by_pupil=by_pupil,
        can_coordinate=g.user.role in COORDINATION,
        can_prepare=g.user.role in WAREHOUSE,
        show_names=g.user.role is Role.COORDINATOR,
    )


def _act(number: str, action, success: str, endpoint: str = "slips.slip_detail"):
    slip = _slip(number)
    form = ActionForm()
    if not form.validate_on_submit():
        abort(400)
    commit(lambda: action(slip), success.format(number=slip.number))
    return redirect(url_for(endpoint, number=slip.number))


@bp.route("/bordereaux/<number>/emettre", methods=["POST"])
@roles(*COORDINATION)
def slip_issue(number: str):
    """Issue a draft slip: it can be printed and prepared."""
    return _act(
        number,
        lambda s: slips.issue_slip(db.session, s, by=g.user),
        "Bordereau {number} émis : imprimez-le et joignez-le au colis.",
    )


@bp.route("/bordereaux/<number>/annuler", methods=["POST"])
@roles(*COORDINATION)
def slip_cancel(number: str):
    """Cancel a slip before preparation; its devices stay assigned."""
    return _act(
        number,
        lambda s: slips.cancel_slip(db.session, s, by=g.user),
        "Bordereau {number} annulé ; son QR code ne fonctionne plus.",
    )


@bp.route("/bordereaux/<number>/lignes/<int:line_id>/retirer", methods=["POST"])
@roles(*COORDINATION)
def slip_remove_line(number: str, line_id: int):
    """Take one device off a slip not yet in preparation."""

    def remove(slip: Slip) -> None:
        line = next((ln for ln in slip.active_lines if ln.id == line_id), None)
        if line is None:
            abort(404)
        slips.remove_line(db.session, slip, line, by=g.user)

    return _act(number, remove, "Équipement retiré du bordereau {number}.")


@bp.route("/bordereaux/<number>.pdf")
@any_role
def slip_pdf_view(number: str):
    """The slip as an A4 PDF with its QR code."""
    slip = _slip(number)
    if slip.status in (SlipStatus.DRAFT, SlipStatus.CANCELLED):
        flash("Un bordereau s'imprime une fois émis.", "error")
        return redirect(url_for("slips.slip_detail", number=slip.number))
    return _pdf(pdf.slip_pdf(_document(slip)), f"{slip.number}.pdf")


@bp.route("/bordereaux/a-preparer.pdf")
@roles(*WAREHOUSE)
def slips_batch_pdf():
    """Every issued slip of a warehouse, ready to prepare, in one PDF."""
    warehouse_id = (
        g.user.organisation_id if g.user.role is Role.WAREHOUSE else request.args.get("entrepot", type=int)
    )
    query = (
        sa.select(Slip).where(slips.slip_filter(g.user), Slip.status == SlipStatus.ISSUED).order_by(Slip.id)
    )
    if warehouse_id:
        query = query.where(Slip.warehouse_id == warehouse_id)
    batch = db.session.scalars(query).all()
    if not batch:
        flash("Aucun bordereau à préparer.", "info")
        return redirect(url_for("slips.slip_list"))
    return _pdf(pdf.slips_pdf(_document(s) for s in batch), "bordereaux-a-preparer.pdf")


# ---------------------------------------------------------------- labels


@bp.route("/stock/etiquettes.pdf")
@roles(*WAREHOUSE)
def labels():
    """A4 label sheets (3 × 8) for the devices of a lot, or of a whole warehouse's stock."""
    query = (
        sa.select(Device)
        .where(scope.device_filter(g.user))
        .options(joinedload(Device.model))
        .order_by(Device.id)
    )
    lot = request.args.get("lot", type=int)
    if lot:
        query = query.where(Device.lot_id == lot)
    status = request.args.get("statut", "")
    if status in [s.value for s in DeviceStatus]:
        query = query.where(Device.status == DeviceStatus(status))
    rows = db.session.scalars(query.limit(2400)).all()
    if not rows:
        abort(404)
    base = current_app.config["BASE_URL"]
    return _pdf(pdf.labels_pdf([paperwork.label(d, base_url=base) for d in rows]), "etiquettes.pdf")


__all__ = ["bp", "Pupil"]


# preparation in the warehouse, reception and handover at the destination: their routes join this blueprint
from . import handover, preparation  # noqa: E402, F401
