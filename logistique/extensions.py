"""Flask extensions, created unbound and attached by the app factory."""

from __future__ import annotations

import time

from flask import current_app, session
from flask_login import LoginManager
from flask_wtf import CSRFProtect

from .db import db

csrf = CSRFProtect()
login_manager = LoginManager()
login_manager.login_view = "auth.login"
login_manager.login_message = "Connectez-vous pour accéder à cette page."
login_manager.login_message_category = "info"
login_manager.session_protection = "strong"


@login_manager.user_loader
def load_user(user_id: str):
    """The active account with that id, or None (an unknown or disabled id logs the browser out). A session
    cookie is refused once the account's sessions were ended (logout, password change, deactivation) or once
    it is older than the session lifetime, even if it was copied elsewhere."""
    from .domain import accounts

    if not user_id.isdigit():
        return None
    database = db.session
    # on SQLite, a writing request takes the write lock after this, not for it
    row = accounts.USER_BY_ID.mapping(db.read_first(accounts.USER_BY_ID, {"user_id": int(user_id)}))
    if row is None or not row["is_active"] or (row["is_demo"] and not current_app.config["DEMO_MODE"]):
        return None
    if session.get(SESSION_VERSION) != row["session_version"] or not _within_lifetime():
        return None
    return accounts.attach_user(database, row)


SESSION_VERSION = "_sv"
LOGGED_IN_AT = "_at"


def start_session(user) -> None:
    """Stamp the session cookie with the account's session version and the login time."""
    session.permanent = True
    session[SESSION_VERSION] = user.session_version
    session[LOGGED_IN_AT] = int(time.time())


def _within_lifetime() -> bool:
    started = session.get(LOGGED_IN_AT)
    lifetime = current_app.permanent_session_lifetime.total_seconds()
    return isinstance(started, int) and 0 <= time.time() - started <= lifetime
