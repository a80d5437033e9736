"""E-mails waiting to be sent: written in the transaction of the action, sent afterwards (logistique.mail)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base, utcnow
from .enums import Labelled, enum_column


class OutboxStatus(Labelled):
    PENDING = "en_attente"
    SENT = "envoye"
    ABANDONED = "abandonne"  # too many failures, or too old to be worth sending

    @property
    def label(self) -> str:
        return {"en_attente": "En attente", "envoye": "Envoyé", "abandonne": "Abandonné"}[self.value]


class OutboxMessage(Base):
    """One e-mail to one account. Its text is final when written (French, never a pupil's name); the link and
    the footer are added at sending time from LOGISTIQUE_BASE_URL."""

    __tablename__ = "outbox_messages"
    __table_args__ = (sa.Index("ix_outbox_messages_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(40))  # slip_shipped, slip_issued, stuck_slips, weekly_summary
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    to_address: Mapped[str] = mapped_column(sa.String(254))
    subject: Mapped[str] = mapped_column(sa.String(200))
    body: Mapped[str] = mapped_column(sa.Text)
    link_path: Mapped[str] = mapped_column(sa.String(300), default="")
    attachment_name: Mapped[str] = mapped_column(sa.String(100), default="")
    attachment: Mapped[bytes | None] = mapped_column(sa.LargeBinary)
    # scheduled messages (daily stuck slips, weekly summary) are written once whatever the number of senders
    dedupe_key: Mapped[str | None] = mapped_column(sa.String(120), unique=True)
    status: Mapped[OutboxStatus] = mapped_column(
        enum_column(OutboxStatus, "outbox_status"), default=OutboxStatus.PENDING
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(default=0)
    claimed_until: Mapped[datetime | None] = mapped_column()  # a sender is on it until then
    sent_at: Mapped[datetime | None] = mapped_column()
    last_error: Mapped[str] = mapped_column(sa.String(300), default="")
