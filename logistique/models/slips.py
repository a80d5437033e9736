"""Delivery slips, their lines and journal, and the handovers to families."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..db import Base, utcnow
from .enums import Labelled, enum_column
from .referential import Organisation

if TYPE_CHECKING:
    from .accounts import User
    from .pupils import Assignment, Pupil
    from .stock import Device


class SlipStatus(Labelled):
    DRAFT = "brouillon"
    ISSUED = "emis"
    PREPARED = "prepare"
    SHIPPED = "expedie"
    RECEIVED = "receptionne"
    CLOSED = "cloture"
    CANCELLED = "annule"

    @property
    def label(self) -> str:
        return {
            "brouillon": "Brouillon",
            "emis": "Émis",
            "prepare": "Préparé",
            "expedie": "Expédié",
            "receptionne": "Réceptionné",
            "cloture": "Clôturé",
            "annule": "Annulé",
        }[self.value]


class ReceptionState(Labelled):
    RECEIVED = "recu"
    MISSING = "manquant"
    DAMAGED = "endommage"

    @property
    def label(self) -> str:
        return {"recu": "Reçu", "manquant": "Manquant", "endommage": "Endommagé"}[self.value]


class HandoverMode(Labelled):
    LOAN = "pret"
    GIFT = "don"

    @property
    def label(self) -> str:
        return {"pret": "Prêt", "don": "Don"}[self.value]


class Slip(Base):
    """A bon de livraison: devices of one warehouse for one destination."""

    __tablename__ = "slips"
    __table_args__ = (sa.Index("ix_slips_warehouse_status", "warehouse_id", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str | None] = mapped_column(
        sa.String(24), unique=True
    )  # BL-59-2020-000123, set after insert
    warehouse_id: Mapped[int] = mapped_column(sa.ForeignKey("organisations.id"))
    destination_id: Mapped[int] = mapped_column(sa.ForeignKey("organisations.id"), index=True)
    status: Mapped[SlipStatus] = mapped_column(enum_column(SlipStatus, "slip_status"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    issued_at: Mapped[datetime | None] = mapped_column()
    prepared_at: Mapped[datetime | None] = mapped_column()
    shipped_at: Mapped[datetime | None] = mapped_column()
    received_at: Mapped[datetime | None] = mapped_column()
    closed_at: Mapped[datetime | None] = mapped_column()
    cancelled_at: Mapped[datetime | None] = mapped_column()

    warehouse: Mapped[Organisation] = relationship(foreign_keys=[warehouse_id])
    destination: Mapped[Organisation] = relationship(foreign_keys=[destination_id])
    lines: Mapped[list[SlipLine]] = relationship(back_populates="slip", order_by="SlipLine.id")
    events: Mapped[list[SlipEvent]] = relationship(back_populates="slip", order_by="SlipEvent.id")

    @property
    def active_lines(self) -> list[SlipLine]:
        return [line for line in self.lines if line.removed_at is None]


class SlipLine(Base):
    """One device on a slip, with what the warehouse and the destination said of it."""

    __tablename__ = "slip_lines"
    __table_args__ = (
        # a device is on at most one slip at a time
        sa.Index(
            "ux_slip_lines_active_device",
            "device_id",
            unique=True,
            sqlite_where=sa.text("removed_at IS NULL"),
            postgresql_where=sa.text("removed_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    slip_id: Mapped[int] = mapped_column(sa.ForeignKey("slips.id"), index=True)
    device_id: Mapped[int] = mapped_column(sa.ForeignKey("devices.id"))
    assignment_id: Mapped[int] = mapped_column(sa.ForeignKey("assignments.id"), index=True)
    picked_at: Mapped[datetime | None] = mapped_column()
    picked_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    reception_state: Mapped[ReceptionState | None] = mapped_column(
        enum_column(ReceptionState, "reception_state")
    )
    reception_comment: Mapped[str] = mapped_column(sa.String(500), default="")
    received_at: Mapped[datetime | None] = mapped_column()
    handover_id: Mapped[int | None] = mapped_column(sa.ForeignKey("handovers.id"), index=True)
    removed_at: Mapped[datetime | None] = mapped_column()

    slip: Mapped[Slip] = relationship(back_populates="lines")
    device: Mapped[Device] = relationship()
    assignment: Mapped[Assignment] = relationship()
    handover: Mapped[Handover | None] = relationship(back_populates="lines")


class SlipEvent(Base):
    """Append-only journal of a slip: who, when, from, to, why."""

    __tablename__ = "slip_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    slip_id: Mapped[int] = mapped_column(sa.ForeignKey("slips.id"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    actor_label: Mapped[str] = mapped_column(sa.String(254))
    action: Mapped[str] = mapped_column(sa.String(40))
    from_status: Mapped[SlipStatus | None] = mapped_column(enum_column(SlipStatus, "slip_from_status"))
    to_status: Mapped[SlipStatus] = mapped_column(enum_column(SlipStatus, "slip_to_status"))
    detail: Mapped[str] = mapped_column(sa.String(500), default="")

    slip: Mapped[Slip] = relationship(back_populates="events")
    actor: Mapped[User | None] = relationship()


class Handover(Base):
    """A pupil's bundle handed to the family, signed on the phone. Names and the drawing are purged with the
    operation; the reference, dates and the signature's SHA-256 stay as proof."""

    __tablename__ = "handovers"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str | None] = mapped_column(sa.String(24), unique=True)  # RM-59-2020-000045
    pupil_id: Mapped[int] = mapped_column(sa.ForeignKey("pupils.id"), index=True)
    organisation_id: Mapped[int] = mapped_column(sa.ForeignKey("organisations.id"))
    mode: Mapped[HandoverMode] = mapped_column(enum_column(HandoverMode, "handover_mode"))
    receiver_name: Mapped[str | None] = mapped_column(sa.String(200))
    relation: Mapped[str] = mapped_column(sa.String(50))
    signature_png: Mapped[bytes | None] = mapped_column(sa.LargeBinary)
    signature_sha256: Mapped[str] = mapped_column(sa.String(64))
    handed_over_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))

    pupil: Mapped[Pupil] = relationship()
    organisation: Mapped[Organisation] = relationship()
    lines: Mapped[list[SlipLine]] = relationship(back_populates="handover", order_by="SlipLine.id")
