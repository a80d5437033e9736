"""Login and logout."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, g, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user
from wtforms import EmailField, PasswordField, SubmitField
from wtforms.validators import DataRequired, Length

from ..access import any_role, public
from ..db import db
from ..domain import accounts
from ..extensions import start_session
from .boundary import commit
from .forms import Form as FlaskForm

bp = Blueprint("auth", __name__)


class LoginForm(FlaskForm):
    email = EmailField(
        "Adresse électronique",
        validators=[DataRequired("Indiquez votre adresse."), Length(max=254)],
        render_kw={"autocomplete": "username", "autofocus": True},
    )
    password = PasswordField(
        "Mot de passe",
        validators=[DataRequired("Indiquez votre mot de passe.")],
        render_kw={"autocomplete": "current-password"},
    )
    submit = SubmitField("Se connecter")


def safe_next(target: str | None) -> str | None:
    """``target`` when it is a path inside the app, else None (no open redirect)."""
    if not target:
        return None
    target = target.strip()
    parts = urlsplit(target)
    if (
        parts.scheme
        or parts.netloc
        or not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
    ):
        return None
    return target


def pause(seconds: float) -> None:
    """Make a throttled address wait before its answer (a test replaces this to measure it)."""
    if seconds > 0:
        time.sleep(seconds)


@bp.route("/login", methods=["GET", "POST"])
@public
def login():
    """Log in with e-mail and password, then go back to where the user was going."""
    next_url = safe_next(request.args.get("next"))
    if current_user.is_authenticated:
        return redirect(next_url or url_for("main.home"))
    form = LoginForm()
    if form.validate_on_submit():
        result = accounts.authenticate(
            db.session,
            email=form.email.data,
            password=form.password.data,
            client=request.remote_addr or "?",
            demo_mode=current_app.config["DEMO_MODE"],
            max_failures=current_app.config["LOGIN_MAX_FAILURES"],
            lock_seconds=current_app.config["LOGIN_LOCK_SECONDS"],
        )
        db.session.commit()  # failures are recorded too: they slow down guessing
        pause(result.delay)
        if result.user is None:
            flash(result.message, "error")
            return render_template("auth/login.html", form=form), 401
        login_user(result.user)
        start_session(result.user)
        flash(f"Bonjour {result.user.display_name}.", "success")
        return redirect(next_url or url_for("main.home"))
    return render_template("auth/login.html", form=form)


@bp.route("/logout", methods=["POST"])
@any_role
def logout():
    """Log out (POST with CSRF, so that a link elsewhere cannot log the user out), on every device: a
    session lives in a signed cookie, so the server ends them all at once by bumping the account's session
    version; a copy of the cookie is refused from now on."""
    commit(lambda: accounts.end_sessions(g.user))
    logout_user()
    session.clear()  # nothing of this user (flashed messages included) is left for the next one
    flash("Vous êtes déconnecté.", "info")
    return redirect(url_for("auth.login"))
