"""Slips at their destination (blueprint slips): reception line by line, and the handover to the family
with the guardian's signature and the family's receipt."""

from __future__ import annotations

from flask import (
    abort,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from wtforms import HiddenField, RadioField, SelectField, StringField, SubmitField
from wtforms.validators import DataRequired, Length

from .. import pdf
from ..access import roles
from ..db import db
from ..domain import handover as handover_domain
from ..domain import paperwork, pupils, slips
from ..models import (
    HandoverMode,
    ReceptionState,
)
from .boundary import commit
from .forms import Form, options
from .slips import COORDINATION, ActionForm, _pdf, _slip, bp

# ---------------------------------------------------------------- destination: reception and handover


@bp.route("/bordereaux/<number>/reception", methods=["GET", "POST"])
@roles(*COORDINATION)
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
        done = commit(
            lambda: slips.receive(db.session, slip, lines, by=g.user),
            lambda changed: f"Réception enregistrée ({changed} ligne(s)).",
        )
        if done:
            return redirect(url_for("slips.slip_detail", number=slip.number))
        status = done.status
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
    ready = handover_domain.ready_devices(db.session, pupil)
    form = HandoverForm()
    status = 200
    if form.validate_on_submit():
        chosen = request.form.getlist("serial")  # nothing ticked is refused by the domain, never "all"
        done = commit(
            lambda: handover_domain.hand_over(
                db.session,
                pupil=pupil,
                serials=chosen,
                receiver_name=form.receiver_name.data,
                relation=form.relation.data,
                mode=HandoverMode(form.mode.data),
                signature=form.signature.data,
                by=g.user,
            ),
            lambda handover: f"Remise enregistrée ({handover.number}). Téléchargez le reçu de la famille.",
        )
        if done:
            return redirect(url_for("slips.handover_detail", handover_id=done.value.id))
        status = done.status
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
