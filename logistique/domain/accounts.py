"""Accounts: creation, passwords, login throttling and API tokens."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from ..db import utcnow
from ..models import (
    ApiToken,
    LoginThrottle,
    Organisation,
    OrganisationKind,
    Role,
    TerritoryKind,
    User,
)
from . import scope
from .errors import Conflict, NotFound, ValidationFailed

MIN_PASSWORD_LENGTH = 10
PASSWORD_METHOD = "scrypt"  # noqa: S105 — werkzeug's default; the test suite swaps in a cheap one for speed
LOGIN_REFUSED = "Adresse électronique ou mot de passe incorrect."
LOGIN_THROTTLED = "Trop de tentatives de connexion : réessayez dans quelques minutes."
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

# which kind of organisation each role is bound to (admins and prefecture staff to none)
ROLE_ORGANISATION_KINDS = {
    Role.WAREHOUSE: {OrganisationKind.WAREHOUSE},
    Role.COORDINATOR: {OrganisationKind.ASSOCIATION, OrganisationKind.SCHOOL},
}


def normalize_email(raw: str) -> str:
    """Trimmed, lower-cased e-mail address, or ValidationFailed."""
    email = (raw or "").strip().lower()
    if not _EMAIL.match(email) or len(email) > 254:
        raise ValidationFailed(f"Adresse électronique invalide : {raw!r}.")
    return email


def check_password_strength(password: str) -> None:
    """Refuse passwords too short to resist guessing."""
    if len(password or "") < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(f"Le mot de passe doit faire au moins {MIN_PASSWORD_LENGTH} caractères.")


def generate_password() -> str:
    """A random password that is easy to read aloud (printed once)."""
    return secrets.token_urlsafe(12)


def resolve_territory(session: Session, code: str) -> tuple[TerritoryKind, str]:
    """Turn ``32``, ``region:32``, ``departement:59`` or ``dep:59`` into a known territory, or refuse it."""
    territory = scope.parse_territory(session, code)
    if territory is not None:
        return territory
    raise ValidationFailed(f"Territoire inconnu : {code!r} (code de région ou de département attendu).")


def validate_scope(
    session: Session, role: Role, organisation_id: int | None, territory: str | None
) -> tuple[Organisation | None, TerritoryKind | None, str | None]:
    """Check that the scope fits the role (docs/architecture.md, « Rôles et périmètres »); return it
    resolved."""
    if role is Role.ADMIN:
        if organisation_id or territory:
            raise ValidationFailed("Un compte administrateur n'a ni structure ni territoire.")
        return None, None, None
    if role is Role.PREFECTURE:
        if organisation_id:
            raise ValidationFailed("Un compte préfecture est rattaché à un territoire, pas à une structure.")
        if not territory:
            raise ValidationFailed("Un compte préfecture doit avoir un territoire (région ou département).")
        kind, code = resolve_territory(session, territory)
        return None, kind, code
    if territory:
        raise ValidationFailed("Ce rôle est rattaché à une structure, pas à un territoire.")
    if not organisation_id:
        raise ValidationFailed("Ce rôle doit être rattaché à une structure.")
    org = session.get(Organisation, organisation_id)
    if org is None:
        raise ValidationFailed(f"Structure inconnue : {organisation_id}.")
    if org.kind not in ROLE_ORGANISATION_KINDS[role]:
        expected = " ou ".join(k.label_lower for k in ROLE_ORGANISATION_KINDS[role])
        raise ValidationFailed(f"Ce rôle doit être rattaché à une structure de type {expected}.")
    return org, None, None


def create_user(
    session: Session,
    *,
    email: str,
    role: Role,
    password: str,
    display_name: str = "",
    organisation_id: int | None = None,
    territory: str | None = None,
    is_demo: bool = False,
) -> User:
    """Create an account after checking its e-mail, password and scope (no commit)."""
    email = normalize_email(email)
    if session.scalar(sa.select(User.id).where(User.email == email)) is not None:
        raise Conflict(f"Un compte existe déjà pour {email}.")
    check_password_strength(password)
    org, territory_kind, territory_code = validate_scope(session, role, organisation_id, territory)
    user = User(
        email=email,
        role=role,
        display_name=display_name.strip() or email.split("@")[0],
        password_hash=generate_password_hash(password, PASSWORD_METHOD),
        organisation=org,
        territory_kind=territory_kind,
        territory_code=territory_code,
        is_demo=is_demo,
    )
    session.add(user)
    session.flush()
    return user


def update_user(
    session: Session,
    user: User,
    *,
    role: Role,
    display_name: str,
    organisation_id: int | None,
    territory: str | None,
    is_active: bool,
    password: str | None = None,
) -> None:
    """Change an account's role, scope, name, state and optionally its password (no commit)."""
    org, territory_kind, territory_code = validate_scope(session, role, organisation_id, territory)
    user.role = role
    user.display_name = display_name.strip() or user.display_name
    user.organisation = org
    user.territory_kind = territory_kind
    user.territory_code = territory_code
    user.is_active = is_active
    if password:
        set_password(user, password)


def set_password(user: User, password: str) -> None:
    """Replace the password after checking its strength."""
    check_password_strength(password)
    user.password_hash = generate_password_hash(password, PASSWORD_METHOD)


# ---------------------------------------------------------------- login


@dataclass
class LoginResult:
    user: User | None
    message: str | None  # French refusal, None on success


def _throttle_key(kind: str, value: str) -> str:
    return hashlib.sha256(f"{kind}:{value}".encode()).hexdigest()


def _locked(session: Session, keys: list[str], now: datetime) -> bool:
    rows = session.scalars(sa.select(LoginThrottle).where(LoginThrottle.key.in_(keys))).all()
    return any(r.locked_until is not None and r.locked_until > now for r in rows)


def _record_failure(
    session: Session, keys: list[str], now: datetime, max_failures: int, lock_seconds: int
) -> None:
    for key in keys:
        row = session.get(LoginThrottle, key)
        if row is None:
            row = LoginThrottle(key=key, failures=0)
            session.add(row)
        elif row.last_failure_at < now - timedelta(hours=1):
            row.failures = 0  # an old streak is forgotten
        row.failures += 1
        row.last_failure_at = now
        if row.failures >= max_failures:
            # each further failure doubles the wait, up to a day
            delay = min(lock_seconds * 2 ** (row.failures - max_failures), 86400)
            row.locked_until = now + timedelta(seconds=delay)


def authenticate(
    session: Session,
    *,
    email: str,
    password: str,
    client: str,
    demo_mode: bool,
    max_failures: int = 5,
    lock_seconds: int = 60,
    now: datetime | None = None,
) -> LoginResult:
    """Check credentials; unknown account and wrong password get the same answer; failures slow down."""
    now = now or utcnow()
    normalized = (email or "").strip().lower()
    keys = [_throttle_key("email", normalized), _throttle_key("ip", client)]
    if _locked(session, keys, now):
        return LoginResult(None, LOGIN_THROTTLED)
    user = session.scalar(sa.select(User).where(User.email == normalized))
    valid = (
        user is not None and user.password_hash and check_password_hash(user.password_hash, password or "")
    )
    if user is None:
        # same work as a real check, so that timing does not tell which accounts exist
        check_password_hash(_DUMMY_HASH, password or "")
    if not valid or not user.is_active or (user.is_demo and not demo_mode):
        _record_failure(session, keys, now, max_failures, lock_seconds)
        return LoginResult(None, LOGIN_REFUSED)
    session.execute(sa.delete(LoginThrottle).where(LoginThrottle.key == keys[0]))
    user.last_login_at = now
    return LoginResult(user, None)


_DUMMY_HASH = generate_password_hash("x" * 16)


# ---------------------------------------------------------------- API tokens

TOKEN_PREFIX = "lgq_"  # noqa: S105 (a prefix, not a secret)


def hash_token(token: str) -> str:
    """SHA-256 of a token: what the database keeps."""
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, user: User, label: str = "") -> str:
    """Create an API token for ``user`` and return it in clear (shown once, only its hash is stored)."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(user=user, token_hash=hash_token(token), prefix=token[:10], label=label[:100]))
    session.flush()
    return token


def user_for_token(
    session: Session, token: str, *, demo_mode: bool, now: datetime | None = None
) -> User | None:
    """The active account behind a bearer token, or None."""
    if not token or not token.startswith(TOKEN_PREFIX):
        return None
    row = session.scalar(
        sa.select(ApiToken).where(ApiToken.token_hash == hash_token(token), ApiToken.revoked_at.is_(None))
    )
    if row is None or not row.user.is_active or (row.user.is_demo and not demo_mode):
        return None
    row.last_used_at = now or utcnow()
    return row.user


def get_user_by_email(session: Session, email: str) -> User:
    """The account with that e-mail, or NotFound."""
    user = session.scalar(sa.select(User).where(User.email == (email or "").strip().lower()))
    if user is None:
        raise NotFound(f"Aucun compte pour {email}.")
    return user
