"""The command line: init-db, create-user, create-token, load-demo."""

from __future__ import annotations

import sqlalchemy as sa

from logistique.domain import accounts
from logistique.models import ApiToken, Device, DeviceStatus, Envelope, EnvelopeKind, Lot, Qpv, Role, User


def test_init_db_is_idempotent(runner, app):
    result = runner.invoke(args=["init-db"])
    assert result.exit_code == 0, result.output
    assert "Schéma à jour" in result.output


def test_create_user_prints_a_generated_password_once(runner, world, session):
    result = runner.invoke(
        args=[
            "create-user",
            "Nouvelle@Test.fr",
            "--role",
            "warehouse",
            "--organisation",
            str(world.wh_amiens.id),
        ]
    )
    assert result.exit_code == 0, result.output
    password = result.output.split("Mot de passe (affiché une seule fois) : ")[1].strip()
    user = session.scalar(sa.select(User).where(User.email == "nouvelle@test.fr"))
    assert user.role is Role.WAREHOUSE and user.organisation_id == world.wh_amiens.id
    assert password not in user.password_hash
    assert (
        accounts.authenticate(
            session, email="nouvelle@test.fr", password=password, client="t", demo_mode=False
        ).user
        == user
    )


def test_create_user_reads_the_password_from_stdin(runner, world, session):
    result = runner.invoke(
        args=["create-user", "pref@test.fr", "--role", "prefecture", "--territory", "80", "--password-stdin"],
        input="un-mot-de-passe-long\n",
    )
    assert result.exit_code == 0, result.output
    assert "un-mot-de-passe-long" not in result.output
    user = session.scalar(sa.select(User).where(User.email == "pref@test.fr"))
    assert (user.territory_kind.value, user.territory_code) == ("departement", "80")


def test_create_user_refuses_a_scope_that_does_not_fit_the_role(runner, world, session):
    cases = [
        (["--role", "warehouse", "--organisation", str(world.assoc_roubaix.id)], "de type entrepôt"),
        (["--role", "coordinator"], "doit être rattaché à une structure"),
        (["--role", "prefecture", "--territory", "99"], "Territoire inconnu"),
        (["--role", "admin", "--territory", "32"], "ni structure ni territoire"),
    ]
    for args, message in cases:
        result = runner.invoke(args=["create-user", "x@test.fr", *args])
        assert result.exit_code != 0 and message in result.output, (args, result.output)
    assert session.scalar(sa.select(User).where(User.email == "x@test.fr")) is None
    duplicate = runner.invoke(args=["create-user", world.admin.email, "--role", "admin"])
    assert duplicate.exit_code != 0 and "existe déjà" in duplicate.output


def test_create_token_stores_only_its_hash(runner, world, session, client):
    result = runner.invoke(args=["create-token", world.warehouse.email])
    assert result.exit_code == 0, result.output
    token = result.output.strip()
    rows = session.scalars(sa.select(ApiToken)).all()
    assert len(rows) == 1 and token not in {rows[0].token_hash, rows[0].prefix}
    assert rows[0].token_hash == accounts.hash_token(token)
    response = client.get("/api/v1/devices", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    unknown = runner.invoke(args=["create-token", "personne@test.fr"])
    assert unknown.exit_code != 0 and "Aucun compte" in unknown.output


def test_load_demo_builds_the_hauts_de_france_operation(runner, app, session, client):
    result = runner.invoke(args=["load-demo"])
    assert result.exit_code == 0, result.output
    assert session.scalar(sa.select(sa.func.count(Qpv.code))) == 204
    delegated = session.scalar(sa.select(Envelope).where(Envelope.kind == EnvelopeKind.DELEGATED))
    assert delegated.amount_cents == 695_294_00
    roles = set(session.scalars(sa.select(User.role)))
    assert roles == set(Role)
    assert 2 <= session.scalar(sa.select(sa.func.count(Lot.id))) <= 3
    devices = session.scalar(
        sa.select(sa.func.count(Device.id)).where(Device.status == DeviceStatus.IN_STOCK)
    )
    assert devices >= 500
    for user in session.scalars(sa.select(User)):
        assert user.email in result.output and user.is_demo
    again = runner.invoke(args=["load-demo", "--if-empty"])
    assert again.exit_code == 0 and "déjà des données" in again.output
    assert session.scalar(sa.select(sa.func.count(Qpv.code))) == 204
