"""Budget envelopes and the subsidised lots they pay for."""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..db import Base
from .enums import EnvelopeKind, enum_column
from .referential import CiteEducative, Organisation, Region
from .stock import DeviceModel


class Envelope(Base):
    __tablename__ = "envelopes"
    __table_args__ = (
        sa.CheckConstraint("amount_cents >= 0", name="amount_positive"),
        # the cité éducative 2020 envelope may use at most 15 % of the cité's annual amount
        sa.CheckConstraint(
            "kind != 'cite_2020' OR "
            "(annual_amount_cents IS NOT NULL AND amount_cents * 100 <= annual_amount_cents * 15)",
            name="cite_2020_cap",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    region_code: Mapped[str] = mapped_column(sa.ForeignKey("regions.code"), index=True)
    kind: Mapped[EnvelopeKind] = mapped_column(enum_column(EnvelopeKind, "envelope_kind"))
    label: Mapped[str] = mapped_column(sa.String(200))
    amount_cents: Mapped[int] = mapped_column(sa.BigInteger)
    annual_amount_cents: Mapped[int | None] = mapped_column(sa.BigInteger)
    cite_educative_code: Mapped[str | None] = mapped_column(sa.ForeignKey("cites_educatives.code"))

    region: Mapped[Region] = relationship()
    cite_educative: Mapped[CiteEducative | None] = relationship()
    lots: Mapped[list[Lot]] = relationship(back_populates="envelope", order_by="Lot.reference")


class Lot(Base):
    __tablename__ = "lots"

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(sa.String(40), unique=True)
    supplier: Mapped[str] = mapped_column(sa.String(200))
    envelope_id: Mapped[int] = mapped_column(sa.ForeignKey("envelopes.id"), index=True)
    warehouse_id: Mapped[int] = mapped_column(sa.ForeignKey("organisations.id"), index=True)
    signed_on: Mapped[date | None] = mapped_column()
    note: Mapped[str] = mapped_column(sa.String(500), default="")

    envelope: Mapped[Envelope] = relationship(back_populates="lots")
    warehouse: Mapped[Organisation] = relationship()
    unit_costs: Mapped[list[LotUnitCost]] = relationship(
        back_populates="lot", cascade="all, delete-orphan", order_by="LotUnitCost.model_id"
    )


class LotUnitCost(Base):
    __tablename__ = "lot_unit_costs"
    __table_args__ = (sa.CheckConstraint("unit_cost_cents >= 0", name="unit_cost_positive"),)

    lot_id: Mapped[int] = mapped_column(sa.ForeignKey("lots.id", ondelete="CASCADE"), primary_key=True)
    model_id: Mapped[int] = mapped_column(sa.ForeignKey("device_models.id"), primary_key=True)
    unit_cost_cents: Mapped[int] = mapped_column()

    lot: Mapped[Lot] = relationship(back_populates="unit_costs")
    model: Mapped[DeviceModel] = relationship()
