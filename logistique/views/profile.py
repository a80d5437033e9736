"""The account page: who I am, and which e-mails I want to receive."""

from __future__ import annotations

from flask import Blueprint, g, redirect, render_template, request, url_for
from wtforms import BooleanField, SubmitField

from ..access import any_role
from ..domain import notifications
from ..models import Role
from .boundary import commit
from .forms import Form

bp = Blueprint("profile", __name__)


class NotificationForm(Form):
    notify_by_email = BooleanField("Recevoir les notifications par e-mail")
    weekly_summary = BooleanField("Recevoir chaque lundi la synthèse d'une page de mon territoire (PDF)")
    submit = SubmitField("Enregistrer")


@bp.route("/compte", methods=["GET", "POST"])
@any_role
def account():
    """Show the account and change its notification preferences."""
    user = g.user
    # on POST the boxes say it all (an unticked box is absent from the form, not "unchanged")
    form = NotificationForm(obj=user if request.method == "GET" else None)
    if form.validate_on_submit():
        commit(
            lambda: notifications.set_preferences(
                user, by_email=form.notify_by_email.data, weekly_summary=form.weekly_summary.data
            ),
            lambda _: (
                "Préférences enregistrées : "
                + (
                    "vous recevrez les notifications."
                    if user.notify_by_email
                    else "plus aucun e-mail ne vous sera envoyé."
                )
            ),
        )
        return redirect(url_for("profile.account"))
    return render_template(
        "profile/account.html", form=form, user=user, is_prefecture=user.role is Role.PREFECTURE
    )
