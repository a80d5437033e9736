"""API tokens seen and revoked: by their owner's e-mail on the command line, or by an admin's page."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session, joinedload

from ..db import utcnow
from ..models import ApiToken, User
from . import scope
from .errors import Conflict, NotFound


def list_tokens(session: Session, *, user: User | None = None, by: User | None) -> list[ApiToken]:
    """Tokens of one account (or of every account), newest first; never their value, only its prefix."""
    scope.require(by, scope.Permission.MANAGE_USERS)
    query = sa.select(ApiToken).options(joinedload(ApiToken.user)).order_by(ApiToken.id.desc())
    if user is not None:
        query = query.where(ApiToken.user_id == user.id)
    return list(session.scalars(query))


def token_state(token: ApiToken, now: datetime | None = None) -> str:
    """« actif », « révoqué » or « expiré », as the lists say it."""
    if token.revoked_at is not None:
        return "révoqué"
    if token.expires_at is not None and token.expires_at <= (now or utcnow()):
        return "expiré"
    return "actif"


def revoke_token(
    session: Session, token_id: int, *, by: User | None, now: datetime | None = None
) -> ApiToken:
    """Revoke a token: every request carrying it is refused from now on (no commit)."""
    scope.require(by, scope.Permission.MANAGE_USERS)
    token = session.get(ApiToken, token_id)
    if token is None:
        raise NotFound(f"Aucun jeton n° {token_id}.")
    if token.revoked_at is not None:
        raise Conflict(f"Le jeton n° {token_id} est déjà révoqué.", code="already_revoked")
    token.revoked_at = now or utcnow()
    session.flush()
    return token
