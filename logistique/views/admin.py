"""Administration: accounts, organisations, QPV referential, envelopes and lots."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, current_app, flash, g, redirect, render_template, request, url_for
from flask_wtf.file import FileAllowed, FileField, FileRequired
from sqlalchemy.orm import selectinload
from wtforms import (
    BooleanField,
    DateField,
    EmailField,
    PasswordField,
    SelectField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, Optional

from ..access import permission
from ..db import db
from ..domain import accounts, money, referential
from ..domain.errors import DomainError, NotFound
from ..domain.referential import ImportRejected, OrganisationData
from ..domain.scope import Permission
from ..formatting import parse_euros
from ..models import (
    CiteEducative,
    Department,
    DeviceKind,
    DeviceModel,
    Envelope,
    EnvelopeKind,
    Lot,
    Organisation,
    OrganisationKind,
    Qpv,
    Role,
    User,
)
from .forms import Form as FlaskForm
from .forms import options
from .paging import paginate

bp = Blueprint("admin", __name__, url_prefix="/admin")


def _get(model, ident):
    obj = db.session.get(model, ident)
    if obj is None:
        raise NotFound()
    return obj


def _save(action, success: str, template: str, status_on_error: int = 422, **context):
    """Run a domain call; commit and flash on success, roll back and show the form again on refusal."""
    try:
        result = action()
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return None, (render_template(template, **context), status_on_error)
    db.session.commit()
    flash(success, "success")
    return result, None


# ---------------------------------------------------------------- users


def _organisation_choices() -> list[tuple[int, str]]:
    orgs = db.session.scalars(sa.select(Organisation).order_by(Organisation.kind, Organisation.name))
    return [(0, "—")] + [(o.id, f"{o.name} ({o.kind.label}, {o.department_code})") for o in orgs]


class UserForm(FlaskForm):
    email = EmailField(
        "Adresse électronique", validators=[DataRequired("Adresse obligatoire."), Length(max=254)]
    )
    display_name = StringField("Nom affiché", validators=[Length(max=200)])
    role = SelectField("Rôle", choices=options([(r.value, r.label) for r in Role]))
    organisation = SelectField(
        "Structure",
        coerce=int,
        description="Pour les rôles entrepôt (un entrepôt) et coordination (une association ou une école).",
    )
    territory = StringField(
        "Territoire",
        validators=[Length(max=20)],
        description="Pour le rôle préfecture : code de région (32) ou de département (departement:59).",
    )
    password = PasswordField(
        "Mot de passe",
        validators=[Optional()],
        description="10 caractères au moins. Laisser vide pour ne pas le changer.",
    )
    is_active = BooleanField("Compte actif", default=True)
    submit = SubmitField("Enregistrer")


@bp.route("/comptes")
@permission(Permission.MANAGE_USERS)
def users():
    """Every account with its role and scope."""
    rows = db.session.scalars(sa.select(User).order_by(User.role, User.email)).all()
    return render_template("admin/users.html", users=rows)


@bp.route("/comptes/nouveau", methods=["GET", "POST"])
@permission(Permission.MANAGE_USERS)
def user_new():
    """Create an account; without a password one is generated and shown once."""
    form = UserForm()
    form.organisation.choices = options(_organisation_choices())
    if form.validate_on_submit():
        password = form.password.data or accounts.generate_password()

        def create():
            return accounts.create_user(
                db.session,
                email=form.email.data,
                role=Role(form.role.data),
                password=password,
                display_name=form.display_name.data or "",
                organisation_id=form.organisation.data or None,
                territory=form.territory.data or None,
            )

        user, error = _save(create, "Compte créé.", "admin/user_form.html", form=form, user=None)
        if error:
            return error
        if not form.password.data:
            flash(f"Mot de passe de {user.email}, à transmettre par un canal sûr : {password}", "warning")
        return redirect(url_for("admin.users"))
    return render_template("admin/user_form.html", form=form, user=None)


@bp.route("/comptes/<int:user_id>", methods=["GET", "POST"])
@permission(Permission.MANAGE_USERS)
def user_edit(user_id: int):
    """Change an account's role, scope, state or password."""
    user = _get(User, user_id)
    form = UserForm(obj=None if request.method == "POST" else user)
    form.organisation.choices = options(_organisation_choices())
    if request.method == "GET":
        form.role.data = user.role.value
        form.organisation.data = user.organisation_id or 0
        form.territory.data = (
            f"{user.territory_kind.value}:{user.territory_code}" if user.territory_kind else ""
        )
    if form.validate_on_submit():
        if user.id == g.user.id and (Role(form.role.data) is not Role.ADMIN or not form.is_active.data):
            flash("Vous ne pouvez pas retirer vos propres droits d'administration.", "error")
            return render_template("admin/user_form.html", form=form, user=user), 422

        def update():
            accounts.update_user(
                db.session,
                user,
                role=Role(form.role.data),
                display_name=form.display_name.data or "",
                organisation_id=form.organisation.data or None,
                territory=form.territory.data or None,
                is_active=form.is_active.data,
                password=form.password.data or None,
            )

        _, error = _save(update, "Compte mis à jour.", "admin/user_form.html", form=form, user=user)
        return error or redirect(url_for("admin.users"))
    return render_template("admin/user_form.html", form=form, user=user)


# ---------------------------------------------------------------- organisations


class OrganisationForm(FlaskForm):
    kind = SelectField("Type", choices=options([(k.value, k.label) for k in OrganisationKind]))
    name = StringField("Nom", validators=[DataRequired("Nom obligatoire."), Length(max=200)])
    department_code = SelectField("Département")
    uai = StringField(
        "Code UAI",
        validators=[Length(max=12)],
        description="Écoles et établissements : 7 chiffres et une lettre de contrôle (0750654D).",
    )
    address = StringField("Adresse", validators=[Length(max=300)])
    postal_code = StringField("Code postal", validators=[Length(max=5)])
    city = StringField("Commune", validators=[Length(max=100)])
    cite_educative = SelectField("Cité éducative", validators=[Optional()])
    qpvs = TextAreaField(
        "QPV desservis",
        description="Codes séparés par des espaces, virgules ou retours à la ligne (QN05901M ou QP059001).",
    )
    is_active = BooleanField("Structure active", default=True)
    submit = SubmitField("Enregistrer")


def _organisation_form(form: OrganisationForm) -> None:
    deps = db.session.scalars(sa.select(Department).order_by(Department.code))
    form.department_code.choices = options([(d.code, f"{d.code} — {d.name}") for d in deps])
    cites = db.session.scalars(sa.select(CiteEducative).order_by(CiteEducative.name))
    form.cite_educative.choices = options(
        [("", "—")] + [(c.code, f"{c.name} ({c.department_code})") for c in cites]
    )


def _organisation_data(form: OrganisationForm) -> OrganisationData:
    codes = [c for c in (form.qpvs.data or "").replace(",", " ").replace(";", " ").split() if c]
    return OrganisationData(
        kind=OrganisationKind(form.kind.data),
        name=form.name.data,
        department_code=form.department_code.data,
        uai=form.uai.data or "",
        address=form.address.data or "",
        postal_code=form.postal_code.data or "",
        city=form.city.data or "",
        cite_educative_code=form.cite_educative.data or "",
        qpv_codes=codes,
        is_active=form.is_active.data,
    )


@bp.route("/structures")
@permission(Permission.MANAGE_REFERENTIAL)
def organisations():
    """Associations, schools, warehouses and prefectures."""
    rows = db.session.scalars(
        sa.select(Organisation)
        .options(selectinload(Organisation.qpvs))
        .order_by(Organisation.department_code, Organisation.name)
    ).all()
    return render_template("admin/organisations.html", organisations=rows)


@bp.route("/structures/nouvelle", methods=["GET", "POST"])
@permission(Permission.MANAGE_REFERENTIAL)
def organisation_new():
    """Create an organisation."""
    form = OrganisationForm()
    _organisation_form(form)
    if form.validate_on_submit():
        _, error = _save(
            lambda: referential.save_organisation(db.session, _organisation_data(form), by=g.user),
            "Structure créée.",
            "admin/organisation_form.html",
            form=form,
            organisation=None,
        )
        return error or redirect(url_for("admin.organisations"))
    return render_template("admin/organisation_form.html", form=form, organisation=None)


@bp.route("/structures/<int:organisation_id>", methods=["GET", "POST"])
@permission(Permission.MANAGE_REFERENTIAL)
def organisation_edit(organisation_id: int):
    """Edit an organisation and the QPVs it serves."""
    org = _get(Organisation, organisation_id)
    form = OrganisationForm(obj=None if request.method == "POST" else org)
    _organisation_form(form)
    if request.method == "GET":
        form.kind.data = org.kind.value
        form.uai.data = org.uai or ""
        form.cite_educative.data = org.cite_educative_code or ""
        form.qpvs.data = " ".join(q.code for q in org.qpvs)
    if form.validate_on_submit():
        _, error = _save(
            lambda: referential.save_organisation(
                db.session, _organisation_data(form), by=g.user, organisation=org
            ),
            "Structure mise à jour.",
            "admin/organisation_form.html",
            form=form,
            organisation=org,
        )
        return error or redirect(url_for("admin.organisations"))
    return render_template("admin/organisation_form.html", form=form, organisation=org)


# ---------------------------------------------------------------- QPV referential


class QpvImportForm(FlaskForm):
    file = FileField(
        "Fichier CSV des QPV",
        validators=[
            FileRequired("Choisissez un fichier."),
            FileAllowed(["csv", "txt"], "Un fichier .csv est attendu."),
        ],
        description="Colonnes de la liste nationale : code_qp, lib_qp, insee_dep, lib_dep, insee_reg, "
        "lib_reg, insee_com, lib_com. Codes 2015 (QP059001) et 2024 (QN05901M).",
    )
    submit = SubmitField("Importer")


@bp.route("/qpv", methods=["GET", "POST"])
@permission(Permission.MANAGE_REFERENTIAL)
def qpvs():
    """The QPV referential, searchable, with its CSV import."""
    form = QpvImportForm()
    rejection = None
    status = 200
    if form.validate_on_submit():
        data = form.file.data.read()
        db.session.commit()  # the file is read and checked before the write lock is taken (imports.py)
        try:
            report = referential.import_qpv(db.session, data, by=g.user)
        except ImportRejected as exc:
            db.session.rollback()
            flash(exc.message, "error")
            rejection, status = exc, 422
        else:
            db.session.commit()
            flash(
                f"QPV importés : {report.created} créés, {report.updated} mis à jour, "
                f"{report.unchanged} inchangés.",
                "success",
            )
            return redirect(url_for("admin.qpvs"))
    args = {"q": request.args.get("q", "").strip(), "dep": request.args.get("dep", "").strip()}
    query = sa.select(Qpv).order_by(Qpv.code)
    if args["q"]:
        like = f"%{args['q']}%"
        query = query.where(sa.or_(Qpv.code.ilike(like), Qpv.name.ilike(like), Qpv.commune_names.ilike(like)))
    if args["dep"]:
        query = query.where(Qpv.department_code == args["dep"].upper())
    page = paginate(
        db.session, query, per_page=current_app.config["PAGE_SIZE"], endpoint="admin.qpvs", args=args
    )
    deps = db.session.scalars(sa.select(Department).order_by(Department.code)).all()
    return render_template(
        "admin/qpvs.html", page=page, args=args, form=form, rejection=rejection, departments=deps
    ), status


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
        _, error = _save(
            lambda: money.save_envelope(db.session, _envelope_data(form), by=g.user),
            "Enveloppe créée.",
            "admin/envelope_form.html",
            form=form,
            envelope=None,
        )
        return error or redirect(url_for("admin.envelopes"))
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
        _, error = _save(
            lambda: money.save_envelope(db.session, _envelope_data(form), by=g.user, envelope=env),
            "Enveloppe mise à jour.",
            "admin/envelope_form.html",
            form=form,
            envelope=env,
        )
        return error or redirect(url_for("admin.envelopes"))
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
        saved, error = _save(
            lambda: money.save_lot(db.session, _lot_data(form, models), by=g.user, lot=lot),
            "Lot enregistré.",
            "admin/lot_form.html",
            **context,
        )
        return error or redirect(url_for("admin.lots"))
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
