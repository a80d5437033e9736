"""Sessions and logins (issue 10, points 4 and 7): a copied session cookie dies with logout, a password
change or a deactivation, and after the session lifetime; a generated password is shown once on a page no
one keeps; behind a proxy each client is throttled on its own address, and an address that failed too often
is slowed down without refusing a right password (the account's own lock still refuses)."""

from __future__ import annotations

import base64
import re
import time
import zlib
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from flask import request

from logistique import create_app
from logistique.db import db
from logistique.domain import accounts
from logistique.models import LoginThrottle, User
from logistique.views import auth

from .conftest import PASSWORD, login

CONFIG_KEYS = ("TESTING", "DATABASE_URL", "SECRET_KEY", "WTF_CSRF_ENABLED", "BASE_URL", "DEMO_MODE")


def _logged_in(app, user):
    client = app.test_client()
    assert login(client, user).status_code == 302
    assert client.get("/").status_code == 200
    return client


def _copy(app, client):
    """Another browser holding a copy of ``client``'s session cookie."""
    thief = app.test_client()
    thief.set_cookie("session", client.get_cookie("session").value)
    return thief


def _is_logged_out(client) -> bool:
    response = client.get("/")
    return response.status_code == 302 and urlsplit(response.headers["Location"]).path == "/login"


def test_a_copied_cookie_dies_with_logout(app, world):
    client = _logged_in(app, world.coordinator)
    thief = _copy(app, client)
    assert not _is_logged_out(thief)  # the copy works while the session lives
    client.post("/logout")
    assert _is_logged_out(thief)


def test_a_password_change_ends_every_session(app, world):
    client = _logged_in(app, world.coordinator)
    thief = _copy(app, client)
    admin = _logged_in(app, world.admin)
    response = admin.post(
        f"/admin/comptes/{world.coordinator.id}",
        data={
            "email": world.coordinator.email,
            "display_name": "Coordination Roubaix",
            "role": "coordinator",
            "organisation": world.assoc_roubaix.id,
            "territory": "",
            "password": "un-nouveau-mot-de-passe",
            "is_active": "y",
        },
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    assert _is_logged_out(client) and _is_logged_out(thief)
    assert login(app.test_client(), world.coordinator, "un-nouveau-mot-de-passe").status_code == 302


def test_deactivation_ends_every_session(app, session, world):
    client = _logged_in(app, world.coordinator)
    version = session.get(User, world.coordinator.id).session_version
    accounts.update_user(
        session,
        session.get(User, world.coordinator.id),
        role=world.coordinator.role,
        display_name="",
        organisation_id=world.assoc_roubaix.id,
        territory=None,
        is_active=False,
    )
    session.commit()
    assert session.get(User, world.coordinator.id).session_version == version + 1
    assert _is_logged_out(client)


def test_a_session_has_a_lifetime(app, world, monkeypatch):
    assert app.config["SESSION_LIFETIME_HOURS"] == 12
    client = _logged_in(app, world.coordinator)
    cookie = client.get_cookie("session")
    assert cookie.expires is not None  # a dated cookie, not one kept until the browser closes
    thief = _copy(app, client)
    later = time.time() + 13 * 3600
    monkeypatch.setattr(time, "time", lambda: later)
    assert _is_logged_out(thief)


def _session_payload(client) -> str:
    value = client.get_cookie("session").value
    compressed = value.startswith(".")
    data = value.lstrip(".").split(".")[0]
    raw = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
    return (zlib.decompress(raw) if compressed else raw).decode()


def test_a_generated_password_is_shown_once_never_in_the_session(app, session, world):
    admin = _logged_in(app, world.admin)
    response = admin.post(
        "/admin/comptes/nouveau",
        data={
            "email": "nouveau@test.fr",
            "role": "admin",
            "organisation": 0,
            "territory": "",
            "password": "",
        },
    )
    assert response.status_code == 200, response.status_code
    assert response.headers["Cache-Control"] == "no-store"
    page = response.get_data(as_text=True)
    created = session.scalar(sa.select(User).where(User.email == "nouveau@test.fr"))
    candidates = re.findall(r"[\w-]{16}", page)
    shown = [w for w in candidates if accounts.check_password_hash(created.password_hash, w)]
    assert len(shown) == 1, "the password is on the page"
    assert shown[0] not in _session_payload(admin)
    assert shown[0] not in admin.get("/admin/comptes").get_data(as_text=True)


# ---------------------------------------------------------------- throttling


@pytest.fixture
def pauses(monkeypatch) -> list[float]:
    waited: list[float] = []
    monkeypatch.setattr(auth, "pause", waited.append, raising=False)
    return waited


def _fail(client, email: str, **kw):
    response = client.post("/login", data={"email": email, "password": "mauvais-mot-de-passe"}, **kw)
    assert response.status_code == 401
    return response


def test_a_busy_address_slows_down_but_lets_a_right_password_in(app, world, pauses):
    client = app.test_client()
    for n in range(7):  # guessing over several accounts from one address (or many people behind one NAT)
        _fail(client, f"inconnu{n}@test.fr")
    assert pauses and pauses[-1] > 0, "the address is slowed down"
    assert login(app.test_client(), world.coordinator).status_code == 302


def test_the_accounts_own_lock_still_refuses(app, world, pauses):
    client = app.test_client()
    for _ in range(5):
        _fail(client, world.coordinator.email)
    refused = login(app.test_client(), world.coordinator)
    assert refused.status_code == 401
    assert "Trop de tentatives" in refused.get_data(as_text=True)


def _address_keys(session) -> set[str]:
    session.rollback()
    keys = set(session.scalars(sa.select(LoginThrottle.key)))
    session.rollback()
    return keys


def test_forwarded_addresses_are_believed_only_from_configured_proxies(app, session, world, pauses):
    forwarded = {"X-Forwarded-For": "203.0.113.7"}
    _fail(app.test_client(), "x@test.fr", headers=forwarded)
    keys = _address_keys(session)
    assert accounts._throttle_key("ip", "127.0.0.1") in keys  # default: no proxy, the header is ignored
    assert accounts._throttle_key("ip", "203.0.113.7") not in keys

    behind = create_app({**{k: app.config[k] for k in CONFIG_KEYS}, "TRUSTED_PROXIES": 1})
    try:
        for n in range(6):
            _fail(behind.test_client(), f"y{n}@test.fr", headers=forwarded)
        keys = _address_keys(session)
        assert accounts._throttle_key("ip", "203.0.113.7") in keys
        # another client behind the same load balancer is not slowed down by the first one's failures
        pauses.clear()
        other = behind.test_client()
        response = other.post(
            "/login",
            data={"email": world.coordinator.email, "password": PASSWORD},
            headers={"X-Forwarded-For": "198.51.100.4"},
        )
        assert response.status_code == 302
        assert pauses == [0.0] or pauses == []
    finally:
        with behind.app_context():
            db.get_engine().dispose()


def _opened(app, value: str) -> dict:
    interface = app.session_interface
    with app.test_request_context("/", headers={"Cookie": f"{interface.get_cookie_name(app)}={value}"}):
        return interface.open_session(app, request)


def test_a_session_cookie_checked_once_is_still_checked_for_age_and_tampering(app, monkeypatch):
    """A phone sends the same cookie with every scan: the server keeps the cookies it verified, but a kept
    cookie still ages like any other, a changed one is checked again, and a session read from it is a copy."""
    value = app.session_interface.get_signing_serializer(app).dumps({"_user_id": "7", "_sv": 1})
    first = _opened(app, value)
    assert dict(first) == {"_user_id": "7", "_sv": 1}
    first["_sv"] = 99  # a request changing its session changes nothing for the next one
    assert dict(_opened(app, value)) == {"_user_id": "7", "_sv": 1}
    tampered = value[:-2] + ("AA" if value[-2:] != "AA" else "BB")
    assert dict(_opened(app, tampered)) == {}
    later = time.time() + app.permanent_session_lifetime.total_seconds() + 5
    monkeypatch.setattr(time, "time", lambda: later)
    assert dict(_opened(app, value)) == {}
