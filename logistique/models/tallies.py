"""Running counts behind the status board: what a GROUP BY over assignments and pupils would answer, kept
up to date by the domain (``domain/tallies.py``) in the transaction that changes the counted rows, so that a
national board reads a few thousand rows instead of aggregating hundreds of thousands (``scripts/bench
board``). ``tallies.differences`` recounts from the source tables; the suite checks it after every test."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base
from .enums import DeviceStatus, enum_column
from .pupils import NeedKind


class AssignmentTally(Base):
    """Assignments per QPV, envelope, kind, device status and active or ended: how many, and their cost."""

    __tablename__ = "assignment_tallies"

    qpv_code: Mapped[str] = mapped_column(sa.ForeignKey("qpvs.code"), primary_key=True)
    envelope_id: Mapped[int] = mapped_column(sa.ForeignKey("envelopes.id"), primary_key=True)
    kind: Mapped[NeedKind] = mapped_column(enum_column(NeedKind, "tally_kind"), primary_key=True)
    device_status: Mapped[DeviceStatus] = mapped_column(
        enum_column(DeviceStatus, "tally_device_status"), primary_key=True
    )
    active: Mapped[bool] = mapped_column(primary_key=True)
    devices: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    cost_cents: Mapped[int] = mapped_column(sa.BigInteger, default=0)


class PupilTally(Base):
    """Registered pupils per organisation, QPV and need."""

    __tablename__ = "pupil_tallies"

    organisation_id: Mapped[int] = mapped_column(sa.ForeignKey("organisations.id"), primary_key=True)
    qpv_code: Mapped[str] = mapped_column(sa.ForeignKey("qpvs.code"), primary_key=True)
    kind: Mapped[NeedKind] = mapped_column(enum_column(NeedKind, "pupil_tally_kind"), primary_key=True)
    pupils: Mapped[int] = mapped_column(sa.BigInteger, default=0)


class ReturnTally(Base):
    """Devices brought back by families per QPV, kind, the state they came back in (retourne or defectueux)
    and what they are now (``RestitutionLine.outcome``): retourne (at the organisation or on its way back),
    defectueux, or en_stock (back in the warehouse's stock)."""

    __tablename__ = "return_tallies"

    qpv_code: Mapped[str] = mapped_column(sa.ForeignKey("qpvs.code"), primary_key=True)
    kind: Mapped[NeedKind] = mapped_column(enum_column(NeedKind, "return_tally_kind"), primary_key=True)
    state: Mapped[DeviceStatus] = mapped_column(
        enum_column(DeviceStatus, "return_tally_state"), primary_key=True
    )
    outcome: Mapped[DeviceStatus] = mapped_column(
        enum_column(DeviceStatus, "return_tally_outcome"), primary_key=True
    )
    devices: Mapped[int] = mapped_column(sa.BigInteger, default=0)
