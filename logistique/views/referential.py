"""Administration of the referential: organisations and the QPV list."""

from __future__ import annotations

import sqlalchemy as sa
from flask import current_app, g, redirect, render_template, request, url_for
from flask_wtf.file import FileAllowed, FileField, FileRequired
from sqlalchemy.orm import selectinload
from wtforms import (
    BooleanField,
    SelectField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, Optional

from ..access import permission
from ..db import db
from ..domain import referential
from ..domain.errors import ImportRejected
from ..domain.referential import OrganisationData
from ..domain.scope import Permission
from ..models import (
    CiteEducative,
    Department,
    Organisation,
    OrganisationKind,
    Qpv,
)
from .admin import _get, bp
from .boundary import commit
from .forms import Form as FlaskForm
from .forms import options
from .paging import paginate

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
        if not commit(
            lambda: referential.save_organisation(db.session, _organisation_data(form), by=g.user),
            "Structure créée.",
        ):
            return render_template("admin/organisation_form.html", form=form, organisation=None), 422
        return redirect(url_for("admin.organisations"))
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
        if not commit(
            lambda: referential.save_organisation(
                db.session, _organisation_data(form), by=g.user, organisation=org
            ),
            "Structure mise à jour.",
        ):
            return render_template("admin/organisation_form.html", form=form, organisation=org), 422
        return redirect(url_for("admin.organisations"))
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
    errors = []
    status = 200
    if form.validate_on_submit():
        done = commit(
            lambda: referential.import_qpv(db.session, form.file.data.read(), by=g.user),
            lambda report: f"QPV importés : {report.created} créés, {report.updated} mis à jour, "
            f"{report.unchanged} inchangés.",
            catch=ImportRejected,
        )
        if done:
            return redirect(url_for("admin.qpvs"))
        errors, status = done.error.errors, 422
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
        "admin/qpvs.html", page=page, args=args, form=form, errors=errors, departments=deps
    ), status
