"""End of loan: what families bring back (restitutions) and the return slips that take those devices from the
organisation back to the warehouse that delivered them (docs/architecture.md, « Retours »)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..db import Base, utcnow
from .enums import DeviceStatus, Labelled, enum_column
from .pupils import NeedKind
from .referential import Organisation
from .slips import SlipStatus

if TYPE_CHECKING:
    from .accounts import User
    from .pupils import Assignment, Pupil
    from .stock import Device


class RestitutionStatus(Labelled):
    DRAFT = "brouillon"  # devices being scanned; nothing has changed yet
    RECORDED = "enregistree"  # every line applied in one transaction, receipt printable

    @property
    def label(self) -> str:
        return {"brouillon": "En cours", "enregistree": "Enregistrée"}[self.value]


class Restitution(Base):
    """The devices a family brings back at the end of the loan, recorded at once, with a receipt."""

    __tablename__ = "restitutions"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str | None] = mapped_column(sa.String(24), unique=True)  # RS-59-2026-000012, when recorded
    status: Mapped[RestitutionStatus] = mapped_column(enum_column(RestitutionStatus, "restitution_status"))
    pupil_id: Mapped[int | None] = mapped_column(sa.ForeignKey("pupils.id"), index=True)
    organisation_id: Mapped[int] = mapped_column(sa.ForeignKey("organisations.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    returned_at: Mapped[datetime | None] = mapped_column()
    received_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))

    pupil: Mapped[Pupil | None] = relationship()
    organisation: Mapped[Organisation] = relationship()
    received_by: Mapped[User | None] = relationship(foreign_keys=[received_by_id])
    lines: Mapped[list[RestitutionLine]] = relationship(
        back_populates="restitution", order_by="RestitutionLine.id", cascade="all, delete-orphan"
    )


class RestitutionLine(Base):
    """One device brought back: in good order (retourne) or broken (defectueux, with the reason). ``outcome``
    is what the device is now for the board — retourne, defectueux, or en_stock once the warehouse restocked
    it — and the key of its counter (``return_tallies``)."""

    __tablename__ = "restitution_lines"
    __table_args__ = (sa.UniqueConstraint("restitution_id", "device_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    restitution_id: Mapped[int] = mapped_column(sa.ForeignKey("restitutions.id"), index=True)
    device_id: Mapped[int] = mapped_column(sa.ForeignKey("devices.id"), index=True)
    assignment_id: Mapped[int] = mapped_column(sa.ForeignKey("assignments.id"))
    qpv_code: Mapped[str] = mapped_column(sa.ForeignKey("qpvs.code"))
    kind: Mapped[NeedKind] = mapped_column(enum_column(NeedKind, "restitution_kind"))
    state: Mapped[DeviceStatus] = mapped_column(enum_column(DeviceStatus, "restitution_state"))
    reason: Mapped[str] = mapped_column(sa.String(500), default="")
    outcome: Mapped[DeviceStatus | None] = mapped_column(enum_column(DeviceStatus, "restitution_outcome"))

    restitution: Mapped[Restitution] = relationship(back_populates="lines")
    device: Mapped[Device] = relationship()
    assignment: Mapped[Assignment] = relationship()


class ReturnSlip(Base):
    """A return slip (bordereau de retour): returned devices of one organisation back to one warehouse.
    Statuses are those of delivery slips that apply: brouillon → emis → expedie → receptionne, annule."""

    __tablename__ = "return_slips"
    __table_args__ = (sa.Index("ix_return_slips_warehouse_status", "warehouse_id", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str | None] = mapped_column(sa.String(24), unique=True)  # RT-59-2026-000004
    organisation_id: Mapped[int] = mapped_column(sa.ForeignKey("organisations.id"), index=True)
    warehouse_id: Mapped[int] = mapped_column(sa.ForeignKey("organisations.id"))
    status: Mapped[SlipStatus] = mapped_column(enum_column(SlipStatus, "return_slip_status"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    issued_at: Mapped[datetime | None] = mapped_column()
    shipped_at: Mapped[datetime | None] = mapped_column()
    received_at: Mapped[datetime | None] = mapped_column()
    cancelled_at: Mapped[datetime | None] = mapped_column()

    organisation: Mapped[Organisation] = relationship(foreign_keys=[organisation_id])
    warehouse: Mapped[Organisation] = relationship(foreign_keys=[warehouse_id])
    lines: Mapped[list[ReturnSlipLine]] = relationship(
        back_populates="return_slip", order_by="ReturnSlipLine.id"
    )
    events: Mapped[list[ReturnSlipEvent]] = relationship(
        back_populates="return_slip", order_by="ReturnSlipEvent.id"
    )

    @property
    def active_lines(self) -> list[ReturnSlipLine]:
        return [line for line in self.lines if line.removed_at is None]


class ReturnSlipLine(Base):
    """One returned device on a return slip, and what the warehouse found when it checked it."""

    __tablename__ = "return_slip_lines"
    __table_args__ = (
        # a returned device goes back on one return slip at a time
        sa.Index(
            "ux_return_slip_lines_active_restitution_line",
            "restitution_line_id",
            unique=True,
            sqlite_where=sa.text("removed_at IS NULL"),
            postgresql_where=sa.text("removed_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    return_slip_id: Mapped[int] = mapped_column(sa.ForeignKey("return_slips.id"), index=True)
    restitution_line_id: Mapped[int] = mapped_column(sa.ForeignKey("restitution_lines.id"))
    device_id: Mapped[int] = mapped_column(sa.ForeignKey("devices.id"), index=True)
    checked_at: Mapped[datetime | None] = mapped_column()
    checked_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    outcome: Mapped[DeviceStatus | None] = mapped_column(enum_column(DeviceStatus, "return_line_outcome"))
    comment: Mapped[str] = mapped_column(sa.String(500), default="")
    removed_at: Mapped[datetime | None] = mapped_column()

    return_slip: Mapped[ReturnSlip] = relationship(back_populates="lines")
    restitution_line: Mapped[RestitutionLine] = relationship()
    device: Mapped[Device] = relationship()


class ReturnSlipEvent(Base):
    """Append-only journal of a return slip."""

    __tablename__ = "return_slip_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    return_slip_id: Mapped[int] = mapped_column(sa.ForeignKey("return_slips.id"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    actor_label: Mapped[str] = mapped_column(sa.String(254))
    action: Mapped[str] = mapped_column(sa.String(40))
    from_status: Mapped[SlipStatus | None] = mapped_column(enum_column(SlipStatus, "return_from_status"))
    to_status: Mapped[SlipStatus] = mapped_column(enum_column(SlipStatus, "return_to_status"))
    detail: Mapped[str] = mapped_column(sa.String(500), default="")

    return_slip: Mapped[ReturnSlip] = relationship(back_populates="events")
    actor: Mapped[User | None] = relationship()
