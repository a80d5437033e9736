"""Under load: reads take no write lock, a saturated database answers 503 (never 500), and a bounded run of
concurrent clients on a real gunicorn leaves the database agreeing with every 2xx answer."""

from __future__ import annotations

import importlib
import threading
from contextlib import contextmanager
from datetime import timedelta

import pytest
import sqlalchemy as sa
from werkzeug.serving import make_server

from logistique import create_app, migrate
from logistique.db import Base, db, make_engine, utcnow
from logistique.domain import accounts
from logistique.models import ApiToken, DeviceEvent, SlipLine

from . import load_scenario
from .conftest import login
from .factories import bundle, issued_slip

db_module = importlib.import_module("logistique.db")  # the module (``logistique.db`` is also the object)


def _token_row(session, user) -> ApiToken:
    session.rollback()  # a new snapshot: what the requests committed
    return session.scalar(sa.select(ApiToken).where(ApiToken.user_id == user.id))


@contextmanager
def _write_lock(url: str):
    """Another connection holding what every writer needs: SQLite's write lock; on PostgreSQL, every table in
    EXCLUSIVE mode (reads go on, any write waits)."""
    engine = make_engine(url)
    with engine.execution_options(write=True).connect() as conn, conn.begin() as transaction:
        if engine.dialect.name == "postgresql":  # SQLite's BEGIN IMMEDIATE took the whole database
            tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
            conn.exec_driver_sql(f"LOCK TABLE {tables} IN EXCLUSIVE MODE")
        try:
            yield
        finally:
            transaction.rollback()
    engine.dispose()


def test_a_read_writes_its_token_use_after_answering_and_at_most_every_few_minutes(world, api, session):
    client = api(world.prefecture)
    # not buffered: the test client would read and close the response inside the request, as a server does
    # only once the answer has left
    response = client.get("/api/v1/devices/SN-LILLE-1", buffered=False)
    assert response.status_code == 200
    assert _token_row(session, world.prefecture).last_used_at is None  # nothing written inside the read
    response.close()  # the server closes the response once sent: then the use is written
    first = _token_row(session, world.prefecture).last_used_at
    assert first is not None and utcnow() - first < timedelta(minutes=1)

    client.get("/api/v1/devices/SN-LILLE-1").close()
    assert _token_row(session, world.prefecture).last_used_at == first  # within the period: no write

    session.execute(
        sa.update(ApiToken)
        .where(ApiToken.user_id == world.prefecture.id)
        .values(last_used_at=first - accounts.TOKEN_USE_PRECISION)
    )
    session.commit()
    client.get("/api/v1/devices/SN-LILLE-1").close()
    assert _token_row(session, world.prefecture).last_used_at > first


def test_a_read_answers_while_another_transaction_holds_the_write_lock(world, api, session, database_url):
    client = api(world.prefecture)
    with _write_lock(database_url):
        response = client.get("/api/v1/devices/SN-LILLE-1")
        assert response.status_code == 200
        assert response.get_json()["serial"] == "SN-LILLE-1"
        response.close()  # the token's use cannot be written now: skipped after a short wait, no error
    assert _token_row(session, world.prefecture).last_used_at is None
    client.get("/api/v1/devices/SN-LILLE-1").close()  # the next read writes it
    assert _token_row(session, world.prefecture).last_used_at is not None


def test_32_concurrent_reads_with_one_token_on_a_real_server_all_succeed(app, world, api, session):
    token = accounts.create_token(session, world.warehouse)
    session.commit()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    base = f"http://127.0.0.1:{server.server_port}"
    start = threading.Barrier(32)
    statuses: list[int] = []

    def read() -> None:
        client = load_scenario.Http(base, token=token)
        start.wait()
        for serial in ("SN-LILLE-1", "SN-LILLE-2", "SN-LILLE-3", "SN-LILLE-1", "SN-LILLE-2"):
            response, _body = client.request("GET", f"/api/v1/devices/{serial}")
            statuses.append(response.status)
        client.close()

    try:
        readers = [threading.Thread(target=read) for _ in range(32)]
        for t in readers:
            t.start()
        for t in readers:
            t.join()
    finally:
        server.shutdown()
        serving.join()
    assert statuses == [200] * 160
    row = session.scalar(sa.select(ApiToken).where(ApiToken.token_hash == accounts.hash_token(token)))
    assert row.last_used_at is not None


@pytest.fixture
def short_lock_wait(monkeypatch, app):
    """A second app like the test's whose writers wait 0.3 s for a lock instead of 10 s (same database)."""
    monkeypatch.setattr(db_module, "LOCK_TIMEOUT_MS", 300)
    keys = ("TESTING", "DATABASE_URL", "SECRET_KEY", "WTF_CSRF_ENABLED", "BASE_URL", "DEMO_MODE")
    app = create_app({key: app.config[key] for key in keys})
    yield app
    with app.app_context():
        db.get_engine().dispose()


def test_a_saturated_database_answers_503_with_retry_after_and_changes_nothing(
    world, session, database_url, short_lock_wait
):
    bundle(session, world, 1)
    slip = issued_slip(session, world, ["SN-TAB-1"])
    serial = "SN-TAB-1"
    token = accounts.create_token(session, world.warehouse)
    session.commit()
    api = short_lock_wait.test_client()
    api.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    web = short_lock_wait.test_client()
    assert login(web, world.warehouse).status_code == 302

    with _write_lock(database_url):
        picked = api.post(f"/api/v1/slips/{slip.number}/picks", json={"serial": serial})
        scanned = web.post(
            f"/bordereaux/{slip.number}/scan", data={"code": serial}, headers={"Accept": "application/json"}
        )
        page = web.post(f"/bordereaux/{slip.number}/scan", data={"code": serial})

    assert picked.status_code == 503
    assert picked.headers["Retry-After"] == "2"
    assert picked.get_json()["error"]["code"] == "busy"
    assert "réessayez" in picked.get_json()["error"]["message"].lower()
    assert scanned.status_code == 503 and scanned.get_json()["error"]["code"] == "busy"
    assert page.status_code == 503 and page.headers["Retry-After"] == "2"
    assert "Réessayez dans quelques secondes" in page.get_data(as_text=True)
    session.expire_all()
    assert session.scalar(sa.select(SlipLine.picked_at).where(SlipLine.slip_id == slip.id)) is None
    assert session.scalar(sa.select(sa.func.count()).where(DeviceEvent.action == "pick")) == 0

    retried = api.post(f"/api/v1/slips/{slip.number}/picks", json={"serial": serial})  # lock released
    assert retried.status_code == 200 and retried.get_json()["outcome"] == "picked"


def test_pages_read_by_logged_in_users_answer_while_another_transaction_holds_the_write_lock(
    world, session, database_url, short_lock_wait
):
    bundle(session, world, 1)
    slip = issued_slip(session, world, ["SN-TAB-1"])
    session.commit()
    volunteer, prefecture = short_lock_wait.test_client(), short_lock_wait.test_client()
    assert login(volunteer, world.warehouse).status_code == 302
    assert login(prefecture, world.prefecture).status_code == 302
    with _write_lock(database_url):
        assert volunteer.get(f"/bordereaux/{slip.number}/preparation").status_code == 200
        assert volunteer.get(f"/bordereaux/{slip.number}").status_code == 200
        assert prefecture.get("/tableau").status_code == 200


def test_bounded_load_on_gunicorn_no_5xx_and_the_database_agrees_with_every_answer(
    app, session, database_url, tmp_path
):
    scenario = load_scenario.seed(session, picks=40, scans=40, free=20)
    env = {
        "LOGISTIQUE_DATABASE_URL": database_url,
        "LOGISTIQUE_SECRET_KEY": "secret-de-charge",
        "LOGISTIQUE_BASE_URL": "http://127.0.0.1",
    }
    log = tmp_path / "gunicorn.log"
    with load_scenario.gunicorn("logistique:create_app()", env, workers=2, log=log) as base:
        answers = load_scenario.run_load(base, scenario, clients=16, seconds=3)

    by_kind = load_scenario.summary(answers)
    assert load_scenario.server_errors(answers) == [], log.read_text()[-3000:]
    for kind in load_scenario.KINDS:  # each kind of client got work done
        assert sum(n for status, n in by_kind[kind].items() if 200 <= status < 300) > 0, by_kind
    assert any(a.kind == "assign" and a.status == 409 for a in answers), "the assignments never raced"
    assert any(a.replayed for a in answers), "no pick was retried with its Idempotency-Key"
    session.expire_all()
    assert load_scenario.check(session, scenario, answers) == []
    # served with the production settings (deploy/gunicorn.conf.py): gunicorn's lines in the app's format, and
    # each worker's start-up objects out of the garbage collector's passes
    text = log.read_text()
    assert "Logging error" not in text, text[:3000]
    assert text.count("objets du démarrage hors du ramasse-miettes") == 2, text[:3000]


def test_what_a_write_reads_first_waits_for_sqlites_lock_as_readers_do(tmp_path):
    """SQLite's writers set busy_timeout to 0 on their connection (they wait for the lock in their own
    steps); the connection a writing request reads its account on before its transaction is taken from that
    pool, and must wait for a lock as SQLite's readers do instead of failing at once. (SQLite only: on
    PostgreSQL that read goes through the request's session.)"""
    url = f"sqlite:///{tmp_path / 'attente.sqlite3'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "attente", "TESTING": True})
    with app.app_context():
        with db.new_session(write=True) as writer:  # the pool's connection now serves a writer
            writer.execute(sa.text("SELECT 1"))
            writer.commit()
        with app.test_request_context("/api/v1/slips/X/picks", method="POST"):
            assert db.read_first(accounts.USER_BY_ID, {"user_id": 1}) is None
        side = app.extensions["logistique.db"].side.connection
        assert side.execute("PRAGMA busy_timeout").fetchone()[0] == db_module.LOCK_TIMEOUT_MS
        db.get_engine().dispose()
