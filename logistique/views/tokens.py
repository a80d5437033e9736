"""API tokens: an admin sees every account's tokens (never their value) and revokes them."""

from __future__ import annotations

from flask import Blueprint, abort, g, redirect, render_template, url_for

from ..access import permission
from ..db import db
from ..domain import api_tokens
from ..domain.errors import Conflict
from ..domain.scope import Permission
from .boundary import commit
from .forms import Form

bp = Blueprint("tokens", __name__, url_prefix="/admin/jetons")


@bp.route("")
@permission(Permission.MANAGE_USERS)
def token_list():
    """Every API token: owner, prefix, label, dates and state, newest first."""
    tokens = api_tokens.list_tokens(db.session, by=g.user)
    return render_template("tokens/list.html", tokens=tokens, state=api_tokens.token_state)


@bp.route("/<int:token_id>/revoquer", methods=["POST"])
@permission(Permission.MANAGE_USERS)
def token_revoke(token_id: int):
    """Revoke one token: requests carrying it are refused from now on."""
    if not Form().validate_on_submit():
        abort(400)
    # an unknown token is a 404 (the error handler rolls back); revoking twice is told on the list
    commit(
        lambda: api_tokens.revoke_token(db.session, token_id, by=g.user),
        lambda token: f"Jeton {token.prefix}… de {token.user.email} révoqué.",
        catch=Conflict,
    )
    return redirect(url_for("tokens.token_list"))
