"""logistique: traceability of the devices handed to pupils of priority neighbourhoods (QPV)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from flask import Flask, abort, g, redirect, request, url_for
from flask_login import current_user

from . import config as config_module
from .db import db
from .extensions import csrf, login_manager

ROOT = Path(__file__).resolve().parent
log = logging.getLogger(__name__)


def create_app(overrides: dict[str, Any] | None = None) -> Flask:
    """Application factory: configuration, extensions and blueprints; no side effects."""
    app = Flask(
        __name__,
        template_folder=str(ROOT.parent / "templates"),
        static_folder=str(ROOT / "static"),
        instance_relative_config=True,
    )
    app.config.update(config_module.load(app.instance_path, overrides))

    from . import security

    security.init_app(app)
    db.init_app(app)
    csrf.init_app(app)
    login_manager.init_app(app)
    from . import mail, observability

    observability.init_app(app)
    mail.init_app(app)

    from . import formatting
    from .api import bp as api_bp
    from .cli import register_commands
    from .views import (
        admin,
        auth,
        board,
        bulk_assign,
        census,
        distribution,
        health,
        jobs,
        main,
        profile,
        pupils,
        returns,
        scanning,
        slips,
        stock,
        tokens,
    )

    formatting.register(app)
    views = (auth, main, admin, stock, pupils, census, slips, board, distribution, bulk_assign, tokens, jobs)
    views += (returns, scanning, health, profile)
    for blueprint in (*(view.bp for view in views), api_bp):
        app.register_blueprint(blueprint)
    csrf.exempt(api_bp)
    register_commands(app)

    app.before_request(_enforce_access)
    app.context_processor(_navigation)
    from .views.errors import register_error_handlers

    register_error_handlers(app)
    from . import busy

    busy.register(app)
    return app


def _enforce_access():
    """Fail closed: an endpoint without an access rule is refused; the rule's roles are checked here."""
    from .access import access_of

    endpoint = request.endpoint
    if endpoint is None or endpoint == "static":
        return None
    from flask import current_app

    rule = access_of(current_app.view_functions[endpoint])
    if rule is None:
        log.error("endpoint %s has no access rule: refused", endpoint)
        abort(500)
    if endpoint.startswith("api."):
        return None  # the API authenticates bearer tokens itself (api/__init__.py)
    if rule.is_public:
        return None
    if not current_user.is_authenticated:
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    if current_user.role not in rule.roles:
        abort(403)
    g.user = current_user._get_current_object()
    return None


def _navigation() -> dict[str, Any]:
    from .views.main import nav_items_for

    user = current_user if current_user and current_user.is_authenticated else None
    return {"nav_items": nav_items_for(user)}
