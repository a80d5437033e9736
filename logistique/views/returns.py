"""End of loan (blueprint ``returns``): the coordinator scans what a family brings back and records the
restitution (with the family's receipt), then sends the returned devices back to their warehouse on a return
slip, which the warehouse receives by scanning each device after its check. The rules are the domain's
(``domain/returns.py``)."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, g, redirect, render_template, request, url_for
from wtforms import RadioField, StringField, SubmitField
from wtforms.validators import Length

from .. import pdf
from ..access import any_role, roles
from ..db import db
from ..domain import paperwork, return_slips, returns
from ..domain.errors import NotFound
from ..models import DeviceStatus, Organisation, Role, SlipStatus
from .boundary import commit
from .forms import Form, device_code_field, options
from .scanning import form_refusal, idempotent_scan, offline_page, scan_answer, wants_json
from .slips import _pdf

bp = Blueprint("returns", __name__)

COORDINATOR = Role.COORDINATOR
ON_RETURN_SLIPS = (Role.COORDINATOR, Role.WAREHOUSE, Role.ADMIN, Role.PREFECTURE)
RETURN_STATES = {state.value for state in returns.RETURN_ACTIONS}
CHECK_VALUES = {outcome.value for outcome in return_slips.CHECK_OUTCOMES}


class ReturnScanForm(Form):
    code = device_code_field("Équipement rendu")
    state = RadioField(
        "État",
        choices=options(
            [
                (DeviceStatus.RETURNED.value, "Rendu en bon état"),
                (DeviceStatus.DEFECTIVE.value, "Rendu défectueux (motif obligatoire)"),
            ]
        ),
        default=DeviceStatus.RETURNED.value,
    )
    reason = StringField("Motif (si défectueux)", validators=[Length(max=500)])
    submit = SubmitField("Ajouter à la restitution")


class CheckScanForm(Form):
    code = device_code_field("Équipement contrôlé")
    outcome = RadioField(
        "Résultat du contrôle",
        choices=options(
            [
                (DeviceStatus.IN_STOCK.value, "Bon état : remettre en stock"),
                (DeviceStatus.DEFECTIVE.value, "Défectueux (défaut obligatoire)"),
                (
                    DeviceStatus.LOST.value,
                    "Manquant dans le colis : tapez son numéro (commentaire obligatoire)",
                ),
            ]
        ),
        default=DeviceStatus.IN_STOCK.value,
    )
    comment = StringField("Défaut constaté ou ce qui manque", validators=[Length(max=500)])
    submit = SubmitField("Enregistrer le contrôle")


# ---------------------------------------------------------------- the family brings devices back


@bp.route("/retours")
@roles(COORDINATOR)
def returns_page():
    """Scan what the family brings back, then record the restitution at once. Not kept offline: the draft
    names the pupil."""
    draft = returns.open_draft(db.session, g.user)
    return render_template(
        "returns/scan.html",
        form=ReturnScanForm(),
        draft=draft,
        recent=returns.recent(db.session, g.user),
        held=return_slips.held_count(db.session, g.user.organisation_id),
    )


@bp.route("/retours/scan", methods=["POST"])
@roles(COORDINATOR)
@idempotent_scan
def return_scan():
    """One device scanned on the returns page: it joins the draft restitution (JSON for scan.js)."""
    form = ReturnScanForm()
    as_json = wants_json()
    if not form.validate_on_submit():
        if as_json:
            return form_refusal(form)
        for errors in form.errors.values():
            for error in errors:
                flash(error, "error")
        return redirect(url_for("returns.returns_page"))
    state = DeviceStatus(form.state.data) if form.state.data in RETURN_STATES else DeviceStatus.RETURNED
    result = commit(
        lambda: returns.scan(
            db.session, form.code.data, state=state, reason=form.reason.data or "", by=g.user
        ),
        catch=(),
    ).value
    if as_json:
        return scan_answer(result)
    flash(result.message, {"picked": "success", "already": "info", "refused": "error"}[result.outcome])
    return redirect(url_for("returns.returns_page"))


@bp.route("/retours/lignes/<int:restitution_line_id>/retirer", methods=["POST"])
@roles(COORDINATOR)
def return_remove_line(restitution_line_id: int):
    """Take a device scanned by mistake off the draft restitution."""
    draft = returns.open_draft(db.session, g.user)
    if draft is None:
        raise NotFound("Aucune restitution en cours.")
    commit(
        lambda: returns.remove_device(db.session, draft, restitution_line_id, by=g.user), "Équipement retiré."
    )
    return redirect(url_for("returns.returns_page"))


@bp.route("/retours/enregistrer", methods=["POST"])
@roles(COORDINATOR)
def return_record():
    """Record the draft: every device scanned becomes retourné or défectueux, in one go."""
    draft = returns.open_draft(db.session, g.user)
    if draft is None:
        flash("Aucune restitution en cours : scannez d'abord les équipements rendus.", "error")
        return redirect(url_for("returns.returns_page"))
    done = commit(
        lambda: returns.record(db.session, draft, by=g.user),
        lambda r: f"Restitution {r.number} enregistrée. Imprimez ou téléchargez le reçu de la famille.",
    )
    if done:
        return redirect(url_for("returns.restitution_detail", restitution_id=done.value.id))
    return redirect(url_for("returns.returns_page"))


@bp.route("/restitutions/<int:restitution_id>")
@roles(COORDINATOR)
def restitution_detail(restitution_id: int):
    """A recorded restitution and the link to the family's receipt."""
    restitution = returns.get_restitution(db.session, g.user, restitution_id)
    return render_template("returns/restitution.html", restitution=restitution)


@bp.route("/restitutions/<int:restitution_id>/recu.pdf")
@roles(COORDINATOR)
def restitution_receipt(restitution_id: int):
    """The family's restitution receipt (it names the pupil: coordinators of the organisation only)."""
    restitution = returns.get_restitution(db.session, g.user, restitution_id)
    document = paperwork.restitution_document(restitution)
    return _pdf(pdf.restitution_pdf(document), f"{restitution.number}.pdf", inline=False)


# ---------------------------------------------------------------- return slips


def _return_slip(return_number: str):
    return return_slips.get_return_slip(db.session, g.user, number=return_number)


@bp.route("/r/<return_token>")
@any_role
def return_landing(return_token: str):
    """What a return slip's QR code opens: the warehouse's reception page, or the slip itself."""
    found = return_slips.from_token(db.session, current_app.config["SECRET_KEY"], return_token)
    found = return_slips.get_return_slip(db.session, g.user, slip_id=found.id)
    if g.user.role is Role.WAREHOUSE:
        return redirect(url_for("returns.return_slip_reception", return_number=found.number))
    return redirect(url_for("returns.return_slip_detail", return_number=found.number))


@bp.route("/retours/bordereaux")
@roles(*ON_RETURN_SLIPS)
def return_slip_list():
    """Return slips in scope: the organisation's, the warehouse's to receive, the territory's."""
    return render_template(
        "returns/slips.html", slips=return_slips.list_return_slips(db.session, g.user), statuses=SlipStatus
    )


@bp.route("/retours/bordereaux/nouveau", methods=["GET", "POST"])
@roles(COORDINATOR)
def return_slip_new():
    """Choose the returned devices to send back (one warehouse per return slip), then issue the slip."""
    organisation = db.session.get(Organisation, g.user.organisation_id)
    held = return_slips.held(db.session, g.user.organisation_id)
    status = 200
    if request.method == "POST":
        if not Form().validate_on_submit():
            status = 400
        else:
            chosen = [int(v) for v in request.form.getlist("line") if v.isdigit()]
            done = commit(
                lambda: return_slips.create_return_slip(
                    db.session, organisation=organisation, line_ids=chosen, by=g.user, issue=True
                ),
                lambda s: f"Bordereau de retour {s.number} émis : imprimez-le et mettez-le dans le colis.",
            )
            if done:
                return redirect(url_for("returns.return_slip_detail", return_number=done.value.number))
            status = done.status
    groups: dict[int, list] = {}
    for line in held:
        groups.setdefault(line.device.warehouse_id, []).append(line)
    return render_template("returns/slip_new.html", groups=list(groups.values()), form=Form()), status


@bp.route("/retours/bordereaux/<return_number>")
@roles(*ON_RETURN_SLIPS)
def return_slip_detail(return_number: str):
    """A return slip: its devices (pupil references only), its journal, and what the user may do next."""
    return render_template("returns/slip_detail.html", rslip=_return_slip(return_number), form=Form())


@bp.route("/retours/bordereaux/<return_number>/expedier", methods=["POST"])
@roles(COORDINATOR)
def return_slip_ship(return_number: str):
    """The return parcel leaves the organisation."""
    rslip = _return_slip(return_number)
    commit(
        lambda: return_slips.ship_return_slip(db.session, rslip, by=g.user), "Bordereau de retour expédié."
    )
    return redirect(url_for("returns.return_slip_detail", return_number=return_number))


@bp.route("/retours/bordereaux/<return_number>/annuler", methods=["POST"])
@roles(COORDINATOR)
def return_slip_cancel(return_number: str):
    """Cancel a return slip before it leaves: its devices wait to be sent again."""
    rslip = _return_slip(return_number)
    commit(
        lambda: return_slips.cancel_return_slip(db.session, rslip, by=g.user), "Bordereau de retour annulé."
    )
    return redirect(url_for("returns.return_slip_detail", return_number=return_number))


@bp.route("/retours/bordereaux/<return_number>.pdf")
@roles(*ON_RETURN_SLIPS)
def return_slip_pdf(return_number: str):
    """The return slip as printed, with its QR code (pupil references only)."""
    rslip = _return_slip(return_number)
    document = paperwork.return_slip_document(
        rslip, base_url=current_app.config["BASE_URL"], secret=current_app.config["SECRET_KEY"]
    )
    return _pdf(pdf.slip_pdf(document), f"{rslip.number}.pdf")


@bp.route("/retours/bordereaux/<return_number>/reception")
@roles(Role.WAREHOUSE, Role.ADMIN)
@offline_page
def return_slip_reception(return_number: str):
    """The warehouse's phone page: scan each device of the return parcel after checking it."""
    return render_template("returns/reception.html", rslip=_return_slip(return_number), form=CheckScanForm())


@bp.route("/retours/bordereaux/<return_number>/reception/scan", methods=["POST"])
@roles(Role.WAREHOUSE, Role.ADMIN)
@idempotent_scan
def return_slip_check(return_number: str):
    """One device of the return parcel checked: back in stock, or defective with the reason."""
    rslip = _return_slip(return_number)
    form = CheckScanForm()
    as_json = wants_json()
    if not form.validate_on_submit():
        if as_json:
            return form_refusal(form)
        for errors in form.errors.values():
            for error in errors:
                flash(error, "error")
        return redirect(url_for("returns.return_slip_reception", return_number=return_number))
    outcome = DeviceStatus(form.outcome.data) if form.outcome.data in CHECK_VALUES else DeviceStatus.IN_STOCK
    result = commit(
        lambda: return_slips.check_device(
            db.session, rslip, form.code.data, outcome=outcome, comment=form.comment.data or "", by=g.user
        ),
        catch=(),
    ).value
    if as_json:
        return scan_answer(result)
    flash(result.message, {"picked": "success", "already": "info", "refused": "error"}[result.outcome])
    return redirect(url_for("returns.return_slip_reception", return_number=return_number))
