"""Coordinators' side: pupils, needs, waiting list, and assigning devices to pupils (phone first)."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, current_app, g, redirect, render_template, request, url_for
from flask_wtf.file import FileAllowed, FileField, FileRequired
from sqlalchemy.orm import joinedload
from wtforms import SelectField, SelectMultipleField, StringField, SubmitField, TextAreaField, widgets
from wtforms.validators import DataRequired, Length

from ..access import roles
from ..db import db
from ..domain import assignments, bulk_assign, census, pupils, scope
from ..domain.errors import Conflict, DomainError, ImportRejected
from ..domain.pupils import PupilData
from ..models import (
    Assignment,
    Need,
    NeedKind,
    Pupil,
    Qpv,
    Role,
)
from . import imports
from .boundary import commit
from .forms import Form, options, parse_count
from .paging import paginate
from .scanning import assigned_answer, form_refusal, idempotent_scan, wants_json

bp = Blueprint("pupils", __name__)

COORDINATION = scope.COORDINATION


class PupilForm(Form):
    first_name = StringField(
        "Prénom",
        validators=[DataRequired("Prénom obligatoire."), Length(max=100)],
        render_kw={"autocomplete": "off"},
    )
    last_name = StringField(
        "Nom",
        validators=[DataRequired("Nom obligatoire."), Length(max=100)],
        render_kw={"autocomplete": "off"},
    )
    grade = SelectField("Niveau", choices=options([(g, g) for g in pupils.GRADES]))
    school_uai = StringField(
        "UAI de l'établissement",
        validators=[DataRequired("UAI obligatoire."), Length(max=12)],
        description="7 chiffres et une lettre, ex. 0590123N.",
    )
    qpv = SelectField("QPV de résidence")
    guardian_name = StringField(
        "Responsable légal", validators=[DataRequired("Nom obligatoire."), Length(max=200)]
    )
    guardian_phone = StringField(
        "Téléphone du responsable",
        validators=[DataRequired("Téléphone obligatoire.")],
        render_kw={"inputmode": "tel", "autocomplete": "off"},
    )
    needs = SelectMultipleField(
        "Besoins",
        choices=options([(k.value, k.label) for k in NeedKind]),
        option_widget=widgets.CheckboxInput(),
        widget=widgets.ListWidget(prefix_label=False),
        validators=[DataRequired("Cochez au moins un besoin.")],
    )
    submit = SubmitField("Enregistrer l'élève")


def _org_qpvs() -> list[Qpv]:
    return list(g.user.organisation.qpvs) if g.user.organisation else []


@bp.route("/eleves", methods=["GET", "POST"])
@roles(*COORDINATION)
def pupil_list():
    """Pupils of the organisation (names for its coordinators, references for admins).

    A search by name is POSTed, so that a child's name never lands in a URL, the history or a server log."""
    values = request.form if request.method == "POST" else request.args
    args = {"q": request.form.get("q", "").strip()[:100], "qpv": values.get("qpv", "").strip()}
    query = (
        sa.select(Pupil).where(pupils.pupil_filter(g.user)).options(joinedload(Pupil.qpv)).order_by(Pupil.id)
    )
    if args["q"]:
        like = f"%{args['q']}%"
        if g.user.role is Role.COORDINATOR:
            query = query.where(
                sa.or_(Pupil.reference.ilike(like), Pupil.first_name.ilike(like), Pupil.last_name.ilike(like))
            )
        else:
            query = query.where(Pupil.reference.ilike(like))
    if args["qpv"]:
        query = query.where(Pupil.qpv_code == args["qpv"].upper())
    page = paginate(
        db.session,
        query,
        per_page=200 if args["q"] else current_app.config["PAGE_SIZE"],
        endpoint="pupils.pupil_list",
        args={"qpv": args["qpv"]},  # paging links carry the QPV filter, never the searched name
    )
    return render_template(
        "pupils/list.html", page=page, args=args, qpvs=_org_qpvs(), show_names=g.user.role is Role.COORDINATOR
    )


@bp.route("/eleves/nouveau", methods=["GET", "POST"])
@roles(Role.COORDINATOR)
def pupil_new():
    """Register a pupil of a QPV the organisation serves."""
    form = PupilForm()
    form.qpv.choices = options([(q.code, q.label) for q in _org_qpvs()])
    if form.validate_on_submit():
        data = PupilData(
            form.first_name.data,
            form.last_name.data,
            form.grade.data,
            form.school_uai.data,
            form.qpv.data,
            form.guardian_name.data,
            form.guardian_phone.data,
            form.needs.data,
        )
        done = commit(
            lambda: pupils.register_pupil(db.session, data, by=g.user),
            lambda pupil: f"Élève enregistré : {pupil.reference}.",
        )
        if not done:
            return render_template("pupils/form.html", form=form), 422
        return redirect(url_for("pupils.pupil_detail", pupil_id=done.value.id))
    return render_template("pupils/form.html", form=form)


class ImportForm(Form):
    file = FileField(
        "Fichier des élèves (CSV ou Excel)",
        validators=[
            FileRequired("Choisissez un fichier."),
            FileAllowed(["csv", "txt", "xlsx"], "Un fichier .csv ou .xlsx est attendu."),
        ],
        description="Colonnes : prenom ; nom ; niveau ; uai ; qpv ; responsable_nom ; "
        "responsable_telephone ; besoins (tablette+connexion…).",
    )
    submit = SubmitField("Importer")


@bp.route("/eleves/import", methods=["GET", "POST"])
@roles(Role.COORDINATOR)
def pupil_import():
    """Import pupils from a CSV or .xlsx file: all or nothing, every bad row reported by line."""
    form = ImportForm()
    rejection = None
    if form.validate_on_submit():
        data = form.file.data.read()
        if imports.in_background(data):
            done = imports.queue(
                imports.PUPILS_IMPORT, data, title="Import d’élèves", params={}, what="élèves"
            )
            if done:
                return imports.job_page(done.value)
        else:
            done = commit(
                lambda: imports.check_then_write(
                    lambda session, user: pupils.check_pupils(session, data, by=user),
                    lambda session, checked: pupils.write_pupils(session, checked, by=g.user),
                ),
                imports.pupils_message,
                catch=(
                    ImportRejected,
                    Conflict,
                ),  # Conflict: children registered by someone else since the check
            )
            if done:
                return redirect(url_for("pupils.pupil_list"))
        if isinstance(done.error, ImportRejected):
            rejection = done.error
    return render_template("pupils/import.html", form=form, rejection=rejection), (422 if rejection else 200)


class AssignForm(Form):
    serial = StringField(
        "Numéro de série",
        validators=[DataRequired("Scannez ou tapez un numéro de série.")],
        render_kw={
            "autocomplete": "off",
            "autocapitalize": "characters",
            "spellcheck": "false",
            "data-autofocus-scan": True,
        },
    )
    submit = SubmitField("Attribuer")


def _assigned(assignment) -> str:
    return (
        f"{assignment.device.model.kind.label} {assignment.device.serial} attribué(e) à "
        f"{assignment.pupil.reference}."
    )


@bp.route("/eleves/<int:pupil_id>", methods=["GET", "POST"])
@roles(*COORDINATION)
@idempotent_scan
def pupil_detail(pupil_id: int):
    """A pupil, their assignments, and the assignment form: scan or type a serial, or pick from the stock."""
    pupil = pupils.get_pupil(db.session, g.user, pupil_id=pupil_id)
    form = AssignForm()
    status = 200
    if form.validate_on_submit():
        as_json = wants_json()  # a scan sent by the page's offline queue (scan.js)
        done = commit(
            lambda: assignments.assign(
                db.session,
                pupil=pupil,
                device=bulk_assign.find_device(db.session, g.user, form.serial.data),
                by=g.user,
            ),
            None if as_json else _assigned,
            flash_error=not as_json,
        )
        if as_json:
            return assigned_answer(done, _assigned)
        if done:
            return redirect(url_for("pupils.pupil_detail", pupil_id=pupil.id))
        status = done.status
    elif request.method == "POST" and wants_json():
        return form_refusal(form)
    return render_template(
        "pupils/detail.html",
        pupil=pupil,
        form=form,
        offer=assignments.available_devices(db.session, g.user, pupil),
        show_names=pupils.may_see_names(g.user, pupil),
        active=[a for a in pupil.assignments if a.cancelled_at is None],
    ), status


@bp.route("/attributions/<int:assignment_id>/annuler", methods=["POST"])
@roles(*COORDINATION)
def assignment_cancel(assignment_id: int):
    """Cancel an assignment before shipping: the device returns to stock."""
    assignment = assignments.get_assignment(db.session, g.user, assignment_id)
    commit(
        lambda: assignments.cancel(db.session, assignment, by=g.user),
        lambda _: f"Attribution annulée : {assignment.device.serial} est de retour en stock.",
    )
    return redirect(url_for("pupils.pupil_detail", pupil_id=assignment.pupil_id))


@bp.route("/attente")
@roles(*COORDINATION)
def waiting_list():
    """Pupils still without a device, by QPV and kind, oldest first."""
    waiting = pupils.waiting_list_query(g.user)
    args = {"qpv": request.args.get("qpv", "").strip().upper(), "type": request.args.get("type", "").strip()}
    query = (
        sa.select(Pupil, waiting.c.kind)
        .join(waiting, waiting.c.pupil_id == Pupil.id)
        .order_by(waiting.c.qpv_code, waiting.c.kind, waiting.c.created_at, Pupil.id)
    )
    if args["qpv"]:
        query = query.where(waiting.c.qpv_code == args["qpv"])
    if args["type"] in [k.value for k in NeedKind]:
        query = query.where(waiting.c.kind == args["type"])
    rows = db.session.execute(query.limit(500)).all()
    counts = dict(
        db.session.execute(sa.select(waiting.c.kind, sa.func.count()).group_by(waiting.c.kind)).all()
    )
    return render_template(
        "pupils/waiting.html",
        rows=[(p, NeedKind(k)) for p, k in rows],
        args=args,
        counts={NeedKind(k): n for k, n in counts.items()},
        qpvs=_org_qpvs(),
        show_names=g.user.role is Role.COORDINATOR,
    )


class NeedsForm(Form):
    submit = SubmitField("Enregistrer les besoins")


@bp.route("/besoins", methods=["GET", "POST"])
@roles(Role.COORDINATOR)
def needs():
    """Declare, per QPV served and kind, how many pupils lack a device (registered or not yet)."""
    org = g.user.organisation
    qpvs = _org_qpvs()
    form = NeedsForm()
    declared = {
        (n.qpv_code, n.kind): n.count
        for n in db.session.scalars(sa.select(Need).where(Need.organisation_id == org.id))
    }
    status = 200
    if form.validate_on_submit():
        counts, problems = {}, []
        for qpv in qpvs:
            for kind in NeedKind:
                raw = request.form.get(f"need_{qpv.code}_{kind.value}", "").strip() or "0"
                count = parse_count(raw)
                if count is None:
                    problems.append(f"{qpv.code} {kind.label_lower} : « {raw} » n'est pas un nombre")
                else:
                    counts[(qpv.code, kind)] = count

        def declare() -> int:
            if problems:
                raise DomainError("Besoins refusés — " + " ; ".join(problems) + ".")
            return census.declare_needs(db.session, org, counts, by=g.user)

        if commit(declare, lambda changed: f"Besoins enregistrés ({changed} ligne(s) modifiée(s))."):
            return redirect(url_for("pupils.needs"))
        status = 422
    registered = {}
    for kind, flag in (
        (NeedKind.TABLET, Pupil.needs_tablet),
        (NeedKind.LAPTOP, Pupil.needs_laptop),
        (NeedKind.CONNECTION, Pupil.needs_connection),
    ):
        for qpv, n in db.session.execute(
            sa.select(Pupil.qpv_code, sa.func.count())
            .where(Pupil.organisation_id == org.id, flag.is_(True))
            .group_by(Pupil.qpv_code)
        ):
            registered[(qpv, kind)] = n
    return render_template(
        "pupils/needs.html",
        form=form,
        qpvs=qpvs,
        kinds=list(NeedKind),
        declared=declared,
        registered=registered,
    ), status


__all__ = ["bp", "Assignment", "TextAreaField"]
