"""What each role has to do next: the coordinator's and the warehouse's home pages, and the list a coordinator
calls families from on a distribution day. Read-only queries, scoped like every other read."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..models import (
    Assignment,
    Device,
    DeviceModel,
    DeviceStatus,
    NeedKind,
    Pupil,
    Role,
    Slip,
    SlipLine,
    SlipStatus,
    User,
)
from . import return_slips
from .errors import OutOfScope
from .pupils import waiting_list_query
from .slips import slip_filter

PARIS = ZoneInfo("Europe/Paris")


def paris_midnight(now: datetime) -> datetime:
    """Midnight of ``now``'s day in Paris, as the naive UTC datetime the database stores."""
    aware = now.replace(tzinfo=UTC) if now.tzinfo is None else now
    local = aware.astimezone(PARIS).replace(hour=0, minute=0, second=0, microsecond=0)
    return local.astimezone(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class SlipItem:
    """One slip in a to-do list: enough to recognise it on a phone, no personal data."""

    id: int
    number: str
    status: SlipStatus
    counterpart: str  # the destination (for the warehouse) or the warehouse (for the coordinator)
    devices: int
    since: datetime | None  # issued (to prepare) or shipped (to receive)


@dataclass(frozen=True)
class CoordinatorHome:
    waiting: dict[NeedKind, int]  # pupils still without a device, per need
    to_receive: list[SlipItem]  # slips shipped to the organisation, oldest first
    received_not_handed: int  # devices received, not yet handed over to a family
    handovers_this_week: int
    returns_to_send: int = 0  # devices brought back by families, not yet on a return slip


@dataclass(frozen=True)
class WarehouseHome:
    to_prepare: list[SlipItem]  # issued or being prepared, oldest first
    picked_today: int
    shipped_today: int
    stock_received_today: int
    returns_to_receive: list = field(default_factory=list)  # return slips shipped to the warehouse


def to_paris_weekday(now: datetime) -> int:
    """Monday 0 … Sunday 6, in Paris."""
    aware = now.replace(tzinfo=UTC) if now.tzinfo is None else now
    return aware.astimezone(PARIS).weekday()


def _slip_items(
    session: Session, user: User, statuses: list[SlipStatus], *, since, counterpart
) -> list[SlipItem]:
    devices = (
        sa.select(sa.func.count())
        .where(SlipLine.slip_id == Slip.id, SlipLine.removed_at.is_(None))
        .scalar_subquery()
    )
    rows = session.execute(
        sa.select(Slip, devices)
        .where(slip_filter(user), Slip.status.in_(statuses), Slip.cancelled_at.is_(None))
        .order_by(since.asc(), Slip.id.asc())
        .limit(50)
    ).all()
    return [
        SlipItem(
            id=slip.id,
            number=slip.number or "",
            status=slip.status,
            counterpart=counterpart(slip).name,
            devices=count,
            since=getattr(slip, since.key),
        )
        for slip, count in rows
    ]


def coordinator_home(session: Session, user: User, now: datetime) -> CoordinatorHome:
    """The coordinator's work in figures: who waits, what arrives, what is still to hand over."""
    if user.role is not Role.COORDINATOR or not user.organisation_id:
        raise OutOfScope("Cette page est celle des coordinateurs d'une structure.")
    waiting_rows = waiting_list_query(user)
    waiting: dict[str, int] = {
        kind: count
        for kind, count in session.execute(
            sa.select(waiting_rows.c.kind, sa.func.count()).group_by(waiting_rows.c.kind)
        )
    }
    active = (Assignment.organisation_id == user.organisation_id, Assignment.cancelled_at.is_(None))
    received = session.scalar(
        sa.select(sa.func.count()).where(*active, Assignment.device_status == DeviceStatus.RECEIVED)
    )
    week_start = paris_midnight(now - timedelta(days=to_paris_weekday(now)))
    handed = session.scalar(
        sa.select(sa.func.count()).where(
            Assignment.organisation_id == user.organisation_id, Assignment.handed_over_at >= week_start
        )
    )
    return CoordinatorHome(
        waiting={kind: waiting.get(kind.value, 0) for kind in NeedKind},
        to_receive=_slip_items(
            session, user, [SlipStatus.SHIPPED], since=Slip.shipped_at, counterpart=lambda s: s.warehouse
        ),
        received_not_handed=received or 0,
        handovers_this_week=handed or 0,
        returns_to_send=return_slips.held_count(session, user.organisation_id),
    )


def warehouse_home(session: Session, user: User, now: datetime) -> WarehouseHome:
    """The warehouse's day: slips to prepare (oldest first) and what was done since midnight."""
    if user.role is not Role.WAREHOUSE or not user.organisation_id:
        raise OutOfScope("Cette page est celle des bénévoles d'un entrepôt.")
    today = paris_midnight(now)
    picked = session.scalar(
        sa.select(sa.func.count())
        .select_from(SlipLine)
        .join(Slip, Slip.id == SlipLine.slip_id)
        .where(Slip.warehouse_id == user.organisation_id, SlipLine.picked_at >= today)
    )
    shipped = session.scalar(
        sa.select(sa.func.count()).where(Slip.warehouse_id == user.organisation_id, Slip.shipped_at >= today)
    )
    received = session.scalar(
        sa.select(sa.func.count()).where(
            Device.warehouse_id == user.organisation_id, Device.created_at >= today
        )
    )
    return WarehouseHome(
        to_prepare=_slip_items(
            session,
            user,
            [SlipStatus.ISSUED, SlipStatus.PREPARED],
            since=Slip.issued_at,
            counterpart=lambda s: s.destination,
        ),
        picked_today=picked or 0,
        shipped_today=shipped or 0,
        stock_received_today=received or 0,
        returns_to_receive=return_slips.list_return_slips(session, user, statuses=[SlipStatus.SHIPPED]),
    )


@dataclass(frozen=True)
class DistributionRow:
    """One family to call: the pupil's device has arrived at the organisation."""

    reference: str
    first_name: str
    last_name: str
    grade: str
    guardian_name: str
    guardian_phone: str
    kind: NeedKind
    model: str
    serial: str
    asset_tag: str
    slip_number: str


def distribution_list(session: Session, user: User) -> list[DistributionRow]:
    """Pupils of the coordinator's organisation whose device was received and awaits its handover, by name."""
    if user.role is not Role.COORDINATOR or not user.organisation_id:
        raise OutOfScope("Seuls les coordinateurs de la structure voient la liste de distribution.")
    slip_number = (
        sa.select(Slip.number)
        .join(SlipLine, SlipLine.slip_id == Slip.id)
        .where(SlipLine.assignment_id == Assignment.id, SlipLine.removed_at.is_(None))
        .order_by(SlipLine.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    rows = session.execute(
        sa.select(Pupil, Assignment.kind, DeviceModel.name, Device.serial, Device.asset_tag, slip_number)
        .join(Assignment, Assignment.pupil_id == Pupil.id)
        .join(Device, Device.id == Assignment.device_id)
        .join(DeviceModel, DeviceModel.id == Device.model_id)
        .where(
            Assignment.organisation_id == user.organisation_id,
            Pupil.organisation_id == user.organisation_id,
            Assignment.cancelled_at.is_(None),
            Assignment.device_status == DeviceStatus.RECEIVED,
            Pupil.purged_at.is_(None),
        )
        .order_by(Pupil.last_name, Pupil.first_name, Pupil.id, Assignment.kind)
    ).all()
    return [
        DistributionRow(
            reference=pupil.reference or "",
            first_name=pupil.first_name or "",
            last_name=pupil.last_name or "",
            grade=pupil.grade,
            guardian_name=pupil.guardian_name or "",
            guardian_phone=pupil.guardian_phone or "",
            kind=kind,
            model=model,
            serial=serial,
            asset_tag=asset_tag,
            slip_number=number or "",
        )
        for pupil, kind, model, serial, asset_tag, number in rows
    ]
