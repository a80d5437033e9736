"""Flask extensions, created unbound and attached by the app factory."""

from __future__ import annotations

import sqlalchemy as sa
from flask import current_app
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
    """The active account with that id, or None (an unknown or disabled id logs the browser out)."""
    from .models import User

    if not user_id.isdigit():
        return None
    user = db.session.scalar(sa.select(User).where(User.id == int(user_id)))
    if user is None or not user.is_active or (user.is_demo and not current_app.config["DEMO_MODE"]):
        return None
    return user
