"""Logging in and out: same answer for unknown accounts and wrong passwords, slowed-down guessing,
safe redirects, CSRF, demo accounts only in demo mode."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from logistique import create_app
from logistique.db import utcnow
from logistique.domain import accounts
from logistique.models import LoginThrottle, User

from .conftest import PASSWORD, login


def test_login_then_logout(client, world):
    response = login(client, world.coordinator)
    assert response.status_code == 302 and response.headers["Location"] == "/"
    home = client.get("/")
    assert home.status_code == 200 and world.coordinator.display_name in home.get_data(as_text=True)
    assert client.post("/logout").status_code == 302
    assert client.get("/").headers["Location"].startswith("/login")


def test_wrong_password_and_unknown_account_get_the_same_answer(client, world):
    wrong = login(client, world.admin, password="pas-le-bon-mot-de-passe")
    unknown = client.post("/login", data={"email": "personne@test.fr", "password": "pas-le-bon-mot-de-passe"})
    assert wrong.status_code == unknown.status_code == 401
    for response in (wrong, unknown):
        assert accounts.LOGIN_REFUSED in response.get_data(as_text=True)
    assert client.get("/").status_code == 302  # still logged out


def test_repeated_failures_lock_the_account_even_with_the_right_password(client, world, app):
    for _ in range(app.config["LOGIN_MAX_FAILURES"]):
        assert login(client, world.admin, password="mauvais-mot-de-passe").status_code == 401
    blocked = login(client, world.admin)
    assert blocked.status_code == 401
    assert accounts.LOGIN_THROTTLED in blocked.get_data(as_text=True)


def test_unknown_accounts_are_throttled_the_same_way(client, world, app):
    for _ in range(app.config["LOGIN_MAX_FAILURES"]):
        client.post("/login", data={"email": "inconnu@test.fr", "password": "x" * 12})
    response = client.post("/login", data={"email": "inconnu@test.fr", "password": "x" * 12})
    assert accounts.LOGIN_THROTTLED in response.get_data(as_text=True)


def test_lock_doubles_with_each_further_failure_and_expires(session, world):
    now = utcnow()

    def attempt(password: str, at):
        return accounts.authenticate(
            session,
            email=world.admin.email,
            password=password,
            client="10.0.0.1",
            demo_mode=False,
            max_failures=3,
            lock_seconds=60,
            now=at,
        )

    for _ in range(3):
        assert attempt("mauvais", now).message == accounts.LOGIN_REFUSED
    assert attempt(PASSWORD, now + timedelta(seconds=59)).message == accounts.LOGIN_THROTTLED
    assert attempt("mauvais", now + timedelta(seconds=61)).message == accounts.LOGIN_REFUSED  # 4th failure
    key_rows = session.scalars(sa.select(LoginThrottle)).all()
    assert max(r.failures for r in key_rows) == 4
    locked_for = max(r.locked_until for r in key_rows) - (now + timedelta(seconds=61))
    assert locked_for == timedelta(seconds=120)
    assert attempt(PASSWORD, now + timedelta(seconds=61 + 121)).user == world.admin


def test_a_disabled_account_cannot_log_in_and_is_logged_out(client, world, session):
    login(client, world.coordinator)
    world.coordinator.is_active = False
    session.commit()
    assert client.get("/").status_code == 302
    assert login(client, world.coordinator).status_code == 401


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/x",
        "/\\evil.example",
        "http:/x",
        "javascript:alert(1)",
        "evil.example",
    ],
)
def test_next_never_leaves_the_app(client, world, target):
    response = login(client, world.admin, next_url=target)
    assert response.status_code == 302
    assert response.headers["Location"] == "/"


def test_next_brings_the_user_back_inside_the_app(client, world):
    target = f"/equipements/{world.device.id}"
    first = client.get(target)
    assert first.status_code == 302 and "next=" in first.headers["Location"]
    response = login(client, world.admin, next_url=target)
    assert response.headers["Location"] == target


def test_demo_accounts_only_log_in_in_demo_mode(client, session, world, app):
    demo = accounts.create_user(
        session, email="demo@test.fr", role=accounts.Role.ADMIN, password=PASSWORD, is_demo=True
    )
    session.commit()
    assert login(client, demo).status_code == 401
    app.config["DEMO_MODE"] = True
    assert login(client, demo).status_code == 302


def test_forms_refuse_a_post_without_csrf_token(database_url, world):
    app = create_app({"TESTING": True, "DATABASE_URL": database_url, "SECRET_KEY": "s"})
    client = app.test_client()
    response = client.post("/login", data={"email": world.admin.email, "password": PASSWORD})
    assert response.status_code == 400
    page = client.get("/login").get_data(as_text=True)
    assert 'name="csrf_token"' in page


def test_unknown_user_id_in_session_is_logged_out(client, world):
    with client.session_transaction() as s:
        s["_user_id"] = "999999"
        s["_fresh"] = True
    assert client.get("/").status_code == 302


def test_passwords_are_hashed(session, world):
    stored = session.scalar(sa.select(User.password_hash).where(User.id == world.admin.id))
    assert PASSWORD not in stored and stored.startswith(("pbkdf2:", "scrypt:"))
