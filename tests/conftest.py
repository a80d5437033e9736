"""Fixtures: a database of its own per run (SQLite or PostgreSQL), built by the migrations; an app, a client
and a small world of two regions per test; emptied after each test."""

from __future__ import annotations

import contextvars
import os
import uuid
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from flask import Flask, g, has_app_context
from flask.testing import FlaskClient

from logistique import create_app, migrate
from logistique.db import Base, db, make_engine
from logistique.domain import accounts, devices, money, referential, tallies
from logistique.models import (
    CiteEducative,
    Department,
    DeviceCondition,
    DeviceKind,
    EnvelopeKind,
    OrganisationKind,
    Qpv,
    Region,
    Role,
)

PASSWORD = "motdepasse-de-test"
ADMIN_URL = os.environ.get(
    "LOGISTIQUE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def pytest_report_header(config: pytest.Config) -> str:
    return f"logistique test database: {os.environ.get('LOGISTIQUE_TEST_DATABASE', 'sqlite')}"


@pytest.fixture(scope="session", autouse=True)
def _cheap_password_hashes() -> Iterator[None]:
    # scrypt costs ~0.15 s a hash: fine for people, too slow for hundreds of fixture accounts
    saved = accounts.PASSWORD_METHOD
    accounts.PASSWORD_METHOD = "pbkdf2:sha256:1000"
    yield
    accounts.PASSWORD_METHOD = saved


@pytest.fixture(scope="session")
def backend() -> str:
    name = os.environ.get("LOGISTIQUE_TEST_DATABASE", "sqlite")
    assert name in {"sqlite", "postgresql"}, f"LOGISTIQUE_TEST_DATABASE={name!r}: sqlite or postgresql"
    return name


@pytest.fixture(scope="session")
def database_url(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database created for this run and dropped at its end, migrated to head."""
    if backend == "sqlite":
        url = "sqlite:///" + str(tmp_path_factory.mktemp("db") / "test.sqlite3")
        engine = make_engine(url)
        migrate.upgrade(engine)
        engine.dispose()
        yield url
        return
    name = f"logistique_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:
        pytest.exit(f"PostgreSQL injoignable ({ADMIN_URL}) : {exc}", returncode=3)
    url = ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    yield url
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


def _empty(url: str) -> None:
    engine = make_engine(url)
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql(
                "TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"
            )
        else:
            for table in tables:
                conn.exec_driver_sql(f'DELETE FROM "{table}"')
    engine.dispose()


class IsolatedClient(FlaskClient):
    """Each request runs in a context of its own, as in production: it gets its own application context,
    database session and login state instead of sharing the test's. The test's session is then expired so
    that it reads what the request committed."""

    def open(self, *args, **kwargs):
        # a streamed response (CSV export) is read inside the request's context, as a server would read it
        kwargs.setdefault("buffered", True)
        response = contextvars.Context().run(super().open, *args, **kwargs)
        if has_app_context() and "db_session" in g and not (db.session.dirty or db.session.new):
            db.session.rollback()
            db.session.expire_all()
        return response


@pytest.fixture
def app(database_url: str) -> Iterator[Flask]:
    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": database_url,
            "SECRET_KEY": "secret-de-test",
            "WTF_CSRF_ENABLED": False,
            "BASE_URL": "https://logistique.test",
            "DEMO_MODE": False,
        }
    )
    app.test_client_class = IsolatedClient
    with app.app_context():
        yield app
        db.session.rollback()
        # whatever the test did through the domain, the board's counters still match a recount
        drift = tallies.differences(db.session)
        db.session.rollback()
        db.session.close()
        db.get_engine().dispose()
    _empty(database_url)
    assert not drift, "compteurs du tableau de bord faux :\n" + "\n".join(drift)


@pytest.fixture
def session(app: Flask):
    return db.session


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask):
    return app.test_cli_runner()


def login(client: FlaskClient, user, password: str = PASSWORD, next_url: str | None = None):
    """Log ``user`` in through the login form; returns the response."""
    url = "/login" + (f"?next={next_url}" if next_url else "")
    return client.post(url, data={"email": user.email, "password": password})


@pytest.fixture
def login_as(client: FlaskClient):
    def do(user) -> FlaskClient:
        client.post("/logout")
        response = login(client, user)
        assert response.status_code == 302, response.get_data(as_text=True)
        return client

    return do


@pytest.fixture
def api(app: Flask, session):
    """``api(user)`` → a client whose requests carry that user's bearer token."""

    def for_user(user) -> FlaskClient:
        token = accounts.create_token(session, user)
        session.commit()
        client = app.test_client()
        client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        return client

    return for_user


@pytest.fixture
def world(session) -> SimpleNamespace:
    """Two regions: Hauts-de-France (Nord, Somme) and Île-de-France (Seine-Saint-Denis), with warehouses,
    associations, accounts of every role, envelopes, lots and a few devices in stock."""
    w = SimpleNamespace()
    session.add_all([Region(code="32", name="Hauts-de-France"), Region(code="11", name="Île-de-France")])
    session.flush()
    session.add_all(
        [
            Department(code="59", name="Nord", region_code="32"),
            Department(code="80", name="Somme", region_code="32"),
            Department(code="93", name="Seine-Saint-Denis", region_code="11"),
        ]
    )
    session.flush()
    session.add_all(
        [
            Qpv(
                code="QN05981M",
                name="Nouveau Roubaix",
                department_code="59",
                list_year=2024,
                commune_codes="59512",
                commune_names="Roubaix",
            ),
            Qpv(code="QP059001", name="Quartier 2015 du Nord", department_code="59", list_year=2015),
            Qpv(code="QN08001M", name="Amiens Nord", department_code="80", list_year=2024),
            Qpv(code="QN09301M", name="Quartier de Bobigny", department_code="93", list_year=2024),
            CiteEducative(code="cite-064", name="Roubaix", commune_codes="59512", department_code="59"),
        ]
    )
    session.flush()

    def org(kind: OrganisationKind, name: str, dep: str, qpvs: list[str] = (), uai: str = ""):
        return referential.save_organisation(
            session,
            referential.OrganisationData(
                kind=kind,
                name=name,
                department_code=dep,
                uai=uai,
                address="1 rue de la Paix",
                postal_code=dep + "000",
                city=name.split()[-1],
                qpv_codes=list(qpvs),
            ),
            by=None,
        )

    w.wh_lille = org(OrganisationKind.WAREHOUSE, "Entrepôt Lille", "59")
    w.wh_amiens = org(OrganisationKind.WAREHOUSE, "Entrepôt Amiens", "80")
    w.wh_bobigny = org(OrganisationKind.WAREHOUSE, "Entrepôt Bobigny", "93")
    w.assoc_roubaix = org(OrganisationKind.ASSOCIATION, "Association Roubaix", "59", ["QN05981M", "QP059001"])
    w.assoc_amiens = org(OrganisationKind.ASSOCIATION, "Association Amiens", "80", ["QN08001M"])
    w.assoc_bobigny = org(OrganisationKind.ASSOCIATION, "Association Bobigny", "93", ["QN09301M"])
    w.school_roubaix = org(OrganisationKind.SCHOOL, "Collège Roubaix", "59", ["QN05981M"], uai="0750654D")

    def user(email: str, role: Role, **scope):
        return accounts.create_user(session, email=f"{email}@test.fr", role=role, password=PASSWORD, **scope)

    w.admin = user("admin", Role.ADMIN)
    w.warehouse = user("entrepot.lille", Role.WAREHOUSE, organisation_id=w.wh_lille.id)
    w.warehouse_amiens = user("entrepot.amiens", Role.WAREHOUSE, organisation_id=w.wh_amiens.id)
    w.warehouse_idf = user("entrepot.bobigny", Role.WAREHOUSE, organisation_id=w.wh_bobigny.id)
    w.coordinator = user("coord.roubaix", Role.COORDINATOR, organisation_id=w.assoc_roubaix.id)
    w.coordinator_idf = user("coord.bobigny", Role.COORDINATOR, organisation_id=w.assoc_bobigny.id)
    w.prefecture = user("pref.region", Role.PREFECTURE, territory="region:32")
    w.prefecture_nord = user("pref.nord", Role.PREFECTURE, territory="departement:59")
    w.prefecture_somme = user("pref.somme", Role.PREFECTURE, territory="departement:80")
    w.prefecture_idf = user("pref.idf", Role.PREFECTURE, territory="region:11")

    w.envelope = money.save_envelope(
        session,
        money.EnvelopeData(
            region_code="32",
            kind=EnvelopeKind.DELEGATED,
            label="Crédits délégués HDF",
            amount_cents=695_294_00,
        ),
        by=None,
    )
    w.envelope_idf = money.save_envelope(
        session,
        money.EnvelopeData(
            region_code="11",
            kind=EnvelopeKind.DELEGATED,
            label="Crédits délégués IDF",
            amount_cents=100_000_00,
        ),
        by=None,
    )
    w.tablet = money.get_or_create_model(session, DeviceKind.TABLET, "Galaxy Tab A", by=None)
    w.laptop = money.get_or_create_model(session, DeviceKind.LAPTOP, "ThinkPad T470", by=None)
    w.key = money.get_or_create_model(session, DeviceKind.HOTSPOT, "Huawei E5576", by=None)
    costs = {w.tablet.id: 15000, w.laptop.id: 23000, w.key.id: 6500}

    def lot(reference: str, warehouse, envelope):
        return money.save_lot(
            session,
            money.LotData(
                reference=reference,
                supplier="Emmaüs Connect",
                envelope_id=envelope.id,
                warehouse_id=warehouse.id,
                unit_costs=dict(costs),
            ),
            by=None,
        )

    w.lot = lot("LOT-LILLE", w.wh_lille, w.envelope)
    w.lot_amiens = lot("LOT-AMIENS", w.wh_amiens, w.envelope)
    w.lot_idf = lot("LOT-IDF", w.wh_bobigny, w.envelope_idf)

    def device(serial: str, lot, model):
        return devices.receive_device(
            session, lot=lot, model=model, serial=serial, condition=DeviceCondition.REFURBISHED, by=None
        )

    w.device = device("SN-LILLE-1", w.lot, w.tablet)
    w.device2 = device("SN-LILLE-2", w.lot, w.laptop)
    w.device3 = device("SN-LILLE-3", w.lot, w.key)
    w.device_amiens = device("SN-AMIENS-1", w.lot_amiens, w.tablet)
    w.device_idf = device("SN-IDF-1", w.lot_idf, w.tablet)
    session.commit()
    return w
