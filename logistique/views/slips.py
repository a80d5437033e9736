"""Slips: creation and printing (coordinators), preparation by scanning (warehouse, phone), reception and
handover with the family's signature (coordinators, phone), and what a slip's QR code opens."""

from __future__ import annotations

import sqlalchemy as sa
from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from sqlalchemy.orm import joinedload
from wtforms import HiddenField, RadioField, SelectField, StringField, SubmitField
from wtforms.validators import DataRequired, Length

from .. import pdf
from ..access import any_role, roles
from ..db import db
from ..domain import handover as handover_domain
from ..domain import paperwork, pupils, scope, slips
from ..domain.errors import DomainError
from ..models import (
    Assignment,
    Device,
    DeviceStatus,
    HandoverMode,
    Organisation,
    Pupil,
    ReceptionState,
    Role,
    Slip,
    SlipLine,
    SlipStatus,
)
from .forms import Form, options
from .scanning import idempotent_scan, offline_page

bp = Blueprint("slips", __name__)

COORDINATION = (Role.COORDINATOR, Role.ADMIN)
WAREHOUSE = (Role.WAREHOUSE, Role.ADMIN)


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
            .where(Organisation.kind == "entrepot", scope.organisation_filter(g.user))
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
        .where(Organisation.kind.in_(["association", "ecole"]), scope.organisation_filter(g.user))
        .order_by(Organisation.name)
    ).all()
    chosen = request.values.get("destination", type=int) or (
        g.user.organisation_id or (destinations[0].id if destinations else None)
    )
    destination = next((d for d in destinations if d.id == chosen), None)
    form = NewSlipForm()
    status = 200
    if form.validate_on_submit() and destination is not None:
        try:
            slip = slips.create_slip(
                db.session, destination=destination, serials=request.form.getlist("serial"), by=g.user
            )
        except DomainError as exc:
            db.session.rollback()
            flash(exc.message, "error")
            status = exc.status
        else:
            db.session.commit()
            flash(f"Bordereau {slip.number} créé (brouillon) : vérifiez-le puis émettez-le.", "success")
            return redirect(url_for("slips.slip_detail", number=slip.number))
    ready = []
    if destination is not None:
        ready = db.session.execute(
            sa.select(Device, Assignment)
            .join(Assignment, sa.and_(Assignment.device_id == Device.id, Assignment.cancelled_at.is_(None)))
            .where(Assignment.organisation_id == destination.id, Device.status == DeviceStatus.ASSIGNED)
            .options(joinedload(Device.model), joinedload(Device.warehouse))
            .order_by(Device.warehouse_id, Device.id)
        ).all()
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
    try:
        action(slip)
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "error")
    else:
        db.session.commit()
        flash(success.format(number=slip.number), "success")
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


# ---------------------------------------------------------------- warehouse: preparation


class ScanForm(Form):
    code = StringField(
        "Code scanné",
        validators=[DataRequired("Scannez une étiquette."), Length(max=300)],
        render_kw={
            "autocomplete": "off",
            "autocapitalize": "characters",
            "spellcheck": "false",
            "data-autofocus-scan": True,
            "autofocus": True,
            "enterkeyhint": "done",
        },
    )
    submit = SubmitField("Valider")


@bp.route("/bordereaux/<number>/preparation")
@roles(*WAREHOUSE)
@offline_page
def prepare(number: str):
    """Phone page: scan each device of the slip (camera or handheld scanner), then ship."""
    slip = _slip(number)
    picked = sum(1 for line in slip.active_lines if line.picked_at)
    return render_template(
        "slips/prepare.html",
        slip=slip,
        form=ScanForm(),
        ship_form=ActionForm(),
        picked=picked,
        total=len(slip.active_lines),
    )


@bp.route("/bordereaux/<number>/scan", methods=["POST"])
@roles(*WAREHOUSE)
@idempotent_scan
def scan(number: str):
    """One scan: JSON for the page's script, a redirect with a message without script."""
    slip = _slip(number)
    form = ScanForm()
    wants_json = request.accept_mimetypes.best == "application/json"
    if not form.validate_on_submit():
        message = "; ".join(e for errors in form.errors.values() for e in errors)
        if wants_json:
            return jsonify({"outcome": "refused", "message": message}), 400
        flash(message, "error")
        return redirect(url_for("slips.prepare", number=number))
    result = slips.scan_for_pick(db.session, slip, form.code.data, by=g.user)
    db.session.commit()
    if wants_json:
        return jsonify(
            {
                "outcome": result.outcome,
                "message": result.message,
                "picked": result.picked,
                "total": result.total,
                "serial": result.serial,
                "complete": result.picked == result.total,
            }
        ), (422 if result.outcome == "refused" else 200)
    flash(result.message, {"picked": "success", "already": "info", "refused": "error"}[result.outcome])
    return redirect(url_for("slips.prepare", number=number))


@bp.route("/bordereaux/<number>/expedier", methods=["POST"])
@roles(*WAREHOUSE)
def slip_ship(number: str):
    """The parcel leaves: every device becomes expédié."""
    return _act(
        number,
        lambda s: slips.ship(db.session, s, by=g.user),
        "Bordereau {number} expédié.",
        endpoint="slips.slip_detail",
    )


# ---------------------------------------------------------------- destination: reception and handover


@bp.route("/bordereaux/<number>/reception", methods=["GET", "POST"])
@roles(*COORDINATION)
@offline_page
def reception(number: str):
    """Confirm the parcel line by line: reçu, manquant or endommagé (with a comment)."""
    slip = _slip(number)
    form = ActionForm()
    status = 200
    if form.validate_on_submit():
        lines = []
        for line in slip.active_lines:
            state = request.form.get(f"state_{line.id}", "")
            if not state:
                continue
            if state not in [s.value for s in ReceptionState]:
                abort(400)
            lines.append(
                slips.ReceptionLine(
                    line.device.serial, ReceptionState(state), request.form.get(f"comment_{line.id}", "")
                )
            )
        try:
            if not lines:
                raise DomainError("Indiquez l'état d'au moins un équipement.")
            changed = slips.receive(db.session, slip, lines, by=g.user)
        except DomainError as exc:
            db.session.rollback()
            flash(exc.message, "error")
            status = exc.status
        else:
            db.session.commit()
            flash(f"Réception enregistrée ({changed} ligne(s)).", "success")
            return redirect(url_for("slips.slip_detail", number=slip.number))
    return render_template("slips/reception.html", slip=slip, form=form, states=list(ReceptionState)), status


class HandoverForm(Form):
    receiver_name = StringField(
        "Nom de la personne qui reçoit",
        validators=[DataRequired("Nom obligatoire."), Length(max=200)],
        render_kw={"autocomplete": "off"},
    )
    relation = SelectField(
        "Lien avec l'élève", choices=options((r, r.capitalize()) for r in handover_domain.RELATIONS)
    )
    mode = RadioField(
        "Remise",
        choices=options(
            [
                (HandoverMode.LOAN.value, "Prêt (convention de prêt)"),
                (HandoverMode.GIFT.value, "Don (attestation de remise)"),
            ]
        ),
        default=HandoverMode.LOAN.value,
    )
    signature = HiddenField(validators=[DataRequired("La signature est obligatoire.")])
    submit = SubmitField("Valider la remise")


@bp.route("/remises/eleve/<int:pupil_id>", methods=["GET", "POST"])
@roles(*COORDINATION)
def handover_new(pupil_id: int):
    """Hand a pupil's received devices to the family: the guardian signs on the phone screen."""
    pupil = pupils.get_pupil(db.session, g.user, pupil_id=pupil_id)
    ready = db.session.execute(
        sa.select(Device, SlipLine)
        .join(Assignment, sa.and_(Assignment.device_id == Device.id, Assignment.cancelled_at.is_(None)))
        .join(SlipLine, sa.and_(SlipLine.device_id == Device.id, SlipLine.removed_at.is_(None)))
        .where(Assignment.pupil_id == pupil.id, Device.status == DeviceStatus.RECEIVED)
        .options(joinedload(Device.model))
    ).all()
    form = HandoverForm()
    status = 200
    if form.validate_on_submit():
        chosen = request.form.getlist("serial")  # nothing ticked is refused by the domain, never "all"
        try:
            handover = handover_domain.hand_over(
                db.session,
                pupil=pupil,
                serials=chosen,
                receiver_name=form.receiver_name.data,
                relation=form.relation.data,
                mode=HandoverMode(form.mode.data),
                signature=form.signature.data,
                by=g.user,
            )
        except DomainError as exc:
            db.session.rollback()
            flash(exc.message, "error")
            status = exc.status
        else:
            db.session.commit()
            flash(f"Remise enregistrée ({handover.number}). Téléchargez le reçu de la famille.", "success")
            return redirect(url_for("slips.handover_detail", handover_id=handover.id))
    return render_template(
        "slips/handover.html",
        pupil=pupil,
        ready=ready,
        form=form,
        show_names=pupils.may_see_names(g.user, pupil),
    ), status


@bp.route("/remises/<int:handover_id>")
@roles(*COORDINATION)
def handover_detail(handover_id: int):
    """A handover and the link to the family's receipt."""
    handover = handover_domain.get_handover(db.session, g.user, handover_id)
    return render_template(
        "slips/handover_done.html", handover=handover, show_names=pupils.may_see_names(g.user, handover.pupil)
    )


@bp.route("/remises/<int:handover_id>/recu.pdf")
@roles(*COORDINATION)
def receipt(handover_id: int):
    """The family's receipt: attestation de remise, or convention de prêt."""
    handover = handover_domain.get_handover(db.session, g.user, handover_id)
    return _pdf(pdf.receipt_pdf(paperwork.receipt_document(handover)), f"{handover.number}.pdf", inline=False)


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
