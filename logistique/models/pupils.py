"""Pupils, the census of needs, assignments of devices to pupils, allocation plans and the audit journal."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..db import Base, utcnow
from .enums import DeviceKind, DeviceStatus, Labelled, enum_column
from .referential import Organisation, Qpv

if TYPE_CHECKING:
    from .accounts import User
    from .money import Envelope
    from .stock import Device


class NeedKind(Labelled):
    """What a pupil lacks; ``connexion`` is met by a ``cle_4g`` device."""

    TABLET = "tablette"
    LAPTOP = "ordinateur"
    CONNECTION = "connexion"

    @property
    def label(self) -> str:
        return {"tablette": "Tablette", "ordinateur": "Ordinateur", "connexion": "Connexion (clé 4G)"}[
            self.value
        ]

    @property
    def device_kind(self) -> DeviceKind:
        return NEED_DEVICE_KIND[self]

    @classmethod
    def for_device(cls, kind: DeviceKind) -> NeedKind:
        return {v: k for k, v in NEED_DEVICE_KIND.items()}[kind]


NEED_DEVICE_KIND = {
    NeedKind.TABLET: DeviceKind.TABLET,
    NeedKind.LAPTOP: DeviceKind.LAPTOP,
    NeedKind.CONNECTION: DeviceKind.HOTSPOT,
}


class Pupil(Base):
    """A beneficiary. Everyone but the coordinators in scope sees only ``reference``."""

    __tablename__ = "pupils"
    __table_args__ = (
        sa.Index("ix_pupils_organisation_qpv", "organisation_id", "qpv_code"),
        # covers the census's count of registered pupils per (organisation, QPV) and need, by QPV range
        # (status board); ``id`` so that PostgreSQL answers count(id) from the index alone
        sa.Index(
            "ix_pupils_qpv_needs",
            "qpv_code",
            "organisation_id",
            "needs_tablet",
            "needs_laptop",
            "needs_connection",
            "id",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str | None] = mapped_column(sa.String(16), unique=True)  # E-59-000123, set after insert
    organisation_id: Mapped[int] = mapped_column(sa.ForeignKey("organisations.id"))
    qpv_code: Mapped[str] = mapped_column(sa.ForeignKey("qpvs.code"))
    school_uai: Mapped[str] = mapped_column(sa.String(8))
    grade: Mapped[str] = mapped_column(sa.String(20))
    # personal data: erased by purge-personal-data (then NULL)
    first_name: Mapped[str | None] = mapped_column(sa.String(100))
    last_name: Mapped[str | None] = mapped_column(sa.String(100))
    guardian_name: Mapped[str | None] = mapped_column(sa.String(200))
    guardian_phone: Mapped[str | None] = mapped_column(sa.String(20))
    needs_tablet: Mapped[bool] = mapped_column(default=False)
    needs_laptop: Mapped[bool] = mapped_column(default=False)
    needs_connection: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    purged_at: Mapped[datetime | None] = mapped_column()

    organisation: Mapped[Organisation] = relationship()
    qpv: Mapped[Qpv] = relationship()
    assignments: Mapped[list[Assignment]] = relationship(back_populates="pupil", order_by="Assignment.id")

    @property
    def needs(self) -> list[NeedKind]:
        flags = {
            NeedKind.TABLET: self.needs_tablet,
            NeedKind.LAPTOP: self.needs_laptop,
            NeedKind.CONNECTION: self.needs_connection,
        }
        return [kind for kind, wanted in flags.items() if wanted]

    @needs.setter
    def needs(self, kinds: list[NeedKind]) -> None:
        self.needs_tablet = NeedKind.TABLET in kinds
        self.needs_laptop = NeedKind.LAPTOP in kinds
        self.needs_connection = NeedKind.CONNECTION in kinds

    @property
    def full_name(self) -> str:
        if self.purged_at is not None:
            return "(données effacées)"
        return f"{self.first_name} {self.last_name}"


class Need(Base):
    """Census entry: how many pupils of a QPV, followed by an organisation, lack a kind of device."""

    __tablename__ = "needs"
    __table_args__ = (
        sa.UniqueConstraint("organisation_id", "qpv_code", "kind"),
        sa.CheckConstraint("count >= 0", name="count_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(sa.ForeignKey("organisations.id"))
    qpv_code: Mapped[str] = mapped_column(sa.ForeignKey("qpvs.code"), index=True)
    kind: Mapped[NeedKind] = mapped_column(enum_column(NeedKind, "need_kind"))
    count: Mapped[int] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))

    organisation: Mapped[Organisation] = relationship()
    qpv: Mapped[Qpv] = relationship()


class Assignment(Base):
    """Device ↔ pupil. At most one active per device and one per pupil and kind (partial unique indexes)."""

    __tablename__ = "assignments"
    __table_args__ = (
        sa.Index(
            "ux_assignments_active_device",
            "device_id",
            unique=True,
            sqlite_where=sa.text("cancelled_at IS NULL"),
            postgresql_where=sa.text("cancelled_at IS NULL"),
        ),
        sa.Index(
            "ux_assignments_active_pupil_kind",
            "pupil_id",
            "kind",
            unique=True,
            sqlite_where=sa.text("cancelled_at IS NULL"),
            postgresql_where=sa.text("cancelled_at IS NULL"),
        ),
        # the status board (scripts/bench board) reads assignments alone, from these covering indexes: per
        # QPV, the device's status and cost (kind for the census); per envelope, committed and delivered
        sa.Index(
            "ix_assignments_qpv_board", "qpv_code", "device_status", "cancelled_at", "unit_cost_cents", "kind"
        ),
        sa.Index(
            "ix_assignments_envelope_cost", "envelope_id", "cancelled_at", "device_status", "unit_cost_cents"
        ),
        # handovers per day on the board: per QPV a range of days (all of France: the whole index, small)
        sa.Index(
            "ix_assignments_handed_over",
            "qpv_code",
            "handed_over_at",
            sqlite_where=sa.text("handed_over_at IS NOT NULL"),
            postgresql_where=sa.text("handed_over_at IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(sa.ForeignKey("devices.id"))
    pupil_id: Mapped[int] = mapped_column(sa.ForeignKey("pupils.id"))
    kind: Mapped[NeedKind] = mapped_column(enum_column(NeedKind, "assignment_kind"))
    qpv_code: Mapped[str] = mapped_column(sa.ForeignKey("qpvs.code"))
    organisation_id: Mapped[int] = mapped_column(sa.ForeignKey("organisations.id"), index=True)
    envelope_id: Mapped[int] = mapped_column(sa.ForeignKey("envelopes.id"))
    unit_cost_cents: Mapped[int] = mapped_column()  # committed on the envelope while the assignment is active
    # the device's status, kept equal to it by ``devices.transition`` while the assignment is active and
    # frozen when it ends: the status board counts from this table alone
    device_status: Mapped[DeviceStatus] = mapped_column(enum_column(DeviceStatus, "assignment_device_status"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    # when its device was handed over to the family (set by the transition, kept if the assignment ends later)
    handed_over_at: Mapped[datetime | None] = mapped_column()
    cancelled_at: Mapped[datetime | None] = mapped_column()
    cancelled_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))

    device: Mapped[Device] = relationship()
    pupil: Mapped[Pupil] = relationship(back_populates="assignments")
    envelope: Mapped[Envelope] = relationship()
    created_by: Mapped[User | None] = relationship(foreign_keys=[created_by_id])

    @property
    def is_active(self) -> bool:
        return self.cancelled_at is None


class PlanStatus(Labelled):
    DRAFT = "brouillon"
    APPLIED = "applique"
    SUPERSEDED = "remplace"

    @property
    def label(self) -> str:
        return {"brouillon": "Brouillon", "applique": "Appliqué", "remplace": "Remplacé"}[self.value]


class AllocationPlan(Base):
    """How scarce stock is shared between the QPVs of a region, in proportion to their needs."""

    __tablename__ = "allocation_plans"

    id: Mapped[int] = mapped_column(primary_key=True)
    region_code: Mapped[str] = mapped_column(sa.ForeignKey("regions.code"), index=True)
    status: Mapped[PlanStatus] = mapped_column(enum_column(PlanStatus, "plan_status"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    applied_at: Mapped[datetime | None] = mapped_column()
    applied_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    note: Mapped[str] = mapped_column(sa.Text, default="")  # the inputs the proposal was computed from

    lines: Mapped[list[AllocationLine]] = relationship(
        back_populates="plan",
        cascade="all, delete-orphan",
        order_by="(AllocationLine.qpv_code, AllocationLine.kind)",
    )


class AllocationLine(Base):
    __tablename__ = "allocation_lines"
    __table_args__ = (
        sa.UniqueConstraint("plan_id", "qpv_code", "kind"),
        sa.CheckConstraint("quota >= 0", name="quota_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(sa.ForeignKey("allocation_plans.id", ondelete="CASCADE"))
    qpv_code: Mapped[str] = mapped_column(sa.ForeignKey("qpvs.code"))
    kind: Mapped[NeedKind] = mapped_column(enum_column(NeedKind, "line_kind"))
    need: Mapped[int] = mapped_column()
    proposed: Mapped[int] = mapped_column()
    quota: Mapped[int] = mapped_column()  # proposed, or as adjusted by the admin

    plan: Mapped[AllocationPlan] = relationship(back_populates="lines")
    qpv: Mapped[Qpv] = relationship()


class OperationState(Base):
    """One row: whether the operation is closed (then personal data may be purged)."""

    __tablename__ = "operation_state"

    id: Mapped[int] = mapped_column(primary_key=True)
    closed_at: Mapped[datetime | None] = mapped_column()
    closed_by: Mapped[str] = mapped_column(sa.String(254), default="")


class AuditEvent(Base):
    """Journal of what is not a device state change: pupils registered, imports, plans, purges."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    actor_label: Mapped[str] = mapped_column(sa.String(254))
    action: Mapped[str] = mapped_column(sa.String(40))
    subject: Mapped[str] = mapped_column(sa.String(100), default="")  # e.g. a pupil reference; never a name
    detail: Mapped[str] = mapped_column(sa.String(1000), default="")
