"""E-mail notifications through a real SMTP server started here (aiosmtpd): written in the action's
transaction, sent afterwards, retried when the server is down, never sent twice, never naming a pupil."""

from __future__ import annotations

import email
import email.policy
import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller

from logistique import mail
from logistique.config import ConfigError
from logistique.db import db, utcnow
from logistique.domain import slips
from logistique.models import OutboxMessage, OutboxStatus, SlipStatus, User

from .factories import bundle, issued_slip, pick_all

NAMES = (
    "Léa",
    "MartinA",
    "Tom",
    "MartinB",
    "Parent MartinA",
    "Parent MartinB",
    "06 12 34 56 78",
    "0612345678",
)


class Inbox:
    """What the SMTP server received: (recipients, parsed message)."""

    def __init__(self) -> None:
        self.received: list[tuple[list[str], email.message.EmailMessage]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 — aiosmtpd's hook name
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        self.received.append((list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[email.message.EmailMessage]:
        return [m for rcpt, m in self.received if address in rcpt]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SmtpServer:
    def __init__(self) -> None:
        self.port = _free_port()
        self.inbox = Inbox()
        self.controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp(app):
    """A real SMTP server on 127.0.0.1 (not started yet: ``smtp.start()``), and the app sending to it."""
    server = SmtpServer()
    app.config.update(mail.smtp_settings(server.url))
    mail.mail.init_app(app)
    yield server
    server.stop()


def _subject(message: email.message.EmailMessage) -> str:
    return str(message["Subject"]).strip()  # folded on a line of its own when encoded


def _text(message: email.message.EmailMessage) -> str:
    return message.get_body(("plain",)).get_content()


def _all_text(inbox: Inbox) -> str:
    return "\n".join(_subject(m) + "\n" + _text(m) for _, m in inbox.received)


def _outbox(session) -> list[OutboxMessage]:
    session.rollback()  # a fresh snapshot: the sender commits in sessions of its own
    return list(session.scalars(sa.select(OutboxMessage).order_by(OutboxMessage.id)))


def _prepared_slip(session, world: SimpleNamespace):
    a, b = bundle(session, world, 1), bundle(session, world, 2, "Tom")
    slip = issued_slip(session, world, [*a.serials, *b.serials])
    pick_all(session, world, slip)
    session.commit()
    return slip


def _ship_by_page(login_as, world, slip) -> None:
    response = login_as(world.warehouse).post(f"/bordereaux/{slip.number}/expedier")
    assert response.status_code == 302, response.get_data(as_text=True)


def test_issuing_and_shipping_a_slip_mail_the_warehouse_and_the_destination(
    app, session, world, smtp, login_as, runner
):
    smtp.start()
    slip = _prepared_slip(session, world)
    # written with the issue: the warehouse's volunteer; nothing yet for the destination
    assert [(m.kind, m.to_address) for m in _outbox(session)] == [("slip_issued", world.warehouse.email)]

    _ship_by_page(login_as, world, slip)
    queued = _outbox(session)
    assert [(m.kind, m.to_address, m.status) for m in queued] == [
        ("slip_issued", world.warehouse.email, OutboxStatus.PENDING),
        ("slip_shipped", world.coordinator.email, OutboxStatus.PENDING),
    ]
    assert smtp.inbox.received == []  # the action only wrote them

    result = runner.invoke(args=["send-notifications"])
    assert result.exit_code == 0, result.output
    assert "2 envoyé(s)" in result.output
    assert [rcpt for rcpt, _ in smtp.inbox.received] == [[world.warehouse.email], [world.coordinator.email]]
    shipped = smtp.inbox.to(world.coordinator.email)[0]
    assert _subject(shipped) == f"Bordereau {slip.number} expédié : 4 équipements en route"
    body = _text(shipped)
    assert "a quitté Entrepôt Lille" in body and "pour Association Roubaix" in body
    assert f"https://logistique.test/bordereaux/{slip.number}/reception" in body
    assert "https://logistique.test/compte" in body  # how to stop receiving them
    assert shipped["From"] == app.config["MAIL_FROM"]
    issued = smtp.inbox.to(world.warehouse.email)[0]
    assert f"/bordereaux/{slip.number}/preparation" in _text(issued)
    # minors: no pupil, guardian or phone in any message
    assert not [name for name in NAMES if name in _all_text(smtp.inbox)]
    assert all(m.status is OutboxStatus.SENT and m.attempts == 1 for m in _outbox(session))

    # never twice: another pass (another host's sender) finds nothing to send
    assert "0 envoyé(s)" in runner.invoke(args=["send-notifications"]).output
    assert len(smtp.inbox.received) == 2


def test_smtp_server_down_the_action_succeeds_and_the_message_goes_out_later(
    app, session, world, smtp, login_as
):
    slip = _prepared_slip(session, world)
    _ship_by_page(login_as, world, slip)  # nobody listens on smtp.port
    session.expire_all()
    assert slip.status is SlipStatus.SHIPPED

    now = utcnow()
    report = mail.run_pass(now)
    assert (report.sent, report.failed) == (0, 2)
    failed = _outbox(session)
    assert all(m.status is OutboxStatus.PENDING and m.attempts == 1 for m in failed)
    assert all(m.next_attempt_at == now + mail.FIRST_RETRY for m in failed)
    assert all(m.last_error.startswith("ConnectionRefusedError") for m in failed)

    smtp.start()
    assert mail.run_pass(now + timedelta(seconds=5)).sent == 0  # not due yet: backoff
    assert smtp.inbox.received == []
    report = mail.run_pass(now + mail.FIRST_RETRY)
    assert report.sent == 2
    assert sorted(r[0] for r, _ in smtp.inbox.received) == sorted(
        [world.warehouse.email, world.coordinator.email]
    )
    assert all(m.status is OutboxStatus.SENT and m.attempts == 2 for m in _outbox(session))
    assert mail.run_pass(now + timedelta(hours=2)).sent == 0
    assert len(smtp.inbox.received) == 2


def test_retries_back_off_then_give_up(app, session, world, smtp):
    issued_slip(session, world, bundle(session, world, 1).serials)
    session.commit()
    now = utcnow()
    waits = []
    for _ in range(mail.MAX_ATTEMPTS):
        report = mail.run_pass(now)
        message = _outbox(session)[0]
        waits.append(message.next_attempt_at - now)
        now = message.next_attempt_at
    assert waits[:4] == [timedelta(seconds=s) for s in (30, 60, 120, 240)]
    assert max(waits) <= mail.LONGEST_WAIT
    assert report.abandoned == 1 and message.status is OutboxStatus.ABANDONED
    smtp.start()
    assert mail.run_pass(now + timedelta(hours=1)).sent == 0 and smtp.inbox.received == []


def test_two_senders_never_claim_the_same_message(app, session, world, smtp):
    issued_slip(session, world, bundle(session, world, 1).serials)
    session.commit()
    now = utcnow()
    with db.new_session(write=True) as first, db.new_session(write=True) as second:
        assert len(mail._claim(first, now)) == 1
        assert mail._claim(second, now) == []  # the other host's pass: already taken
        # a sender that died holding it: the lease runs out and another takes it over
        assert len(mail._claim(second, now + mail.LEASE + timedelta(seconds=1))) == 1


def test_account_page_turns_notifications_off(app, session, world, smtp, login_as):
    smtp.start()
    client = login_as(world.coordinator)
    page = client.get("/compte")
    assert page.status_code == 200 and "Notifications par e-mail" in page.get_data(as_text=True)
    response = client.post("/compte", data={"submit": "Enregistrer"})  # the box unticked
    assert response.status_code == 302, response.get_data(as_text=True)
    session.rollback()
    assert session.get(User, world.coordinator.id).notify_by_email is False

    slip = _prepared_slip(session, world)
    _ship_by_page(login_as, world, slip)
    assert [m.kind for m in _outbox(session)] == ["slip_issued"]  # nothing for the coordinator

    # a warehouse account cannot ask for the prefecture's summary
    login_as(world.warehouse).post("/compte", data={"notify_by_email": "y", "weekly_summary": "y"})
    session.expire_all()
    warehouse = session.get(User, world.warehouse.id)
    assert (warehouse.notify_by_email, warehouse.weekly_summary) == (True, False)


def _paris(day: str, hour: int) -> datetime:
    """A naive UTC datetime for ``day`` at ``hour`` o'clock in Paris (winter: UTC+1)."""
    return datetime.fromisoformat(day) + timedelta(hours=hour - 1)


def test_stuck_slips_reach_the_administrators_once_a_day(app, session, world, smtp):
    smtp.start()
    old = datetime(2026, 11, 20, 9, 0)
    slip = slips.create_slip(
        session,
        destination=world.assoc_roubaix,
        serials=bundle(session, world, 1).serials,
        by=world.coordinator,
        issue=True,
        now=old,
    )
    session.commit()
    assert _outbox(session) == []  # issued nine days ago: history, not news, for the warehouse
    assert mail.run_pass(_paris("2026-11-30", 6)).queued == 0  # before 7:00
    report = mail.run_pass(_paris("2026-11-30", 8))
    assert report.queued == 1
    (admin_mail,) = smtp.inbox.to(world.admin.email)
    assert _subject(admin_mail) == "1 bordereau bloqué depuis plus de 3 jours"
    body = _text(admin_mail)
    assert slip.number in body and "émis, pas encore expédié depuis 9 jours" in body
    assert "https://logistique.test/tableau?jours=3" in body
    assert mail.run_pass(_paris("2026-11-30", 17)).queued == 0  # once a day
    assert mail.run_pass(_paris("2026-12-01", 8)).queued == 1  # still stuck the next day
    assert [m.kind for m in _outbox(session)] == ["stuck_slips", "stuck_slips"]


def test_weekly_summary_goes_to_prefecture_accounts_that_asked_for_it(app, session, world, smtp, login_as):
    smtp.start()
    login_as(world.prefecture_nord).post("/compte", data={"notify_by_email": "y", "weekly_summary": "y"})
    bundle(session, world, 1)
    session.commit()
    monday = _paris("2026-11-30", 8)
    assert mail.run_pass(monday).queued == 1
    assert [rcpt for rcpt, _ in smtp.inbox.received] == [[world.prefecture_nord.email]]
    message = smtp.inbox.received[0][1]
    assert _subject(message).startswith("Synthèse de la semaine 49")
    (attachment,) = list(message.iter_attachments())
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_filename() == "synthese-20261130.pdf"
    pdf = attachment.get_content()
    assert pdf.startswith(b"%PDF")
    import pypdfium2 as pdfium

    text = pdfium.PdfDocument(pdf)[0].get_textpage().get_text_range()
    assert "Nord" in text and "Bobigny" not in text  # the account's own territory
    assert mail.run_pass(monday + timedelta(days=2)).queued == 0  # once a week
    assert mail.run_pass(monday + timedelta(days=7)).queued == 1


def test_smtp_url_forms():
    assert mail.smtp_settings(None) == {"MAIL_BACKEND": "dummy"}
    plain = mail.smtp_settings("smtp://127.0.0.1:2525")
    assert (plain["MAIL_SERVER"], plain["MAIL_PORT"], plain["MAIL_USE_TLS"], plain["MAIL_USE_SSL"]) == (
        "127.0.0.1",
        2525,
        False,
        False,
    )
    secure = mail.smtp_settings("smtps://robot%40asso.fr:p%3Ass@smtp.asso.fr")
    assert (secure["MAIL_PORT"], secure["MAIL_USE_SSL"]) == (465, True)
    assert (secure["MAIL_USERNAME"], secure["MAIL_PASSWORD"]) == ("robot@asso.fr", "p:ss")
    assert mail.smtp_settings("smtp+starttls://smtp.asso.fr")["MAIL_USE_TLS"] is True
    from logistique import create_app

    with pytest.raises(ConfigError, match="LOGISTIQUE_SMTP_URL"):
        create_app({"TESTING": True, "SMTP_URL": "http://smtp.asso.fr"})


def test_the_long_running_sender_sends_then_stops_on_sigterm(app, session, world, smtp, database_url):
    """`logistique send-notifications --loop` as systemd runs it: sends, logs JSON, stops cleanly."""
    smtp.start()
    issued_slip(session, world, bundle(session, world, 1).serials)
    session.commit()
    env = {
        **os.environ,
        "LOGISTIQUE_DATABASE_URL": database_url,
        "LOGISTIQUE_SECRET_KEY": "secret-de-test",
        "LOGISTIQUE_SMTP_URL": smtp.url,
        "LOGISTIQUE_LOG_FORMAT": "json",
    }
    command = [
        str(Path(sys.executable).parent / "logistique"),
        "send-notifications",
        "--loop",
        "--interval",
        "1",
    ]
    sender = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not smtp.inbox.received and time.monotonic() < deadline and sender.poll() is None:
            time.sleep(0.2)
    finally:
        sender.send_signal(signal.SIGTERM)
        _out, err = sender.communicate(timeout=30)
    assert sender.returncode == 0, err
    assert [rcpt for rcpt, _ in smtp.inbox.received] == [[world.warehouse.email]]
    events = [json.loads(line) for line in err.splitlines()]
    assert [e["event"] for e in events] == [
        "sender_started",
        "notification_sent",
        "notification_pass",
        "sender_stopped",
    ]
    assert events[2]["sent"] == 1 and events[2]["failed"] == 0


def test_the_background_worker_sends_the_outbox_every_minute(app, session, world, smtp, tmp_path):
    """The huey worker that `scripts/serve` and `deploy/logistique-worker.service` run has a periodic task
    that sends the outbox: no separate sender is needed."""
    from logistique import jobs

    smtp.start()
    issued_slip(session, world, bundle(session, world, 1).serials)
    session.commit()
    app.config["QUEUE_FILE"] = str(tmp_path / "queue.sqlite3")
    huey = jobs.queue(app)
    (task,) = [t for t in huey._registry.periodic_tasks if t.name == "logistique.notifications"]
    assert task.validate_datetime(datetime(2026, 11, 30, 9, 17))  # every minute
    huey.execute(task)
    assert [rcpt for rcpt, _ in smtp.inbox.received] == [[world.warehouse.email]]
    assert [m.status for m in _outbox(session)] == [OutboxStatus.SENT]
