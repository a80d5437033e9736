"""Prefecture and admin side: the census of needs, and the allocation plan (compute, adjust, apply)."""

from __future__ import annotations

import json

import sqlalchemy as sa
from flask import Blueprint, g, redirect, render_template, request, url_for
from wtforms import SelectField, SubmitField

from ..access import roles
from ..db import db
from ..domain import allocation, census, scope, status
from ..domain.errors import DomainError
from ..exports import csv_bytes, download, xlsx_bytes
from ..models import AllocationPlan, NeedKind, PlanStatus, Region
from .boundary import commit
from .forms import Form, options, parse_count

bp = Blueprint("census", __name__)

_KINDS = list(NeedKind)


def _census_table(rows: list[census.CensusRow]) -> tuple[list[str], list[list]]:
    level = {"region": "Région", "department": "Département", "qpv": "QPV"}
    headers = ["Niveau", "Code", "Nom", "Département", "Signalement"]
    headers += [f"Besoins {k.label_lower}" for k in _KINDS] + ["Besoins total"]
    headers += [f"Attribués {k.label_lower}" for k in _KINDS] + ["Attribués total"]
    body = [
        [
            level[r.level],
            r.code,
            r.name,
            r.department,
            "" if r.level != "qpv" or r.has_reported else status.SILENT,
            *[r.needs[k] for k in _KINDS],
            r.total_needs,
            *[r.assigned[k] for k in _KINDS],
            r.total_assigned,
        ]
        for r in rows
    ]
    return headers, body


@bp.route("/recensement")
@roles(*scope.OVERSIGHT)
def census_page():
    """Needs aggregated QPV → department → region, as the circular asks prefects to report them."""
    rows = census.census(db.session, by=g.user)
    return render_template("census/census.html", rows=rows, kinds=_KINDS)


@bp.route("/recensement.<any(csv, xlsx):fmt>")
@roles(*scope.OVERSIGHT)
def census_export(fmt: str):
    """The census as CSV (;, UTF-8 BOM) or XLSX."""
    headers, body = _census_table(census.census(db.session, by=g.user))
    if fmt == "csv":
        return download(csv_bytes(headers, body), "recensement-besoins.csv")
    return download(xlsx_bytes("Recensement", headers, body), "recensement-besoins.xlsx")


class ComputeForm(Form):
    region = SelectField("Région")
    submit = SubmitField("Calculer une proposition")


@bp.route("/admin/repartition", methods=["GET", "POST"])
@roles(*scope.STAFF)
def plans():
    """Allocation plans, and computing a new proposal from needs, stock and money left."""
    form = ComputeForm()
    form.region.choices = options(
        (r.code, f"{r.code} — {r.name}") for r in db.session.scalars(sa.select(Region).order_by(Region.code))
    )
    if form.validate_on_submit():
        done = commit(
            lambda: allocation.compute_plan(db.session, form.region.data, by=g.user),
            "Proposition calculée : vérifiez-la, ajustez-la si besoin, puis appliquez-la.",
        )
        if done:
            return redirect(url_for("census.plan_detail", plan_id=done.value.id))
    rows = db.session.scalars(sa.select(AllocationPlan).order_by(AllocationPlan.id.desc())).all()
    return render_template("census/plans.html", plans=rows, form=form)


class PlanForm(Form):
    save = SubmitField("Enregistrer les ajustements")
    apply = SubmitField("Appliquer ce plan")


@bp.route("/admin/repartition/<int:plan_id>", methods=["GET", "POST"])
@roles(*scope.STAFF)
def plan_detail(plan_id: int):
    """Review a plan line by line, adjust quotas, apply it."""
    plan = allocation.get_plan(db.session, plan_id)
    form = PlanForm()
    status = 200
    if form.validate_on_submit():
        quotas, problems = {}, []
        for line in plan.lines:
            raw = request.form.get(f"quota_{line.id}")
            if raw is None:
                continue
            quota = parse_count(raw)
            if quota is None:
                problems.append(f"{line.qpv_code} : « {raw} » n'est pas un nombre")
            else:
                quotas[line.id] = quota
        def save() -> None:
            if problems:
                raise DomainError("Quotas refusés — " + " ; ".join(problems) + ".")
            if plan.status is PlanStatus.DRAFT and quotas:
                allocation.adjust(db.session, plan, quotas, by=g.user)
            if form.apply.data:
                allocation.apply(db.session, plan, by=g.user)

        if commit(
            save,
            "Plan appliqué : ses quotas limitent désormais les attributions."
            if form.apply.data
            else "Ajustements enregistrés.",
        ):
            return redirect(url_for("census.plan_detail", plan_id=plan.id))
        status = 422
    inputs = json.loads(plan.note) if plan.note else {}
    return render_template(
        "census/plan.html",
        plan=plan,
        rows=allocation.plan_rows(db.session, plan),
        form=form,
        inputs=inputs,
        kinds=_KINDS,
    ), status


@bp.route("/admin/repartition/<int:plan_id>.<any(csv, xlsx):fmt>")
@roles(*scope.STAFF)
def plan_export(plan_id: int, fmt: str):
    """A plan as CSV or XLSX."""
    plan = allocation.get_plan(db.session, plan_id)
    headers = ["Département", "QPV", "Nom du QPV", "Type", "Besoin", "Proposé", "Quota"]
    body = [
        [
            r["department"],
            r["line"].qpv_code,
            r["qpv"].name,
            r["line"].kind.label,
            r["line"].need,
            r["line"].proposed,
            r["line"].quota,
        ]
        for r in allocation.plan_rows(db.session, plan)
    ]
    name = f"plan-repartition-{plan.region_code}-{plan.id}.{fmt}"
    if fmt == "csv":
        return download(csv_bytes(headers, body), name)
    return download(xlsx_bytes("Répartition", headers, body), name)
