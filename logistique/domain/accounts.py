"""Accounts: creation, passwords, login throttling and API tokens."""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.util import identity_key
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
from ..statements import Prepared
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
    if user.is_active and not is_active:
        end_sessions(user)
    user.is_active = is_active
    if password:
        set_password(user, password)


def set_password(user: User, password: str) -> None:
    """Replace the password after checking its strength; every open session of the account ends."""
    check_password_strength(password)
    user.password_hash = generate_password_hash(password, PASSWORD_METHOD)
    end_sessions(user)


def end_sessions(user: User) -> None:
    """End every session of the account, on every device (the cookies carry an older version)."""
    user.session_version = (user.session_version or 0) + 1


# ---------------------------------------------------------------- login


@dataclass
class LoginResult:
    user: User | None
    message: str | None  # French refusal, None on success
    delay: float = 0.0  # seconds the answer waits: an address that failed too often is slowed down


MAX_ADDRESS_DELAY = 3.0


def _address_delay(row: LoginThrottle | None, now: datetime, max_failures: int) -> float:
    """How long an answer to this client address waits: nothing, then 0.25 s doubling per failure past the
    limit, at most 3 s. Many people may share an address (a school's network, a proxy not configured): the
    address slows guessing down but never refuses a correct password; the per-account lock refuses."""
    if row is None or row.locked_until is None or row.locked_until <= now:
        return 0.0
    return min(0.25 * 2 ** max(row.failures - max_failures, 0), MAX_ADDRESS_DELAY)


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
    """Check credentials; unknown account and wrong password get the same answer. Too many failures lock
    the account for a while (even its right password is refused meanwhile) and slow the address down."""
    now = now or utcnow()
    normalized = (email or "").strip().lower()
    keys = [_throttle_key("email", normalized), _throttle_key("ip", client)]
    delay = _address_delay(session.get(LoginThrottle, keys[1]), now, max_failures)
    if _locked(session, keys[:1], now):
        return LoginResult(None, LOGIN_THROTTLED, delay)
    user = session.scalar(sa.select(User).where(User.email == normalized))
    valid = (
        user is not None and user.password_hash and check_password_hash(user.password_hash, password or "")
    )
    if user is None:
        # same work as a real check, so that timing does not tell which accounts exist
        check_password_hash(_DUMMY_HASH, password or "")
    if not valid or not user.is_active or (user.is_demo and not demo_mode):
        _record_failure(session, keys, now, max_failures, lock_seconds)
        return LoginResult(None, LOGIN_REFUSED, delay)
    session.execute(sa.delete(LoginThrottle).where(LoginThrottle.key == keys[0]))
    user.last_login_at = now
    return LoginResult(user, None, delay)


_DUMMY_HASH = generate_password_hash("x" * 16)


# ---------------------------------------------------------------- API tokens

TOKEN_PREFIX = "lgq_"  # noqa: S105 (a prefix, not a secret)


def hash_token(token: str) -> str:
    """SHA-256 of a token: what the database keeps."""
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, user: User, label: str = "", *, expires_at: datetime | None = None) -> str:
    """Create an API token for ``user`` and return it in clear (shown once, only its hash is stored)."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(
        ApiToken(
            user=user,
            token_hash=hash_token(token),
            prefix=token[:10],
            label=label[:100],
            expires_at=expires_at,
        )
    )
    session.flush()
    return token


_USER_COLUMNS = tuple(User.__table__.c)
_ABSENT = object()
# the accounts this thread made objects of, detached between requests: one dictionary per thread, so that two
# requests served by threads of one process (gunicorn's gthread, a threaded test server) never share an object
_THREAD = threading.local()
_KNOWN_MAX = 10_000


def attach_user(session: Session, values: Mapping[str, Any]) -> User:
    """The account whose columns are ``values`` (read by a Core statement, such as ``TOKEN_HOLDER``), as an
    object of ``session``: the one ``session`` holds; else the object this thread made for an earlier
    request, if its columns are all still these and it holds nothing else; else a new one. The ORM's loading
    of an account was a large part of authenticating a request."""
    user_id = values["id"]
    held = session.identity_map.get(identity_key(User, user_id))
    if held is not None:
        return held
    cache: dict[int, User] | None = getattr(_THREAD, "known", None)
    if cache is None:
        cache = _THREAD.known = {}
    known = cache.get(user_id)
    if (
        known is None
        or sa.inspect(known).session_id is not None
        or len(known.__dict__) != len(_USER_COLUMNS) + 1  # a relationship loaded, or a column expired
        or any(known.__dict__.get(c.key, _ABSENT) != values[c.key] for c in _USER_COLUMNS)
    ):
        known = User(**{c.key: values[c.key] for c in _USER_COLUMNS})
        make_transient_to_detached(known)
        if len(cache) >= _KNOWN_MAX:
            cache.clear()
        cache[user_id] = known
    session.add(known)
    return known


# Built once: every request authenticates its account (by its API token here, or by its session's id)
USER_BY_ID = Prepared(sa.select(*_USER_COLUMNS).where(User.id == sa.bindparam("user_id")))
TOKEN_HOLDER_QUERY = (
    sa.select(
        *_USER_COLUMNS, ApiToken.id.label("token_id"), ApiToken.last_used_at.label("token_last_used_at")
    )
    .join(ApiToken, ApiToken.user_id == User.id)
    .where(
        ApiToken.token_hash == sa.bindparam("token_hash"),
        ApiToken.revoked_at.is_(None),
        sa.or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > sa.bindparam("now")),
    )
)
TOKEN_HOLDER = Prepared(TOKEN_HOLDER_QUERY)


def token_lookup(token: str, now: datetime) -> dict | None:
    """The parameters of ``TOKEN_HOLDER`` for ``token``, or None when it cannot be one of ours."""
    if not token or not token.startswith(TOKEN_PREFIX):
        return None
    return {"token_hash": hash_token(token), "now": now}


def token_holder(session: Session, row: Mapping[str, Any], *, demo_mode: bool, now: datetime) -> User | None:
    """The holder found by ``TOKEN_HOLDER`` if the account may act (its use noted in ``session``), or None."""
    if not row["is_active"] or (row["is_demo"] and not demo_mode):
        return None
    last_used_at = row["token_last_used_at"]
    if last_used_at is None or last_used_at <= now - TOKEN_USE_PRECISION:
        session.info.setdefault(PENDING_TOKEN_USES, {})[row["token_id"]] = now
    return attach_user(session, row)


def user_for_token(
    session: Session, token: str, *, demo_mode: bool, now: datetime | None = None
) -> User | None:
    """The active account behind a bearer token, or None."""
    now = now or utcnow()
    lookup = token_lookup(token, now)
    if lookup is None:
        return None
    row = TOKEN_HOLDER.mapping(TOKEN_HOLDER.first(session, lookup))
    return None if row is None else token_holder(session, row, demo_mode=demo_mode, now=now)


# A read takes no write lock: the last use of a token is not written by the request that uses it. It is noted
# in the session (at most once per TOKEN_USE_PRECISION) and written by the caller after the answer, in a
# transaction of its own (record_token_uses).
TOKEN_USE_PRECISION = timedelta(minutes=5)
PENDING_TOKEN_USES = "logistique.pending_token_uses"  # noqa: S105 (a key of Session.info)


def pending_token_uses(session: Session) -> dict[int, datetime]:
    """Token uses noted in ``session`` and not written yet (taken out of the session)."""
    return session.info.pop(PENDING_TOKEN_USES, None) or {}


def record_token_uses(connection: sa.Connection, uses: dict[int, datetime]) -> int:
    """Write tokens' last use, guarded so that several workers write it once per period (no commit)."""
    written = 0
    for token_id, at in sorted(uses.items()):
        written += connection.execute(
            sa.update(ApiToken)
            .where(
                ApiToken.id == token_id,
                sa.or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at <= at - TOKEN_USE_PRECISION),
            )
            .values(last_used_at=at)
        ).rowcount
    return written


def get_user_by_email(session: Session, email: str) -> User:
    """The account with that e-mail, or NotFound."""
    user = session.scalar(sa.select(User).where(User.email == (email or "").strip().lower()))
    if user is None:
        raise NotFound(f"Aucun compte pour {email}.")
    return user
