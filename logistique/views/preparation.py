"""Slips in the warehouse (blueprint slips): preparation by scanning on a phone, then shipping."""

from __future__ import annotations

from flask import (
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from wtforms import StringField, SubmitField
from wtforms.validators import DataRequired, Length

from ..access import roles
from ..db import db
from ..domain import slips
from .boundary import commit
from .forms import Form
from .scanning import idempotent_scan, offline_page
from .slips import WAREHOUSE, ActionForm, _act, _slip, bp

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
    form = ScanForm(meta={"csrf": False})  # checked once already, for every POST, by CSRFProtect
    wants_json = request.accept_mimetypes.best == "application/json"
    if not form.validate_on_submit():
        _slip(number)  # an unknown slip, or one out of scope, is 404 all the same
        message = "; ".join(e for errors in form.errors.values() for e in errors)
        if wants_json:
            return jsonify({"outcome": "refused", "message": message}), 400
        flash(message, "error")
        return redirect(url_for("slips.prepare", number=number))
    # a refused scan is an answer, not an error: it changes nothing and is committed like a pick
    result = commit(lambda: slips.pick_by_number(db.session, g.user, number, form.code.data), catch=()).value
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
