"""API tokens (issue 10, point 9): listed and revoked on the command line and on an admin page, with an
optional expiry; a revoked or expired token is refused at once."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from logistique.db import utcnow
from logistique.domain import accounts
from logistique.models import ApiToken

from .conftest import login


def _bearer(app, token: str):
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client


def test_list_and_revoke_tokens_on_the_command_line(app, session, world, runner):
    created = runner.invoke(args=["create-token", world.warehouse.email, "--label", "stock Emmaüs"])
    assert created.exit_code == 0, created.output
    token = created.output.strip()
    assert _bearer(app, token).get("/api/v1/devices").status_code == 200

    listed = runner.invoke(args=["list-tokens", world.warehouse.email])
    assert listed.exit_code == 0, listed.output
    assert "stock Emmaüs" in listed.output and token[:10] in listed.output and "actif" in listed.output
    assert token not in listed.output  # only its beginning: the value is never shown again

    row = session.scalar(sa.select(ApiToken).where(ApiToken.user_id == world.warehouse.id))
    revoked = runner.invoke(args=["revoke-token", str(row.id)])
    assert revoked.exit_code == 0, revoked.output
    assert "révoqué" in revoked.output
    assert _bearer(app, token).get("/api/v1/devices").status_code == 401
    assert "révoqué" in runner.invoke(args=["list-tokens", world.warehouse.email]).output
    again = runner.invoke(args=["revoke-token", str(row.id)])
    assert again.exit_code != 0 and "déjà révoqué" in again.output
    unknown = runner.invoke(args=["revoke-token", "99999999999999999999"])
    assert unknown.exit_code != 0


def test_a_token_can_expire(app, session, world, runner):
    created = runner.invoke(args=["create-token", world.warehouse.email, "--expires-in-days", "30"])
    assert created.exit_code == 0, created.output
    token = created.output.strip()
    assert _bearer(app, token).get("/api/v1/devices").status_code == 200
    row = session.scalar(sa.select(ApiToken).where(ApiToken.user_id == world.warehouse.id))
    assert timedelta(days=29) < row.expires_at - utcnow() <= timedelta(days=30)
    session.execute(
        sa.update(ApiToken).where(ApiToken.id == row.id).values(expires_at=utcnow() - timedelta(seconds=1))
    )
    session.commit()
    assert _bearer(app, token).get("/api/v1/devices").status_code == 401
    assert "expiré" in runner.invoke(args=["list-tokens", world.warehouse.email]).output


def test_an_admin_sees_and_revokes_tokens_on_a_page(app, session, world):
    token = accounts.create_token(session, world.coordinator, "tableur")
    session.commit()
    row = session.scalar(sa.select(ApiToken).where(ApiToken.user_id == world.coordinator.id))
    client = app.test_client()
    assert login(client, world.admin).status_code == 302
    page = client.get("/admin/jetons")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert world.coordinator.email in text and "tableur" in text and token[:10] in text
    assert token not in text
    response = client.post(f"/admin/jetons/{row.id}/revoquer")
    assert response.status_code == 302
    assert _bearer(app, token).get("/api/v1/organisations").status_code == 401
    assert "Révoqué" in client.get("/admin/jetons").get_data(as_text=True)
    # only admins
    other = app.test_client()
    assert login(other, world.coordinator).status_code == 302
    assert other.get("/admin/jetons").status_code == 403
