"""Devices: list, page and journal, stock imports and receiving devices one by one on a phone."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, current_app, g, jsonify, redirect, render_template, request, url_for
from flask_wtf.file import FileAllowed, FileField, FileRequired
from sqlalchemy.orm import joinedload
from wtforms import SelectField, StringField, SubmitField, TextAreaField
from wtforms.validators import DataRequired, Length

from .. import bounds
from ..access import permission
from ..db import db
from ..domain import assignments, scope, stock_import
from ..domain import devices as device_domain
from ..domain.errors import Conflict, DomainError, ImportRejected
from ..domain.scope import Permission
from ..models import (
    Assignment,
    Device,
    DeviceCondition,
    DeviceKind,
    DeviceModel,
    DeviceStatus,
    Lot,
    Organisation,
)
from . import imports
from .boundary import commit
from .forms import Form as FlaskForm
from .forms import options
from .paging import paginate
from .scanning import idempotent_scan, offline_page, wants_json

bp = Blueprint("stock", __name__)


def _visible_lots() -> list[Lot]:
    return list(db.session.scalars(sa.select(Lot).where(scope.lot_filter(g.user)).order_by(Lot.reference)))


@bp.route("/equipements")
@permission(Permission.VIEW_DEVICES)
def device_list():
    """Devices in the user's scope, filtered and paged."""
    args = {k: request.args.get(k, "").strip() for k in ("statut", "type", "lot", "entrepot", "q")}
    query = (
        sa.select(Device)
        .where(scope.device_filter(g.user))
        .options(joinedload(Device.model), joinedload(Device.lot), joinedload(Device.warehouse))
        .order_by(Device.id.desc())
    )
    if args["statut"] in DeviceStatus.__members__.values() or args["statut"] in [
        s.value for s in DeviceStatus
    ]:
        query = query.where(Device.status == DeviceStatus(args["statut"]))
    else:
        args["statut"] = ""
    if args["type"] in [k.value for k in DeviceKind]:
        query = query.join(DeviceModel, Device.model_id == DeviceModel.id).where(
            DeviceModel.kind == DeviceKind(args["type"])
        )
    else:
        args["type"] = ""
    lot_id, warehouse_id = (request.args.get(k, type=bounds.ident) for k in ("lot", "entrepot"))
    if lot_id:
        query = query.where(Device.lot_id == lot_id)
    if warehouse_id:
        query = query.where(Device.warehouse_id == warehouse_id)
    if args["q"]:
        needle = args["q"].upper()
        query = query.where(
            sa.or_(
                Device.serial.contains(needle, autoescape=True),
                Device.asset_tag.contains(needle, autoescape=True),
            )
        )
    page = paginate(
        db.session, query, per_page=current_app.config["PAGE_SIZE"], endpoint="stock.device_list", args=args
    )
    warehouses = db.session.scalars(
        sa.select(Organisation)
        .where(
            Organisation.id.in_(sa.select(Device.warehouse_id).where(scope.device_filter(g.user)).distinct())
        )
        .order_by(Organisation.name)
    ).all()
    return render_template(
        "stock/device_list.html",
        page=page,
        args=args,
        lots=_visible_lots(),
        warehouses=warehouses,
        statuses=list(DeviceStatus),
        kinds=list(DeviceKind),
    )


class TransitionForm(FlaskForm):
    action = SelectField("Action", validators=[DataRequired()])
    reason = TextAreaField(
        "Commentaire",
        validators=[Length(max=500)],
        description="Obligatoire pour un équipement défectueux, perdu ou retourné. Ne nommez ni l'élève ni "
        "sa famille : ce commentaire est conservé dans le journal.",
    )
    submit = SubmitField("Enregistrer")


@bp.route("/equipements/<int:device_id>", methods=["GET", "POST"])
@permission(Permission.VIEW_DEVICES)
def device_detail(device_id: int):
    """A device, its journal, and the side exits the user may record (defective, lost, back in stock)."""
    device = scope.get_device(db.session, g.user, device_id=device_id)
    # assignment, slips and handover have their own pages; here only the warehouse's side exits
    actions = [t for t in device_domain.allowed_actions(device, g.user) if t.action in assignments.SIDE_EXITS]
    form = TransitionForm()
    form.action.choices = options([(t.action, t.label[0].upper() + t.label[1:]) for t in actions])
    if request.method == "POST":
        # a device of another organisation answers 404, like an unknown one
        device_domain.check_write_scope(device, g.user, request.form.get("action", ""))
        if not actions:
            raise DomainError("Aucune action possible sur cet équipement dans son état actuel.")
        if form.validate_on_submit() and commit(
            lambda: assignments.record_side_exit(
                db.session, device, form.action.data, by=g.user, reason=form.reason.data or ""
            ),
            lambda _: f"Équipement {device.serial} : {device.status.label_lower}.",
        ):
            return redirect(url_for("stock.device_detail", device_id=device.id))
    unit_cost = next(
        (uc.unit_cost_cents for uc in device.lot.unit_costs if uc.model_id == device.model_id), None
    )
    assignment = db.session.scalar(
        sa.select(Assignment).where(Assignment.device_id == device.id, Assignment.cancelled_at.is_(None))
    )
    can_open_pupil = assignment is not None and assignments.may_open_pupil(g.user, assignment)
    return render_template(
        "stock/device_detail.html",
        device=device,
        form=form,
        actions=actions,
        unit_cost=unit_cost,
        assignment=assignment,
        can_open_pupil=can_open_pupil,
    )


class ImportForm(FlaskForm):
    lot = SelectField("Lot", coerce=int, validators=[DataRequired("Choisissez le lot.")])
    file = FileField(
        "Fichier CSV",
        validators=[
            FileRequired("Choisissez un fichier."),
            FileAllowed(["csv", "txt"], "Un fichier .csv est attendu."),
        ],
        description="Colonnes : numero_serie ; type (tablette, ordinateur, cle_4g) ; modele ; "
        "etat (neuf, reconditionne) ; etiquette (facultative). Séparateur , ou ; — "
        "UTF-8 ou Windows-1252 (Excel).",
    )
    submit = SubmitField("Importer")


@bp.route("/stock/import", methods=["GET", "POST"])
@permission(Permission.RECEIVE_STOCK)
def import_stock():
    """Upload a lot's devices as CSV; any bad row refuses the whole file and lists every problem."""
    lots = _visible_lots()
    form = ImportForm()
    form.lot.choices = options([(lot.id, f"{lot.reference} — {lot.warehouse.name}") for lot in lots])
    rejection = None
    if form.validate_on_submit():
        data = form.file.data.read()
        if imports.in_background(data):
            lot = scope.get_lot(db.session, g.user, lot_id=form.lot.data)
            done = imports.queue(
                imports.STOCK_IMPORT,
                data,
                title=f"Import de stock — lot {lot.reference}",
                params={"lot": lot.id},
                what="équipements",
            )
            if done:
                return imports.job_page(done.value)
        else:
            done = commit(
                lambda: imports.check_then_write(
                    lambda session, user: stock_import.check_stock(
                        session, data, lot=scope.get_lot(session, user, lot_id=form.lot.data), by=user
                    ),
                    lambda session, checked: stock_import.write_stock(session, checked, by=g.user),
                ),
                imports.stock_message,
                # Conflict: some of the devices were registered by another import since the check
                catch=(ImportRejected, Conflict),
            )
            if done:
                return redirect(url_for("stock.device_list", lot=done.value.lot.id))
        if isinstance(done.error, ImportRejected):
            rejection = done.error
    status = 422 if rejection else 200
    return render_template("stock/import.html", form=form, rejection=rejection), status


class ReceiveForm(FlaskForm):
    lot = SelectField("Lot", coerce=int)
    model = SelectField("Modèle", coerce=int)
    condition = SelectField(
        "État",
        choices=options([(c.value, c.label) for c in DeviceCondition]),
        default=DeviceCondition.REFURBISHED.value,
    )
    serial = StringField(
        "Numéro de série",
        validators=[DataRequired("Scannez ou tapez un numéro de série.")],
        render_kw={
            "autocomplete": "off",
            "autocapitalize": "characters",
            "spellcheck": "false",
            "data-autofocus-scan": True,
            "autofocus": True,
        },
    )
    submit = SubmitField("Enregistrer")


@bp.route("/stock/reception", methods=["GET", "POST"])
@permission(Permission.RECEIVE_STOCK)
@offline_page
@idempotent_scan
def receive():
    """Phone page: pick a lot and a model once, then scan serials one after the other."""
    lots = _visible_lots()
    form = ReceiveForm()
    form.lot.choices = options([(lot.id, lot.reference) for lot in lots])
    lot_id = form.lot.data if request.method == "POST" else request.args.get("lot", type=bounds.ident)
    lot = next((lot for lot in lots if lot.id == lot_id), lots[0] if lots else None)
    form.model.choices = options([(uc.model.id, uc.model.label) for uc in lot.unit_costs] if lot else [])
    if request.method == "GET":
        form.lot.data = lot.id if lot else None
        form.model.data = request.args.get("model", type=bounds.ident)
        form.condition.data = request.args.get("etat", DeviceCondition.REFURBISHED.value)
    feedback = None
    status = 200
    if request.method == "POST" and lot is not None:
        if form.validate_on_submit():
            model = db.session.get(DeviceModel, form.model.data)
            done = commit(
                lambda: device_domain.receive_device(
                    db.session,
                    lot=lot,
                    model=model,
                    serial=form.serial.data,
                    condition=DeviceCondition(form.condition.data),
                    by=g.user,
                ),
                flash_error=False,  # the phone page shows its own feedback line
            )
            if done:
                device = done.value
                feedback = (
                    "ok",
                    f"{device.serial} enregistré ({device.model.name}, étiquette {device.asset_tag}).",
                )
            else:
                known = done.error.code == "duplicate_serial"
                feedback = ("dup" if known else "ko", done.error.message)
                status = 200 if known else 422
            form.serial.data = ""
        else:
            feedback = ("ko", "; ".join(e for errs in form.errors.values() for e in errs))
            status = 422
    received = 0
    if lot is not None:
        received = db.session.scalar(sa.select(sa.func.count(Device.id)).where(Device.lot_id == lot.id))
    if request.method == "POST" and wants_json():  # a scan sent by the page's offline queue (scan.js)
        kind, message = feedback or ("ko", "Aucun lot disponible.")
        outcome = {"ok": "picked", "dup": "already", "ko": "refused"}[kind]
        return jsonify({"outcome": outcome, "message": message, "received": received}), (
            422 if kind == "ko" else 200
        )
    return render_template(
        "stock/receive.html", form=form, lot=lot, feedback=feedback, received=received
    ), status
