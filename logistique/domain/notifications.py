"""E-mail notifications, written to the outbox in the caller's transaction (one line at each transition) and
sent afterwards by ``logistique.mail``: an SMTP server that is down never fails or slows an action.

French text, numbers and organisation names only: no pupil, guardian or signer is ever named in a message.
Each account chooses on its account page whether it receives them (``User.notify_by_email``); the prefecture's
weekly summary is opt-in (``User.weekly_summary``)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, time, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..db import utcnow
from ..formatting import datetime_fr, number_fr, to_paris
from ..models import OutboxMessage, Role, Slip, User
from . import status

log = logging.getLogger(__name__)

# scheduled notices go out with the first sending pass after this time of day (Paris)
SCHEDULED_AFTER = time(7, 0)
# news older than this is not worth an e-mail: a transition dated in the past (the demo's history, a replayed
# import) notifies nobody, and the sender abandons a message that waited longer (logistique.mail)
STALE_AFTER = timedelta(days=2)
STUCK_LISTED = 20


def _recipients(session: Session, *conditions) -> list[User]:
    return list(
        session.scalars(
            sa.select(User).where(User.is_active, User.notify_by_email, *conditions).order_by(User.id)
        )
    )


def _enqueue(
    session: Session,
    user: User,
    kind: str,
    subject: str,
    body: str,
    *,
    now: datetime,
    link_path: str = "",
    dedupe_key: str | None = None,
    attachment: tuple[str, bytes] | None = None,
) -> bool:
    """Write one message for ``user``; a message with a ``dedupe_key`` already written is not written twice
    (two senders producing the weekly summary at once: one wins). True if written."""
    message = OutboxMessage(
        kind=kind,
        user_id=user.id,
        to_address=user.email,
        subject=subject[:200],
        body=body,
        link_path=link_path,
        dedupe_key=dedupe_key,
        created_at=now,
        next_attempt_at=now,
        attachment_name=attachment[0] if attachment else "",
        attachment=attachment[1] if attachment else None,
    )
    if dedupe_key is None:
        session.add(message)
    else:
        if session.scalar(sa.select(OutboxMessage.id).where(OutboxMessage.dedupe_key == dedupe_key)):
            return False
        try:
            with session.begin_nested():
                session.add(message)
        except sa.exc.IntegrityError:
            return False
    log.info(
        "notification %s mise en file pour le compte %s",
        kind,
        user.id,
        extra={"event": "notification_queued"},
    )
    return True


def _devices(slip: Slip) -> str:
    n = len(slip.active_lines)
    return f"{number_fr(n)} équipement{'s' if n > 1 else ''}"


# ---------------------------------------------------------------- transitions (called by domain.slips)


def _is_news(now: datetime) -> bool:
    return now >= utcnow() - STALE_AFTER


def slip_issued(session: Session, slip: Slip, *, now: datetime) -> None:
    """The warehouse's volunteers learn that a slip awaits preparation."""
    if not _is_news(now):
        return
    for user in _recipients(session, User.role == Role.WAREHOUSE, User.organisation_id == slip.warehouse_id):
        _enqueue(
            session,
            user,
            "slip_issued",
            f"Bordereau {slip.number} à préparer ({_devices(slip)})",
            f"Bonjour,\n\nLe bordereau {slip.number} a été émis le {datetime_fr(now)} pour "
            f"{slip.destination.name} : {_devices(slip)} à préparer à {slip.warehouse.name}.\n\n"
            "Imprimez-le, puis scannez son QR code et chaque équipement pour le préparer.",
            now=now,
            link_path=f"/bordereaux/{slip.number}/preparation",
        )


def slip_shipped(session: Session, slip: Slip, *, now: datetime) -> None:
    """The destination's coordinators learn that their parcel is on its way."""
    if not _is_news(now):
        return
    for user in _recipients(
        session, User.role == Role.COORDINATOR, User.organisation_id == slip.destination_id
    ):
        _enqueue(
            session,
            user,
            "slip_shipped",
            f"Bordereau {slip.number} expédié : {_devices(slip)} en route",
            f"Bonjour,\n\nLe bordereau {slip.number} a quitté {slip.warehouse.name} le {datetime_fr(now)} : "
            f"{_devices(slip)} pour {slip.destination.name}.\n\n"
            "À l'arrivée du colis, ouvrez le bordereau (ou scannez son QR code) et réceptionnez chaque "
            "équipement : reçu, manquant ou endommagé.",
            now=now,
            link_path=f"/bordereaux/{slip.number}/reception",
        )


# ---------------------------------------------------------------- scheduled (called by the sender's pass)


def _due(now: datetime) -> bool:
    return to_paris(now).time() >= SCHEDULED_AFTER


def stuck_slips(session: Session, *, now: datetime, days: int) -> int:
    """Once a day, the administrators get the list of slips waiting for more than ``days`` days (issued and
    not shipped, or shipped and not received). Returns the messages written."""
    if not _due(now):
        return 0
    stuck = status.stuck_slips(
        session, None, status.Territory(None, None, ""), days=days, now=now, limit=STUCK_LISTED
    )
    if not stuck.total:
        return 0
    lines = "\n".join(
        f"- {s.number} ({s.warehouse} → {s.destination}) : {s.reason} depuis {number_fr(s.days)} jours"
        for s in stuck.oldest
    )
    more = stuck.total - len(stuck.oldest)
    body = (
        f"Bonjour,\n\n{number_fr(stuck.total)} bordereau{'x' if stuck.total > 1 else ''} "
        f"attend{'ent' if stuck.total > 1 else ''} depuis plus de {days} jours :\n\n{lines}"
        + (f"\n- et {number_fr(more)} autre(s)" if more > 0 else "")
        + "\n\nLe tableau de bord les liste tous, les plus anciens d'abord."
    )
    day = to_paris(now).date().isoformat()
    written = 0
    for user in _recipients(session, User.role == Role.ADMIN):
        written += _enqueue(
            session,
            user,
            "stuck_slips",
            f"{number_fr(stuck.total)} bordereau{'x' if stuck.total > 1 else ''} bloqué"
            f"{'s' if stuck.total > 1 else ''} depuis plus de {days} jours",
            body,
            now=now,
            link_path=f"/tableau?jours={days}",
            dedupe_key=f"stuck:{day}:{user.id}",
        )
    return written


def weekly_summaries(session: Session, *, now: datetime, summary: Callable[[User], tuple[str, bytes]]) -> int:
    """Once a week (from Monday morning), each prefecture account that opted in gets the board's one-page
    summary of its territory, drawn by ``summary(user)`` → (file name, PDF). Returns the messages written."""
    if not _due(now):
        return 0
    year, week, _ = to_paris(now).isocalendar()
    written = 0
    for user in _recipients(session, User.role == Role.PREFECTURE, User.weekly_summary):
        key = f"weekly:{year}-W{week:02d}:{user.id}"
        if session.scalar(sa.select(OutboxMessage.id).where(OutboxMessage.dedupe_key == key)):
            continue
        attachment = summary(user)
        written += _enqueue(
            session,
            user,
            "weekly_summary",
            f"Synthèse de la semaine {week} — {user.scope_label}",
            f"Bonjour,\n\nVoici la synthèse d'une page de l'opération pour {user.scope_label} au "
            f"{datetime_fr(now)} : besoins, équipements à chaque étape, argent engagé, retards.\n\n"
            "Vous la recevez parce que vous l'avez demandée sur la page de votre compte.",
            now=now,
            link_path="/tableau",
            dedupe_key=key,
            attachment=attachment,
        )
    return written


# ---------------------------------------------------------------- preferences


def set_preferences(user: User, *, by_email: bool, weekly_summary: bool) -> None:
    """What an account wants to receive; the weekly summary exists for prefecture accounts only."""
    user.notify_by_email = by_email
    user.weekly_summary = weekly_summary and by_email and user.role is Role.PREFECTURE
