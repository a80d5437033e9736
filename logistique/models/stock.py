"""Device models, devices and their journal."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..db import Base, utcnow
from .enums import DeviceCondition, DeviceKind, DeviceStatus, enum_column
from .referential import Organisation

if TYPE_CHECKING:
    from .accounts import User
    from .money import Lot


class DeviceModel(Base):
    __tablename__ = "device_models"
    __table_args__ = (sa.UniqueConstraint("kind", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[DeviceKind] = mapped_column(enum_column(DeviceKind, "device_kind"))
    name: Mapped[str] = mapped_column(sa.String(120))

    @property
    def label(self) -> str:
        return f"{self.kind.label} — {self.name}"


class Device(Base):
    __tablename__ = "devices"
    __table_args__ = (sa.Index("ix_devices_warehouse_status", "warehouse_id", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    serial: Mapped[str] = mapped_column(sa.String(64), unique=True)
    asset_tag: Mapped[str] = mapped_column(sa.String(32), unique=True)
    model_id: Mapped[int] = mapped_column(sa.ForeignKey("device_models.id"), index=True)
    lot_id: Mapped[int] = mapped_column(sa.ForeignKey("lots.id"), index=True)
    warehouse_id: Mapped[int] = mapped_column(sa.ForeignKey("organisations.id"))
    condition: Mapped[DeviceCondition] = mapped_column(enum_column(DeviceCondition, "device_condition"))
    status: Mapped[DeviceStatus] = mapped_column(enum_column(DeviceStatus, "device_status"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    model: Mapped[DeviceModel] = relationship()
    lot: Mapped[Lot] = relationship()
    warehouse: Mapped[Organisation] = relationship()
    events: Mapped[list[DeviceEvent]] = relationship(
        back_populates="device", order_by="DeviceEvent.id", passive_deletes=True
    )


class DeviceEvent(Base):
    """Append-only journal: who changed a device, when, from which state to which, and why."""

    __tablename__ = "device_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(sa.ForeignKey("devices.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    actor_label: Mapped[str] = mapped_column(sa.String(254))  # kept even if the account is removed
    action: Mapped[str] = mapped_column(sa.String(40))
    from_status: Mapped[DeviceStatus | None] = mapped_column(enum_column(DeviceStatus, "from_status"))
    to_status: Mapped[DeviceStatus] = mapped_column(enum_column(DeviceStatus, "to_status"))
    reason: Mapped[str] = mapped_column(sa.String(500), default="")

    device: Mapped[Device] = relationship(back_populates="events")
    actor: Mapped[User | None] = relationship()
