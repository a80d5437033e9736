"""Running it in production: health checks, backups, and two hosts migrating one database at once."""

from __future__ import annotations

import sqlite3
import threading

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory

from logistique import create_app, migrate
from logistique.db import Base, db, make_engine
from logistique.domain import accounts, devices
from logistique.models import Device, DeviceCondition, Role, User

from .conftest import ADMIN_URL, PASSWORD

# ---------------------------------------------------------------- health


def _ready(url: str):
    """GET /readyz and /healthz of an app on ``url``."""
    app = create_app({"TESTING": True, "DATABASE_URL": url, "SECRET_KEY": "secret-de-test"})
    client = app.test_client()
    try:
        return client.get("/readyz"), client.get("/healthz")
    finally:
        app.extensions["logistique.db"].engine.dispose()


def test_healthz_and_readyz_answer_without_login_and_without_data(client):
    alive = client.get("/healthz")
    assert alive.status_code == 200 and alive.get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.get_data(as_text=True)
    assert ready.get_json() == {"status": "ok", "database": "ok", "schema": "à jour"}
    assert ready.headers["Cache-Control"] == "no-store"


def test_readyz_is_503_when_the_schema_is_behind_or_the_database_unreachable(tmp_path):
    url = "sqlite:///" + str(tmp_path / "behind.sqlite3")
    engine = make_engine(url)
    script = ScriptDirectory.from_config(migrate.alembic_config(url))
    previous = script.get_revision(migrate.head_revision()).down_revision
    migrate.upgrade(engine, previous)  # code newer than the database: `init-db` has not run yet
    engine.dispose()
    behind, _ = _ready(url)
    assert behind.status_code == 503
    assert behind.get_json() == {"status": "indisponible", "database": "ok", "schema": "pas à jour"}
    # …and ready once migrated, with the alive check answering all along
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    assert _ready(url)[0].status_code == 200

    empty, _ = _ready("sqlite:///" + str(tmp_path / "vide.sqlite3"))
    assert empty.status_code == 503 and empty.get_json()["schema"] == "pas à jour"

    answer, alive = _ready("sqlite:///" + str(tmp_path / "absent" / "x.sqlite3"))
    assert answer.status_code == 503
    assert answer.get_json() == {"status": "indisponible", "database": "injoignable"}
    assert alive.status_code == 200  # alive: a restart would not cure the database


# ---------------------------------------------------------------- backup and restore


def _contents(engine: sa.Engine) -> dict[str, list[tuple]]:
    """Every row of every table (and the schema revision), in a stable order."""
    tables = [
        *Base.metadata.sorted_tables,
        sa.Table("alembic_version", sa.MetaData(), sa.Column("version_num")),
    ]
    with engine.connect() as connection:
        return {
            t.name: [tuple(r) for r in connection.execute(sa.select(t).order_by(*t.columns))] for t in tables
        }


def test_backup_then_restore_gives_back_the_database_as_it_was(app, session, world, runner, tmp_path):
    engine = db.get_engine()
    session.close()
    before = _contents(engine)
    assert before["devices"] and before["users"]
    copy = tmp_path / "nuit.dump"
    result = runner.invoke(args=["backup", str(copy)])
    assert result.exit_code == 0, result.output
    assert "Sauvegarde écrite" in result.output and copy.stat().st_size > 0
    assert copy.stat().st_mode & 0o777 == 0o600  # names of minors inside: readable by its owner only

    # the day goes on: an account is created, a device received, a serial corrected
    accounts.create_user(session, email="nouveau@test.fr", role=Role.ADMIN, password=PASSWORD)
    devices.receive_device(
        session, lot=world.lot, model=world.tablet, serial="SN-APRES", condition=DeviceCondition.NEW, by=None
    )
    session.execute(sa.update(Device).where(Device.id == world.device3.id).values(serial="SN-RENOMME"))
    session.commit()
    session.close()
    assert _contents(engine) != before

    refused = runner.invoke(args=["restore", str(copy)], input="n\n")
    assert refused.exit_code != 0 and _contents(engine) != before  # asked, refused: nothing restored
    result = runner.invoke(args=["restore", str(copy), "--yes"])
    assert result.exit_code == 0, result.output
    assert _contents(engine) == before
    assert session.scalar(sa.select(User).where(User.email == "nouveau@test.fr")) is None
    assert session.scalar(sa.select(Device.serial).where(Device.id == world.device3.id)) == "SN-LILLE-3"
    assert session.scalar(sa.select(Device).where(Device.serial == "SN-APRES")) is None
    session.close()


def test_restore_refuses_a_file_that_is_not_a_backup_and_changes_nothing(
    app, session, world, runner, tmp_path
):
    engine = db.get_engine()
    session.close()
    before = _contents(engine)
    junk = tmp_path / "pas-une-sauvegarde.dump"
    junk.write_bytes(b"numero_serie;type\nSN-1;tablette\n")
    result = runner.invoke(args=["restore", str(junk), "--yes"])
    assert result.exit_code != 0
    assert "n'est pas une sauvegarde" in result.output
    assert _contents(engine) == before


# ---------------------------------------------------------------- two hosts migrating at once


@pytest.fixture
def fresh_url(backend, database_url, tmp_path):
    """An empty database of the test's engine, dropped afterwards."""
    if backend == "sqlite":
        yield "sqlite:///" + str(tmp_path / "fresh.sqlite3")
        return
    name = database_url.rsplit("/", 1)[1] + "_hosts"
    admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    yield ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


def test_two_hosts_starting_at_once_migrate_one_after_the_other(fresh_url):
    """Both `init-db` succeed; the second finds the schema at head (PostgreSQL advisory lock, SQLite's
    write lock) instead of creating the same tables a second time."""
    start = threading.Barrier(2)
    errors: list[BaseException] = []
    found: list[str | None] = []  # the revision each host found, once it held the lock

    def host() -> None:
        engine = make_engine(fresh_url)
        try:
            start.wait()
            found.append(migrate.upgrade(engine))
        except BaseException as exc:  # noqa: BLE001 — reported by the assertion below
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=host) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    # one migrated, the other found it done (None first whatever the head revision's id sorts like)
    assert sorted(found, key=lambda rev: (rev is not None, str(rev))) == [None, migrate.head_revision()]
    engine = make_engine(fresh_url)
    try:
        assert migrate.current_revision(engine) == migrate.head_revision()
        assert migrate.drift(engine) == []
    finally:
        engine.dispose()


def test_a_new_sqlite_file_another_host_is_writing_is_opened_once_it_is_free(tmp_path):
    """Switching a new file to WAL needs its exclusive lock; while another host holds its write lock, SQLite
    answers « database is locked » at once, without waiting (it would be a deadlock). The app waits for the
    lock like a writer does instead of failing: two hosts running `init-db` on a new file failed so in CI."""
    path = tmp_path / "new.sqlite3"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE other_host (x INTEGER)")
    other.execute("BEGIN IMMEDIATE")  # the other host's write lock, still in the rollback journal
    released = threading.Timer(0.3, lambda: other.execute("COMMIT"))
    released.start()
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("SELECT count(*) FROM other_host").scalar() == 0
    finally:
        released.join()
        engine.dispose()
        other.close()
