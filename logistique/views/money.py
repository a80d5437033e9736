"""Administration of the money: budget envelopes and subsidised lots."""

from __future__ import annotations

import sqlalchemy as sa
from flask import g, redirect, render_template, request, url_for
from sqlalchemy.orm import selectinload
from wtforms import (
    DateField,
    SelectField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, Optional

from ..access import permission
from ..db import db
from ..domain import money
from ..domain.errors import DomainError
from ..domain.scope import Permission
from ..formatting import parse_euros
from ..models import (
    CiteEducative,
    DeviceKind,
    DeviceModel,
    Envelope,
    EnvelopeKind,
    Lot,
    Organisation,
    OrganisationKind,
)
from .admin import _get, bp
from .boundary import commit
from .forms import Form as FlaskForm
from .forms import options

# ---------------------------------------------------------------- envelopes


class EnvelopeForm(FlaskForm):
    region_code = SelectField("Région")
    kind = SelectField("Type", choices=options([(k.value, k.label) for k in EnvelopeKind]))
    label = StringField("Libellé", validators=[DataRequired("Libellé obligatoire."), Length(max=200)])
    amount = StringField("Montant mobilisable (€)", validators=[DataRequired("Montant obligatoire.")])
    annual_amount = StringField(
        "Montant annuel 2020 de la cité (€)",
        description="Cité éducative 2020 seulement : le plan peut en mobiliser 15 % au plus.",
    )
    cite_educative = SelectField("Cité éducative", validators=[Optional()])
    submit = SubmitField("Enregistrer")


def _envelope_form(form: EnvelopeForm) -> None:
    from ..models import Region

    form.region_code.choices = options(
        (r.code, f"{r.code} — {r.name}") for r in db.session.scalars(sa.select(Region).order_by(Region.code))
    )
    cites = db.session.scalars(sa.select(CiteEducative).order_by(CiteEducative.name))
    form.cite_educative.choices = options(
        [("", "—")] + [(c.code, f"{c.name} ({c.department_code})") for c in cites]
    )


def _envelope_data(form: EnvelopeForm) -> money.EnvelopeData:
    try:
        amount = parse_euros(form.amount.data)
        annual = parse_euros(form.annual_amount.data) if (form.annual_amount.data or "").strip() else None
    except ValueError as exc:
        raise DomainError(str(exc)) from exc
    return money.EnvelopeData(
        region_code=form.region_code.data,
        kind=EnvelopeKind(form.kind.data),
        label=form.label.data,
        amount_cents=amount,
        annual_amount_cents=annual,
        cite_educative_code=form.cite_educative.data or "",
    )


@bp.route("/enveloppes")
@permission(Permission.MANAGE_MONEY)
def envelopes():
    """Budget envelopes by region."""
    rows = db.session.scalars(
        sa.select(Envelope)
        .options(selectinload(Envelope.lots))
        .order_by(Envelope.region_code, Envelope.kind, Envelope.label)
    ).all()
    return render_template("admin/envelopes.html", envelopes=rows, cap=money.cite_2020_cap)


@bp.route("/enveloppes/nouvelle", methods=["GET", "POST"])
@permission(Permission.MANAGE_MONEY)
def envelope_new():
    """Create an envelope."""
    form = EnvelopeForm()
    _envelope_form(form)
    if form.validate_on_submit():
        if not commit(
            lambda: money.save_envelope(db.session, _envelope_data(form), by=g.user), "Enveloppe créée."
        ):
            return render_template("admin/envelope_form.html", form=form, envelope=None), 422
        return redirect(url_for("admin.envelopes"))
    return render_template("admin/envelope_form.html", form=form, envelope=None)


@bp.route("/enveloppes/<int:envelope_id>", methods=["GET", "POST"])
@permission(Permission.MANAGE_MONEY)
def envelope_edit(envelope_id: int):
    """Edit an envelope."""
    env = _get(Envelope, envelope_id)
    form = EnvelopeForm(obj=None if request.method == "POST" else env)
    _envelope_form(form)
    if request.method == "GET":
        form.kind.data = env.kind.value
        form.amount.data = f"{env.amount_cents / 100:.2f}".replace(".", ",")
        form.annual_amount.data = (
            f"{env.annual_amount_cents / 100:.2f}".replace(".", ",") if env.annual_amount_cents else ""
        )
        form.cite_educative.data = env.cite_educative_code or ""
    if form.validate_on_submit():
        if not commit(
            lambda: money.save_envelope(db.session, _envelope_data(form), by=g.user, envelope=env),
            "Enveloppe mise à jour.",
        ):
            return render_template("admin/envelope_form.html", form=form, envelope=env), 422
        return redirect(url_for("admin.envelopes"))
    return render_template("admin/envelope_form.html", form=form, envelope=env)


# ---------------------------------------------------------------- lots


class LotForm(FlaskForm):
    reference = StringField("Référence", validators=[DataRequired("Référence obligatoire."), Length(max=40)])
    supplier = StringField(
        "Fournisseur",
        default="Emmaüs Connect",
        validators=[DataRequired("Fournisseur obligatoire."), Length(max=200)],
    )
    envelope = SelectField("Enveloppe", coerce=int)
    warehouse = SelectField("Entrepôt", coerce=int)
    signed_on = DateField("Date de la convention", validators=[Optional()])
    note = TextAreaField("Note", validators=[Length(max=500)])
    new_model_kind = SelectField(
        "Type du nouveau modèle", choices=options([("", "—")] + [(k.value, k.label) for k in DeviceKind])
    )
    new_model_name = StringField("Nouveau modèle", validators=[Length(max=120)])
    new_model_cost = StringField("Coût unitaire du nouveau modèle (€)")
    submit = SubmitField("Enregistrer")


def _lot_form(form: LotForm) -> list[DeviceModel]:
    form.envelope.choices = options(
        (e.id, f"{e.label} ({e.region_code})")
        for e in db.session.scalars(sa.select(Envelope).order_by(Envelope.label))
    )
    form.warehouse.choices = options(
        (o.id, o.name)
        for o in db.session.scalars(
            sa.select(Organisation)
            .where(Organisation.kind == OrganisationKind.WAREHOUSE)
            .order_by(Organisation.name)
        )
    )
    return list(db.session.scalars(sa.select(DeviceModel).order_by(DeviceModel.kind, DeviceModel.name)))


def _lot_data(form: LotForm, models: list[DeviceModel]) -> money.LotData:
    costs: dict[int, int] = {}
    for model in models:
        raw = request.form.get(f"cost_{model.id}", "").strip()
        if raw:
            try:
                costs[model.id] = parse_euros(raw)
            except ValueError as exc:
                raise DomainError(f"{model.name} : {exc}") from exc
    if (form.new_model_name.data or "").strip():
        if not form.new_model_kind.data:
            raise DomainError("Choisissez le type du nouveau modèle.")
        try:
            cost = parse_euros(form.new_model_cost.data or "")
        except ValueError as exc:
            raise DomainError(f"Nouveau modèle : {exc}") from exc
        model = money.get_or_create_model(
            db.session, DeviceKind(form.new_model_kind.data), form.new_model_name.data, by=g.user
        )
        costs[model.id] = cost
    return money.LotData(
        reference=form.reference.data,
        supplier=form.supplier.data,
        envelope_id=form.envelope.data,
        warehouse_id=form.warehouse.data,
        signed_on=form.signed_on.data,
        note=form.note.data or "",
        unit_costs=costs,
    )


@bp.route("/lots")
@permission(Permission.MANAGE_MONEY)
def lots():
    """Subsidised lots with their unit costs and device counts."""
    from ..models import Device

    rows = db.session.scalars(
        sa.select(Lot).options(selectinload(Lot.unit_costs)).order_by(Lot.reference)
    ).all()
    counts = dict(db.session.execute(sa.select(Device.lot_id, sa.func.count()).group_by(Device.lot_id)).all())
    return render_template("admin/lots.html", lots=rows, counts=counts)


def _lot_page(lot: Lot | None):
    form = LotForm(obj=None if request.method == "POST" else lot)
    models = _lot_form(form)
    if request.method == "GET" and lot is not None:
        form.envelope.data = lot.envelope_id
        form.warehouse.data = lot.warehouse_id
    costs = {uc.model_id: uc.unit_cost_cents for uc in lot.unit_costs} if lot else {}
    context = {"form": form, "lot": lot, "models": models, "costs": costs}
    if form.validate_on_submit():
        if not commit(
            lambda: money.save_lot(db.session, _lot_data(form, models), by=g.user, lot=lot), "Lot enregistré."
        ):
            return render_template("admin/lot_form.html", **context), 422
        return redirect(url_for("admin.lots"))
    return render_template("admin/lot_form.html", **context)


@bp.route("/lots/nouveau", methods=["GET", "POST"])
@permission(Permission.MANAGE_MONEY)
def lot_new():
    """Create a lot and its unit costs."""
    return _lot_page(None)


@bp.route("/lots/<int:lot_id>", methods=["GET", "POST"])
@permission(Permission.MANAGE_MONEY)
def lot_edit(lot_id: int):
    """Edit a lot and its unit costs."""
    return _lot_page(_get(Lot, lot_id))
