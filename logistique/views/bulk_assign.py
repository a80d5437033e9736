"""Equipping a class: scan device after device (each goes to the next waiting pupil), or review an automatic
proposal and confirm it all at once. Coordinators of an organisation only; the rules are the domain's."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from flask import Blueprint, g, redirect, render_template, request, url_for
from sqlalchemy.orm import joinedload
from wtforms import IntegerField, SubmitField
from wtforms.validators import DataRequired, NumberRange

from ..access import roles
from ..db import db, utcnow
from ..domain import assignments, bulk_assign, pupils
from ..domain.errors import DomainError
from ..models import Assignment, DeviceStatus, Role
from .boundary import commit
from .forms import Form, device_code_field
from .scanning import assigned_answer, form_refusal, idempotent_scan, wants_json

bp = Blueprint("bulk", __name__)


class ScanForm(Form):
    code = device_code_field("Équipement")
    submit = SubmitField("Attribuer au prochain élève")


class ProposalForm(Form):
    count = IntegerField(
        "Nombre d'équipements à attribuer",
        default=20,
        validators=[
            DataRequired("Indiquez un nombre."),
            NumberRange(1, bulk_assign.PROPOSAL_MAX, f"Entre 1 et {bulk_assign.PROPOSAL_MAX}."),
        ],
    )
    submit = SubmitField("Proposer")


def _recent() -> list[Assignment]:
    """What this coordinator assigned in the last two hours and can still undo, newest first."""
    return list(
        db.session.scalars(
            sa.select(Assignment)
            .where(
                Assignment.created_by_id == g.user.id,
                Assignment.cancelled_at.is_(None),
                Assignment.device_status == DeviceStatus.ASSIGNED,
                Assignment.created_at >= utcnow() - timedelta(hours=2),
            )
            .options(joinedload(Assignment.device), joinedload(Assignment.pupil))
            .order_by(Assignment.id.desc())
            .limit(20)
        )
    )


def _assigned(a: Assignment) -> str:
    return f"{a.device.serial} attribué à {a.pupil.reference} ({a.kind.label_lower})."


@bp.route("/attributions/scan", methods=["GET", "POST"])
@roles(Role.COORDINATOR)
@idempotent_scan
def scan_assign():
    """Scan after scan: each device to the pupil who has waited longest for that kind, with an undo."""
    form = ScanForm()
    status = 200
    as_json = wants_json()  # a scan sent by the page's offline queue (scan.js, camera or handheld)
    if form.validate_on_submit():
        done = commit(
            lambda: bulk_assign.assign_next(db.session, form.code.data, by=g.user),
            None if as_json else _assigned,
            flash_error=not as_json,
        )
        if as_json:
            return assigned_answer(done, _assigned)
        if done:
            return redirect(url_for("bulk.scan_assign"))
        status = done.status
    elif request.method == "POST":
        if as_json:
            return form_refusal(form)
        status = 400
    return render_template("bulk/scan.html", form=form, recent=_recent()), status


@bp.route("/attributions/scan/<int:assignment_id>/annuler", methods=["POST"])
@roles(Role.COORDINATOR)
def scan_undo(assignment_id: int):
    """Undo one scan: the assignment is cancelled, the device is back in stock, the pupil waits again."""
    assignment = assignments.get_assignment(db.session, g.user, assignment_id)
    commit(
        lambda: assignments.cancel(db.session, assignment, by=g.user, reason="Annulé (attribution par scan)"),
        lambda _: f"Annulé : {assignment.device.serial} est de retour en stock.",
    )
    return redirect(url_for("bulk.scan_assign"))


@bp.route("/attributions/proposition", methods=["GET", "POST"])
@roles(Role.COORDINATOR)
def proposal():
    """Ask for N devices: the proposal pairs the oldest waiting pupils with the region's stock (nothing is
    written); the coordinator reviews it, then confirms it on :func:`proposal_confirm`."""
    form = ProposalForm()
    lines: list[tuple[bulk_assign.Pair, object, str]] = []
    status = 200
    if form.validate_on_submit():
        try:
            pairs = bulk_assign.propose(db.session, by=g.user, count=form.count.data)
        except DomainError as exc:
            form.count.errors = [exc.message]
            status = exc.status
        else:
            lines = _review(pairs)
            db.session.rollback()
    elif request.method == "POST":
        status = 400
    asked = request.method == "POST"
    return render_template("bulk/proposal.html", form=form, lines=lines, asked=asked), status


def _review(pairs: list[bulk_assign.Pair]):
    """Each pair with its pupil (names: the coordinator's own organisation) and the device's model."""
    out = []
    for pair in pairs:
        pupil = pupils.get_pupil(db.session, g.user, reference=pair.pupil)
        device = bulk_assign.find_device(db.session, g.user, pair.serial)
        out.append((pair, pupil, device))
    return out


@bp.route("/attributions/proposition/confirmer", methods=["POST"])
@roles(Role.COORDINATOR)
def proposal_confirm():
    """Every line of the reviewed proposal is assigned, or none (if stock or money moved meanwhile)."""
    pairs = []
    for line in request.form.getlist("ligne")[: bulk_assign.PROPOSAL_MAX + 1]:
        reference, separator, serial = line.partition("|")
        if separator:
            pairs.append(bulk_assign.Pair(reference.strip(), serial.strip()))
    done = commit(
        lambda: bulk_assign.assign_all(db.session, pairs, by=g.user),
        lambda assigned: f"{len(assigned)} attribution(s) enregistrée(s), toutes ensemble.",
    )
    if done:
        return redirect(url_for("pupils.waiting_list"))
    return redirect(url_for("bulk.proposal"))
