"""The prefecture's status board: delivery progress and money by territory (docs/architecture.md,
« Compteurs du tableau de bord »).

Every device behind a row is counted in exactly one column: ``assigned`` (attribué, not yet on a slip),
``on_slips`` (sur bordereau or préparé), ``shipped``, ``received``, ``handed_over``, ``missing``, ``damaged``
— so a row's columns add up to its ``devices``, and a territory's total is the sum of its rows. Devices are
placed in a QPV by their pupil's assignment; missing and damaged ones by the slip line that reported them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased

from ..db import utcnow
from ..models import (
    AllocationLine,
    AllocationPlan,
    Assignment,
    AssignmentTally,
    Department,
    Device,
    DeviceStatus,
    Envelope,
    EnvelopeKind,
    Organisation,
    PlanStatus,
    Qpv,
    Region,
    ReturnTally,
    Role,
    Slip,
    SlipStatus,
    TerritoryKind,
    User,
)
from . import scope
from .census import need_rows
from .errors import Forbidden, NotFound
from .money import cite_2020_cap, spendable_cents

COLUMNS = ("assigned", "on_slips", "shipped", "received", "handed_over", "missing", "damaged")
# end of loan, from the return counters (``return_tallies``): devices brought back by families, those back in
# a warehouse's stock after their check, those found (or brought back) defective. Not part of ``devices``.
RETURN_COLUMNS = ("returned", "restocked", "defective")
_STATUS_COLUMN = {
    DeviceStatus.ASSIGNED: "assigned",
    DeviceStatus.ON_SLIP: "on_slips",
    DeviceStatus.PREPARED: "on_slips",
    DeviceStatus.SHIPPED: "shipped",
    DeviceStatus.RECEIVED: "received",
    DeviceStatus.HANDED_OVER: "handed_over",
}
COLUMN_LABELS = {
    "needs": "Besoins",
    "allocated": "Quota",
    "assigned": "Attribués",
    "on_slips": "Sur bordereau",
    "shipped": "Expédiés",
    "received": "Reçus",
    "handed_over": "Remis",
    "missing": "Manquants",
    "damaged": "Endommagés",
    "returned": "Rendus par les familles",
    "restocked": "Remis en stock",
    "defective": "Défectueux au retour",
    "devices": "Équipements",
    "committed_cents": "Engagé (€)",
}


@dataclass(frozen=True)
class Territory:
    """What a board covers: everything (None), a region or a department."""

    kind: TerritoryKind | None
    code: str | None
    name: str

    @property
    def label(self) -> str:
        if self.kind is TerritoryKind.REGION:
            return f"Région {self.name}"
        if self.kind is TerritoryKind.DEPARTMENT:
            return f"{self.code} — {self.name}"
        return "Toutes les régions"


@dataclass
class StatusRow:
    level: str  # "total", "region", "department", "qpv"
    code: str
    name: str
    department: str = ""
    needs: int = 0
    allocated: int | None = None  # quota of the applied plan; None when no plan applies
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COLUMNS, 0))
    committed_cents: int = 0
    returns: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RETURN_COLUMNS, 0))

    @property
    def devices(self) -> int:
        return sum(self.counts.values())

    def __getattr__(self, name: str) -> int:
        if name in COLUMNS:
            return self.counts[name]
        if name in RETURN_COLUMNS:
            return self.returns[name]
        raise AttributeError(name)

    @property
    def has_reported(self) -> bool:
        """False for a territory where nobody has declared a need, nor received a quota or a device yet:
        the QPVs and departments a prefect must chase for the census."""
        return bool(self.needs or self.devices or self.allocated)

    def share(self, column: str) -> float | None:
        """A column as a share of the needs (None without needs)."""
        return self.counts[column] / self.needs if self.needs else None

    def add(self, other: StatusRow) -> None:
        self.needs += other.needs
        if other.allocated is not None:
            self.allocated = (self.allocated or 0) + other.allocated
        for column in COLUMNS:
            self.counts[column] += other.counts[column]
        for column in RETURN_COLUMNS:
            self.returns[column] += other.returns[column]
        self.committed_cents += other.committed_cents


# ---------------------------------------------------------------- territory and scope


def resolve(session: Session, user: User | None, code: str | None) -> Territory:
    """The territory a user asks for, within what they may see: a prefecture never leaves its own."""
    if user is not None and user.role not in scope.OVERSIGHT:
        raise Forbidden("Le tableau de bord est réservé aux préfectures et à l'administration.")
    own = None
    if user is not None and user.role is Role.PREFECTURE:
        own = Territory(user.territory_kind, user.territory_code, "")
    wanted = (code or "").strip().upper()
    if not wanted and own is None:
        return Territory(None, None, "")
    # without a code, the user's own territory: its kind is known (region and department codes overlap)
    kind, value = (own.kind, own.code) if not wanted else _parse(session, wanted)
    if own is not None and not _within(session, kind, value, own):
        raise NotFound("Territoire introuvable, ou hors de votre périmètre.")
    if kind is TerritoryKind.REGION:
        return Territory(kind, value, session.get(Region, value).name)
    return Territory(kind, value, session.get(Department, value).name)


def _parse(session: Session, code: str) -> tuple[TerritoryKind, str]:
    territory = scope.parse_territory(session, code)
    if territory is None:
        raise NotFound("Territoire introuvable, ou hors de votre périmètre.")
    return territory


def _within(session: Session, kind: TerritoryKind, code: str, own: Territory) -> bool:
    if own.kind is TerritoryKind.REGION:
        region = code if kind is TerritoryKind.REGION else session.get(Department, code).region_code
        return region == own.code
    return kind is TerritoryKind.DEPARTMENT and code == own.code


def _qpv_codes(territory: Territory):
    """SQL set of the QPV codes of a territory (None: all)."""
    return scope.territory_qpv_codes(territory.kind, territory.code)


# ---------------------------------------------------------------- the board's numbers


def _grouped(territory: Territory, by: str, code_column, *aggregates) -> sa.Select:
    """``aggregates`` of the rows whose QPV is ``code_column``, within the territory, grouped by QPV or by
    department (the key first)."""
    key = Qpv.code if by == "qpv" else Qpv.department_code
    query = (
        sa.select(key, *aggregates).join_from(code_column.table, Qpv, Qpv.code == code_column).group_by(key)
    )
    if territory.kind is TerritoryKind.DEPARTMENT:
        query = query.where(Qpv.department_code == territory.code)
    elif territory.kind is TerritoryKind.REGION:
        query = query.join(Department, Department.code == Qpv.department_code).where(
            Department.region_code == territory.code
        )
    return query


def _devices(*statuses: DeviceStatus, active_only: bool = True):
    """SUM of the counted devices in these statuses (of active assignments only, by default)."""
    counted: sa.ColumnElement[bool] = AssignmentTally.device_status.in_(statuses)
    if active_only:
        counted = sa.and_(AssignmentTally.active.is_(True), counted)
    return sa.func.sum(sa.case((counted, AssignmentTally.devices), else_=0))


# each column of the board from the assignment counters: active assignments by their device's status, ended
# ones whose device was declared missing or damaged at reception
_COLUMN_SQL = {
    "assigned": _devices(DeviceStatus.ASSIGNED),
    "on_slips": _devices(DeviceStatus.ON_SLIP, DeviceStatus.PREPARED),
    "shipped": _devices(DeviceStatus.SHIPPED),
    "received": _devices(DeviceStatus.RECEIVED),
    "handed_over": _devices(DeviceStatus.HANDED_OVER),
    "missing": _devices(DeviceStatus.LOST, active_only=False),
    "damaged": _devices(DeviceStatus.DEFECTIVE, active_only=False),
}
_RETURN_SQL = {
    "returned": sa.func.sum(ReturnTally.devices),
    "restocked": sa.func.sum(
        sa.case((ReturnTally.outcome == DeviceStatus.IN_STOCK, ReturnTally.devices), else_=0)
    ),
    "defective": sa.func.sum(
        sa.case((ReturnTally.outcome == DeviceStatus.DEFECTIVE, ReturnTally.devices), else_=0)
    ),
}
# a device the family brought back broken ends its assignment as defectueux, like one damaged in the parcel:
# the board's « damaged » column keeps only the latter
_BROKEN_SQL = sa.func.sum(
    sa.case((ReturnTally.state == DeviceStatus.DEFECTIVE, ReturnTally.devices), else_=0)
)
# money stays committed while the device is on its way or with its pupil, not once lost or damaged
_COMMITTED_SQL = sa.func.sum(
    sa.case(
        (
            sa.and_(
                AssignmentTally.active.is_(True), AssignmentTally.device_status.in_(list(_STATUS_COLUMN))
            ),
            AssignmentTally.cost_cents,
        ),
        else_=0,
    )
)


SILENT = "aucun besoin déclaré"  # how a row with nothing yet is flagged, on the pages and in the exports


def rows(session: Session, territory: Territory, by: str = "qpv") -> dict[str, StatusRow]:
    """One row per QPV (``by="qpv"``) or per department of the territory — every one of them, those with
    nothing yet included (``has_reported`` False) —, aggregated by the database from the counters."""
    level = "qpv" if by == "qpv" else "department"
    found: dict[str, StatusRow] = {}
    if level == "qpv":
        for code, name, department in session.execute(scope.territory_qpvs(territory.kind, territory.code)):
            found[code] = StatusRow(level, code, name, department)
    else:
        for code, name in session.execute(scope.departments_of(territory.kind, territory.code)):
            found[code] = StatusRow(level, code, name, code)

    def row(code: str) -> StatusRow:
        if code not in found:  # a QPV of an older list that still has needs or devices
            found[code] = StatusRow(level, code, "", code if level == "department" else "")
        return found[code]

    counts = _grouped(territory, level, AssignmentTally.qpv_code, *_COLUMN_SQL.values(), _COMMITTED_SQL)
    for code, *values in session.execute(counts):
        r = row(code)
        r.counts = {column: int(n or 0) for column, n in zip(_COLUMN_SQL, values, strict=False)}
        r.committed_cents = int(values[-1] or 0)
    returned = _grouped(territory, level, ReturnTally.qpv_code, *_RETURN_SQL.values(), _BROKEN_SQL)
    for code, *values in session.execute(returned):
        r = row(code)
        r.returns = {column: int(n or 0) for column, n in zip(_RETURN_SQL, values, strict=False)}
        r.counts["damaged"] -= int(values[-1] or 0)
    codes = _qpv_codes(territory)
    needs = need_rows((lambda c: c.in_(codes)) if codes is not None else (lambda c: sa.true()))
    for code, need in session.execute(
        _grouped(territory, level, needs.c.qpv_code, sa.func.sum(needs.c.need))
    ):
        row(code).needs += int(need or 0)
    quotas = (
        _grouped(territory, level, AllocationLine.qpv_code, sa.func.sum(AllocationLine.quota))
        .join(AllocationPlan, AllocationPlan.id == AllocationLine.plan_id)
        .where(AllocationPlan.status == PlanStatus.APPLIED)
    )
    for code, quota in session.execute(quotas):
        row(code).allocated = int(quota)
    unnamed = [code for code, r in found.items() if not r.name]
    if unnamed and level == "qpv":
        names = sa.select(Qpv.code, Qpv.name, Qpv.department_code).where(Qpv.code.in_(unnamed))
        for code, name, department in session.execute(names):
            found[code].name, found[code].department = name, department
    return found


def board(
    session: Session, territory: Territory, *, by: str = "department"
) -> tuple[StatusRow, list[StatusRow]]:
    """The territory's total and its rows, per department (default) or per QPV."""
    found = rows(session, territory, "qpv" if by == "qpv" else "department")
    total = StatusRow("total", territory.code or "", territory.label)
    for row in found.values():
        total.add(row)
    return total, sorted(found.values(), key=lambda r: (r.department, r.code))


# ---------------------------------------------------------------- money


@dataclass
class EnvelopeRow:
    envelope: Envelope
    spendable_cents: int
    committed_cents: int
    delivered_cents: int

    @property
    def left_cents(self) -> int:
        return self.spendable_cents - self.committed_cents

    @property
    def cap_cents(self) -> int | None:
        """For a cité éducative 2020 envelope: 15 % of its annual amount."""
        if self.envelope.kind is EnvelopeKind.CITE_2020 and self.envelope.annual_amount_cents:
            return cite_2020_cap(self.envelope.annual_amount_cents)
        return None


def money(session: Session, territory: Territory) -> list[EnvelopeRow]:
    """Each envelope of the territory's region: amount, committed (assigned × unit cost), delivered, left."""
    query = sa.select(Envelope).order_by(Envelope.region_code, Envelope.kind, Envelope.label)
    if territory.kind is TerritoryKind.REGION:
        query = query.where(Envelope.region_code == territory.code)
    elif territory.kind is TerritoryKind.DEPARTMENT:
        query = query.where(
            Envelope.region_code
            == sa.select(Department.region_code).where(Department.code == territory.code).scalar_subquery()
        )
    envelopes = session.scalars(query).all()
    delivered = sa.case(
        (AssignmentTally.device_status == DeviceStatus.HANDED_OVER, AssignmentTally.cost_cents), else_=0
    )
    sums = {
        env_id: (int(committed or 0), int(handed or 0))
        for env_id, committed, handed in session.execute(
            sa.select(
                AssignmentTally.envelope_id, sa.func.sum(AssignmentTally.cost_cents), sa.func.sum(delivered)
            )
            .where(
                AssignmentTally.active.is_(True), AssignmentTally.envelope_id.in_([e.id for e in envelopes])
            )
            .group_by(AssignmentTally.envelope_id)
        )
    }
    return [EnvelopeRow(e, spendable_cents(e), *sums.get(e.id, (0, 0))) for e in envelopes]


# ---------------------------------------------------------------- pace and stuck slips


def handovers_per_day(
    session: Session, territory: Territory, *, days: int = 30, today: date | None = None
) -> list[tuple[date, int]]:
    """Devices handed over per day over the last ``days`` days (zeros included), oldest first."""
    today = today or utcnow().date()
    start = today - timedelta(days=days - 1)
    codes = _qpv_codes(territory)
    # assignments keep the time their device was handed over (index ix_assignments_handed_over)
    day = sa.func.date(Assignment.handed_over_at)
    query = (
        sa.select(day, sa.func.count())
        .where(Assignment.handed_over_at >= datetime.combine(start, datetime.min.time()))
        .group_by(day)
    )
    if codes is not None:
        query = query.where(Assignment.qpv_code.in_(codes))
    counts: dict[date, int] = {}
    for value, count in session.execute(query):
        # PostgreSQL answers a date, SQLite the text 'YYYY-MM-DD'
        counts[value if isinstance(value, date) else date.fromisoformat(value)] = count
    return [(start + timedelta(days=n), counts.get(start + timedelta(days=n), 0)) for n in range(days)]


@dataclass(frozen=True)
class StuckSlip:
    number: str
    status: SlipStatus
    destination: str
    warehouse: str
    reason: str
    since: datetime
    days: int


@dataclass(frozen=True)
class StuckSlips:
    total: int  # every stuck slip of the territory
    oldest: list[StuckSlip]  # the longest waiting first, at most ``limit`` of them


def stuck_slips(
    session: Session,
    user: User | None,
    territory: Territory,
    *,
    days: int = 3,
    now: datetime | None = None,
    limit: int = 100,
) -> StuckSlips:
    """Slips issued but not shipped, or shipped but not received, for more than ``days`` days: how many, and
    the ``limit`` that have waited longest."""
    from .slips import slip_filter

    now = now or utcnow()
    cutoff = now - timedelta(days=days)
    waiting = [SlipStatus.ISSUED, SlipStatus.PREPARED]
    conditions = [
        slip_filter(user),
        sa.or_(
            sa.and_(Slip.status.in_(waiting), Slip.issued_at < cutoff),
            sa.and_(Slip.status == SlipStatus.SHIPPED, Slip.shipped_at < cutoff),
        ),
    ]
    destinations = sa.select(Organisation.id)
    if territory.kind is TerritoryKind.DEPARTMENT:
        conditions.append(
            Slip.destination_id.in_(destinations.where(Organisation.department_code == territory.code))
        )
    elif territory.kind is TerritoryKind.REGION:
        conditions.append(
            Slip.destination_id.in_(
                destinations.join(Department, Organisation.department_code == Department.code).where(
                    Department.region_code == territory.code
                )
            )
        )
    total = session.scalar(sa.select(sa.func.count()).select_from(Slip).where(*conditions)) or 0
    since = sa.case((Slip.status == SlipStatus.SHIPPED, Slip.shipped_at), else_=Slip.issued_at)
    destination, warehouse = aliased(Organisation), aliased(Organisation)
    rows = session.execute(
        sa.select(Slip.number, Slip.status, destination.name, warehouse.name, since)
        .join(destination, destination.id == Slip.destination_id)
        .join(warehouse, warehouse.id == Slip.warehouse_id)
        .where(*conditions)
        .order_by(since, Slip.id)
        .limit(limit)
    )
    oldest = [
        StuckSlip(
            number,
            slip_status,
            destination_name,
            warehouse_name,
            "expédié, pas encore réceptionné"
            if slip_status is SlipStatus.SHIPPED
            else "émis, pas encore expédié",
            waited_since,
            (now - waited_since).days,
        )
        for number, slip_status, destination_name, warehouse_name, waited_since in rows
    ]
    return StuckSlips(total, oldest)


def qpv_devices_query(user: User | None, qpv_code: str):
    """Devices of a QPV's pupils (pupil references only), for the drill-down and its export."""
    return (
        sa.select(Device, Assignment)
        .join(Assignment, Assignment.device_id == Device.id)
        .where(Assignment.qpv_code == qpv_code, Assignment.cancelled_at.is_(None), scope.device_filter(user))
        .order_by(Device.status, Device.id)
    )
