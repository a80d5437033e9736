"""Commands of the security chapter: API tokens listed and revoked, expired records cleaned up."""

from __future__ import annotations

from datetime import timedelta

import click
from flask.cli import with_appcontext

from .cli import _fail
from .db import db, utcnow
from .domain import accounts, api_tokens, retention
from .domain.errors import DomainError


def _day(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "—"


@click.command("list-tokens")
@click.argument("email")
@with_appcontext
def list_tokens(email: str) -> None:
    """List the API tokens of an account (number, prefix, label, dates, state); never their value."""
    try:
        user = accounts.get_user_by_email(db.session, email)
    except DomainError as exc:
        _fail(exc.message)
        return
    tokens = api_tokens.list_tokens(db.session, user=user, by=None)
    if not tokens:
        click.echo(f"Aucun jeton pour {user.email}.")
        return
    click.echo("n°\tdébut\tlibellé\tcréé le\tdernier usage\texpire le\tétat")
    for t in tokens:
        click.echo(
            f"{t.id}\t{t.prefix}…\t{t.label or '—'}\t{_day(t.created_at)}\t{_day(t.last_used_at)}\t"
            f"{_day(t.expires_at)}\t{api_tokens.token_state(t)}"
        )


@click.command("revoke-token")
@click.argument("token_id", type=click.IntRange(min=1, max=2**31 - 1))
@with_appcontext
def revoke_token(token_id: int) -> None:
    """Revoke an API token by its number (see list-tokens): it is refused from now on."""
    try:
        token = api_tokens.revoke_token(db.session, token_id, by=None)
    except DomainError as exc:
        _fail(exc.message)
        return
    db.session.commit()
    click.echo(f"Jeton n° {token.id} ({token.prefix}…) de {token.user.email} révoqué.")


@click.command("cleanup")
@with_appcontext
def cleanup() -> None:
    """Delete what has expired: stored answers of API retries older than a day, old login failures."""
    answers = retention.delete_expired_idempotency(db.session)
    throttles = retention.delete_stale_throttles(db.session)
    db.session.commit()
    click.echo(
        f"{answers} réponse(s) d'API rejouable(s) expirée(s) et {throttles} trace(s) de connexion supprimées."
    )


def token_expiry(days: int | None):
    """The expiry of a token valid for ``days`` days from now (None: no expiry)."""
    return utcnow() + timedelta(days=days) if days else None


COMMANDS = [list_tokens, revoke_token, cleanup]
