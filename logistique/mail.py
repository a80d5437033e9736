"""Sending the outbox over SMTP (Flask-Mailman), after the actions that wrote it.

A pass claims the messages that are due (a lease, so that two senders on two hosts never take the same one),
sends them on one SMTP connection, marks each one sent, and on failure retries it later with an exponential
backoff; a message that failed ``MAX_ATTEMPTS`` times, or waited more than ``MAX_AGE``, is abandoned. The
scheduled notices (stuck slips, weekly summary) are written by the same pass."""

from __future__ import annotations

import contextlib
import logging
import signal
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from urllib.parse import unquote, urlsplit

import sqlalchemy as sa
from flask import Flask, current_app
from flask_mailman import EmailMessage, Mail

from .db import db, utcnow
from .domain import notifications
from .models import OutboxMessage, OutboxStatus, User

log = logging.getLogger(__name__)
mail = Mail()

MAX_ATTEMPTS = 8  # 30 s, 1, 2, 4, 8, 16, 32 min, then abandoned: about an hour of outage is survived
FIRST_RETRY = timedelta(seconds=30)
LONGEST_WAIT = timedelta(hours=1)
LEASE = timedelta(minutes=5)  # longer than one SMTP exchange can take (timeout below)
MAX_AGE = notifications.STALE_AFTER  # « slip shipped » two days late is noise, not news
KEEP_SENT = timedelta(days=30)
BATCH = 100
SMTP_TIMEOUT = 10  # seconds: a server that does not answer never holds a pass for long

_SCHEMES = {"smtp": (25, False, False), "smtp+starttls": (587, True, False), "smtps": (465, False, True)}


class SmtpUrlError(ValueError):
    """LOGISTIQUE_SMTP_URL cannot be understood."""


def smtp_settings(url: str | None) -> dict[str, object]:
    """Flask-Mailman's settings for ``smtp://[user:password@]host[:port]`` (also ``smtp+starttls://``,
    ``smtps://``); no URL, no sending."""
    if not url:
        return {"MAIL_BACKEND": "dummy"}
    parts = urlsplit(url)
    if parts.scheme not in _SCHEMES or not parts.hostname:
        raise SmtpUrlError(
            f"LOGISTIQUE_SMTP_URL={parts.scheme}://… : attendu smtp://hôte:port, smtp+starttls://… ou smtps://…"
        )
    port, starttls, ssl = _SCHEMES[parts.scheme]
    return {
        "MAIL_BACKEND": "smtp",
        "MAIL_SERVER": parts.hostname,
        "MAIL_PORT": parts.port or port,
        "MAIL_USE_TLS": starttls,
        "MAIL_USE_SSL": ssl,
        "MAIL_USERNAME": unquote(parts.username) if parts.username else None,
        "MAIL_PASSWORD": unquote(parts.password) if parts.password else None,
        "MAIL_TIMEOUT": SMTP_TIMEOUT,
    }


def init_app(app: Flask) -> None:
    """Configure Flask-Mailman from LOGISTIQUE_SMTP_URL and LOGISTIQUE_MAIL_FROM."""
    from .config import ConfigError

    try:
        app.config.update(smtp_settings(app.config.get("SMTP_URL")))
    except SmtpUrlError as exc:
        raise ConfigError(str(exc)) from exc
    app.config["MAIL_DEFAULT_SENDER"] = app.config["MAIL_FROM"]
    mail.init_app(app)


def is_enabled() -> bool:
    return current_app.config.get("MAIL_BACKEND") == "smtp"


def backoff(attempts: int) -> timedelta:
    """Wait before the next try after ``attempts`` failed ones."""
    return min(FIRST_RETRY * 2 ** max(attempts - 1, 0), LONGEST_WAIT)


@dataclass
class PassReport:
    queued: int = 0  # scheduled notices written by this pass
    sent: int = 0
    failed: int = 0  # to be retried
    abandoned: int = 0

    def __str__(self) -> str:
        return (
            f"{self.queued} message(s) planifié(s), {self.sent} envoyé(s), {self.failed} en échec "
            f"(nouvel essai plus tard), {self.abandoned} abandonné(s)."
        )


# ---------------------------------------------------------------- one pass


def run_pass(now: datetime | None = None) -> PassReport:
    """Write the scheduled notices that are due, then send what the outbox holds. Needs an app context."""
    now = now or utcnow()
    report = PassReport()
    if not is_enabled():
        return report
    report.queued = queue_scheduled(now)
    deliver(now, report)
    return report


def queue_scheduled(now: datetime) -> int:
    """The daily stuck-slips notice and the weekly summaries, once each whatever the number of senders."""
    with db.new_session(write=True) as session:
        written = notifications.stuck_slips(session, now=now, days=current_app.config["STUCK_DAYS"])
        written += notifications.weekly_summaries(
            session, now=now, summary=lambda u: _summary(session, u, now)
        )
        session.commit()
    return written


def _summary(session, user: User, now: datetime) -> tuple[str, bytes]:
    from .domain import paperwork, status
    from .formatting import to_paris
    from .pdf import summary_pdf

    territory = status.resolve(session, user, None)
    document = paperwork.summary_document(
        session, user, territory, days=current_app.config["STUCK_DAYS"], now=now
    )
    return f"synthese-{to_paris(now):%Y%m%d}.pdf", summary_pdf(document)


def deliver(now: datetime, report: PassReport | None = None) -> PassReport:
    """Send the due messages of the outbox (one SMTP connection), retry failures later, never send twice."""
    report = report or PassReport()
    with db.new_session(write=True) as session:
        _expire(session, now, report)
        claimed = _claim(session, now)
        if not claimed:
            return report
        messages = session.scalars(
            sa.select(OutboxMessage).where(OutboxMessage.id.in_(claimed)).order_by(OutboxMessage.id)
        ).all()
        try:
            connection = mail.get_connection(fail_silently=False)
            connection.open()
        except Exception as exc:  # noqa: BLE001 — any failure to reach the server: retry every message later
            for message in messages:
                _failed(session, message, now, exc, report)
            return report
        try:
            for message in messages:
                try:
                    connection.send_messages([_email(message, connection)])
                except Exception as exc:  # noqa: BLE001 — this message only: the others still go
                    _failed(session, message, now, exc, report)
                else:
                    _sent(session, message, now, report)
        finally:
            with contextlib.suppress(Exception):  # the messages are sent: a failed QUIT changes nothing
                connection.close()
        session.execute(
            sa.delete(OutboxMessage).where(
                OutboxMessage.status == OutboxStatus.SENT, OutboxMessage.sent_at < now - KEEP_SENT
            )
        )
        session.commit()
    return report


def _expire(session, now: datetime, report: PassReport) -> None:
    result = session.execute(
        sa.update(OutboxMessage)
        .where(OutboxMessage.status == OutboxStatus.PENDING, OutboxMessage.created_at < now - MAX_AGE)
        .values(status=OutboxStatus.ABANDONED, last_error="trop ancien pour être encore utile")
    )
    report.abandoned += result.rowcount
    session.commit()


def _claim(session, now: datetime) -> list[int]:
    """Take the due messages for LEASE: a guarded update, so that of two senders only one gets each."""
    free = sa.or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until < now)
    due = session.scalars(
        sa.select(OutboxMessage.id)
        .where(OutboxMessage.status == OutboxStatus.PENDING, OutboxMessage.next_attempt_at <= now, free)
        .order_by(OutboxMessage.id)
        .limit(BATCH)
    ).all()
    claimed = []
    for message_id in due:
        won = session.execute(
            sa.update(OutboxMessage)
            .where(OutboxMessage.id == message_id, OutboxMessage.status == OutboxStatus.PENDING, free)
            .values(claimed_until=now + LEASE, attempts=OutboxMessage.attempts + 1)
        ).rowcount
        if won == 1:
            claimed.append(message_id)
    session.commit()
    return claimed


def _email(message: OutboxMessage, connection) -> EmailMessage:
    base = current_app.config["BASE_URL"]
    body = message.body
    if message.link_path:
        body += f"\n\n{base}{message.link_path}"
    body += (
        "\n\n-- \nMessage automatique de logistique (plan de continuité éducative) : ne pas répondre.\n"
        f"Pour ne plus recevoir ces messages : {base}/compte"
    )
    email = EmailMessage(
        subject=message.subject,
        body=body,
        to=[message.to_address],
        connection=connection,
        # the same Message-ID on every try: a client that got a message twice shows it once
        headers={"Message-ID": f"<outbox-{message.id}-{message.created_at:%Y%m%d%H%M%S}@logistique>"},
    )
    if message.attachment:
        email.attach(message.attachment_name or "piece-jointe.pdf", message.attachment, "application/pdf")
    return email


def _sent(session, message: OutboxMessage, now: datetime, report: PassReport) -> None:
    session.execute(
        sa.update(OutboxMessage)
        .where(OutboxMessage.id == message.id)
        .values(status=OutboxStatus.SENT, sent_at=now, claimed_until=None, last_error="")
    )
    session.commit()  # at once: a crash later in the pass must not send it again
    report.sent += 1
    log.info(
        "notification %s envoyée (message %s, essai %s)",
        message.kind,
        message.id,
        message.attempts,
        extra={"event": "notification_sent"},
    )


def _failed(session, message: OutboxMessage, now: datetime, exc: Exception, report: PassReport) -> None:
    give_up = message.attempts >= MAX_ATTEMPTS
    session.execute(
        sa.update(OutboxMessage)
        .where(OutboxMessage.id == message.id)
        .values(
            status=OutboxStatus.ABANDONED if give_up else OutboxStatus.PENDING,
            next_attempt_at=now + backoff(message.attempts),
            claimed_until=None,
            last_error=f"{type(exc).__name__}: {exc}"[:300],
        )
    )
    session.commit()
    if give_up:
        report.abandoned += 1
    else:
        report.failed += 1
    # the error's class only: an SMTP refusal quotes the address
    log.warning(
        "notification %s non envoyée (message %s, essai %s, %s)%s",
        message.kind,
        message.id,
        message.attempts,
        type(exc).__name__,
        " : abandonnée" if give_up else "",
        extra={"event": "notification_failed"},
    )


# ---------------------------------------------------------------- long-running sender


def run_forever(interval: float) -> None:
    """A pass every ``interval`` seconds until SIGTERM or Ctrl+C (systemd, scripts/serve); each pass that did
    something is one log line (JSON with LOGISTIQUE_LOG_FORMAT=json)."""
    stopping = False

    def stop(_signum, _frame) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    log.info("envoi des notifications toutes les %g s", interval, extra={"event": "sender_started"})
    try:
        while not stopping:
            try:
                report = run_pass()
                if report.queued or report.sent or report.failed or report.abandoned:
                    log.info("%s", report, extra={"event": "notification_pass", **asdict(report)})
            except sa.exc.SQLAlchemyError as exc:  # database unreachable for a moment: try again later
                log.warning("envoi des notifications : base injoignable (%s)", type(exc).__name__)
            deadline = time.monotonic() + interval
            while not stopping and time.monotonic() < deadline:
                time.sleep(min(1.0, interval))
    except KeyboardInterrupt:
        pass
    log.info("envoi des notifications arrêté", extra={"event": "sender_stopped"})
