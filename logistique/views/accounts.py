"""Administration of accounts: who may log in, with which role and scope."""

from __future__ import annotations

import sqlalchemy as sa
from flask import flash, g, redirect, render_template, request, url_for
from wtforms import (
    BooleanField,
    EmailField,
    PasswordField,
    SelectField,
    StringField,
    SubmitField,
)
from wtforms.validators import DataRequired, Length, Optional

from ..access import permission
from ..db import db
from ..domain import accounts
from ..domain.scope import Permission
from ..models import (
    Organisation,
    Role,
    User,
)
from .admin import _get, bp
from .boundary import commit
from .forms import Form as FlaskForm
from .forms import options

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

        done = commit(create, "Compte créé.")
        if not done:
            return render_template("admin/user_form.html", form=form, user=None), 422
        if not form.password.data:
            email = done.value.email
            flash(f"Mot de passe de {email}, à transmettre par un canal sûr : {password}", "warning")
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

        if not commit(update, "Compte mis à jour."):
            return render_template("admin/user_form.html", form=form, user=user), 422
        return redirect(url_for("admin.users"))
    return render_template("admin/user_form.html", form=form, user=user)
