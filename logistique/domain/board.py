"""The board's read model: the queries behind the prefecture's pages and exports (``views/board.py``), on top
of the aggregated counts of ``status``. Pupil references only: no name ever leaves here."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, aliased, joinedload

from ..formatting import to_paris
from ..models import (
    Assignment,
    Device,
    DeviceKind,
    DeviceModel,
    DeviceStatus,
    Lot,
    Organisation,
    Pupil,
    ReceptionState,
    Slip,
    SlipLine,
    User,
)
from . import scope, status
from .slips import slip_filter

BOARD_STATUSES = (
    DeviceStatus.ASSIGNED,
    DeviceStatus.ON_SLIP,
    DeviceStatus.PREPARED,
    DeviceStatus.SHIPPED,
    DeviceStatus.RECEIVED,
    DeviceStatus.HANDED_OVER,
)


DEVICE_HEADERS = [
    "N° de série",
    "Étiquette",
    "Type",
    "Modèle",
    "Statut",
    "Lot",
    "Entrepôt",
    "QPV",
    "Élève (référence)",
    "N° de bordereau",
    "Mis à jour le",
]


class _utc_hour(sa.sql.expression.FunctionElement):
    """The hour (UTC) of a stored timestamp, as the database gives it cheaply: few distinct values, each
    turned into a Paris day once per export (``_Days``) instead of once per row."""

    inherit_cache = True


@compiles(_utc_hour, "sqlite")
def _utc_hour_sqlite(element, compiler, **kw):
    # timestamps are stored as text, 'YYYY-MM-DD HH:MM:SS.ffffff': the hour is a prefix, no parsing
    return f"substr({compiler.process(element.clauses, **kw)}, 1, 13)"


@compiles(_utc_hour, "postgresql")
def _utc_hour_postgresql(element, compiler, **kw):
    return f"date_trunc('hour', {compiler.process(element.clauses, **kw)})"


def _text(column: Any) -> Any:
    """An enum column read and compared as its stored code (plain text: no conversion on either side)."""
    return sa.type_coerce(column, sa.String)


def device_query(territory: status.Territory, qpv_code: str | None = None) -> sa.Select:
    """The devices behind the board of a territory: actively assigned ones (by their pupil's QPV) and those
    reported missing or damaged at reception — the same devices the board counts — by QPV, status and serial.
    References, never names. Plain text columns and parameters (codes, not enums; ``updated_hour`` the UTC
    hour of the last change), which the driver reads and binds as they are (``_driver_batches``)."""
    warehouse = aliased(Organisation)
    conditions: list[sa.ColumnElement[bool]] = []
    qpvs = scope.territory_qpv_codes(territory.kind, territory.code)
    if qpvs is not None:  # everywhere: no filter (every assignment's QPV is a known one, a foreign key)
        conditions.append(Assignment.qpv_code.in_(qpvs))
    if qpv_code is not None:
        conditions.append(Assignment.qpv_code == qpv_code)
    columns = (
        Device.serial.label("serial"),
        Device.asset_tag.label("asset_tag"),
        _text(DeviceModel.kind).label("kind"),
        DeviceModel.name.label("model"),
        _text(Device.status).label("status"),
        Lot.reference.label("lot"),
        warehouse.name.label("warehouse"),
        Assignment.qpv_code.label("qpv_code"),
        Pupil.reference.label("pupil"),
        sa.func.coalesce(Slip.number, "").label("slip"),
        _utc_hour(Device.updated_at).label("updated_hour"),
    )

    def base(query):
        return (
            query.join(Device, Device.id == Assignment.device_id)
            .join(DeviceModel, DeviceModel.id == Device.model_id)
            .join(Lot, Lot.id == Device.lot_id)
            .join(warehouse, warehouse.id == Device.warehouse_id)
            .join(Pupil, Pupil.id == Assignment.pupil_id)
            .where(*conditions)
        )

    active = base(
        sa.select(*columns)
        .select_from(Assignment)
        .outerjoin(SlipLine, sa.and_(SlipLine.assignment_id == Assignment.id, SlipLine.removed_at.is_(None)))
        .outerjoin(Slip, Slip.id == SlipLine.slip_id)
    ).where(Assignment.cancelled_at.is_(None), _text(Device.status).in_([s.value for s in BOARD_STATUSES]))
    lost = base(
        sa.select(*columns)
        .select_from(SlipLine)
        .join(Assignment, Assignment.id == SlipLine.assignment_id)
        .join(Slip, Slip.id == SlipLine.slip_id)
    ).where(
        SlipLine.removed_at.is_(None),
        _text(SlipLine.reception_state).in_([ReceptionState.MISSING.value, ReceptionState.DAMAGED.value]),
    )
    both = sa.union_all(active, lost).subquery()
    return sa.select(both).order_by(both.c.qpv_code, both.c.status, both.c.serial)


BATCH_ROWS = 5_000
_KINDS = {kind.value: kind.label for kind in DeviceKind}
_STATUSES = {s.value: s.label for s in DeviceStatus}


class _Days(dict):
    """UTC hour (as ``_utc_hour`` gives it) → its day in Paris, formatted by ``day``, computed on first use
    (offsets are whole hours: every moment of an hour has the same Paris day)."""

    def __init__(self, day: Callable[[date], Any]) -> None:
        super().__init__()
        self.day = day

    def __missing__(self, hour: str | datetime) -> Any:
        moment = datetime.fromisoformat(hour + ":00") if isinstance(hour, str) else hour
        value = self[hour] = self.day(to_paris(moment).date())
        return value


def _driver_batches(session: Session, query: sa.Select, size: int) -> Iterator[list[tuple]]:
    """The rows of a Core select as the driver gives them (tuples), ``size`` at a time, on the session's
    connection and transaction, from a server-side cursor on PostgreSQL. SQLAlchemy compiles the statement
    but does not process the rows: its columns and parameters must be plain values (no enum, no type whose
    conversion SQLAlchemy does), as ``device_query``'s are."""
    connection = session.connection()
    compiled = query.compile(connection, compile_kwargs={"render_postcompile": True})
    values = compiled.construct_params()
    params = [values[name] for name in compiled.positiontup or ()] if compiled.positional else values
    driver = connection.connection.driver_connection
    cursor = (
        driver.cursor(name="logistique_export")
        if connection.dialect.name == "postgresql"
        else driver.cursor()
    )
    try:
        cursor.execute(str(compiled), params)
        while rows := cursor.fetchmany(size):
            yield rows
    finally:
        cursor.close()


def device_batches(
    session: Session,
    territory: status.Territory,
    qpv_code: str | None = None,
    *,
    day: Callable[[date], Any] = lambda d: d,
) -> Iterator[list[tuple]]:
    """The rows of ``device_query`` as exported (labels, Paris day of the last change formatted by ``day``),
    a few thousand at a time, read from a server-side cursor on PostgreSQL: an export of the whole country
    streams in constant memory. One Core statement, rows as the driver reads them: no per-row work in
    SQLAlchemy."""
    kinds, statuses, days = _KINDS, _STATUSES, _Days(day)
    for rows in _driver_batches(session, device_query(territory, qpv_code), BATCH_ROWS):
        yield [
            (serial, tag, kinds[kind], model, statuses[state], lot, warehouse, qpv, pupil, slip, days[hour])
            for serial, tag, kind, model, state, lot, warehouse, qpv, pupil, slip, hour in rows
        ]


def device_rows(
    session: Session, territory: status.Territory, qpv_code: str | None = None
) -> Iterator[tuple]:
    """The rows of ``device_batches`` one by one, the day of the last change as a ``date``."""
    for batch in device_batches(session, territory, qpv_code):
        yield from batch


def qpv_slips(session: Session, user: User | None, qpv_code: str) -> tuple[list[Slip], dict[int, int]]:
    """The slips (in the user's scope) carrying devices of a QPV's pupils, newest first, and how many of
    that QPV's devices each carries."""
    in_qpv = (
        sa.select(SlipLine.slip_id)
        .join(Assignment, Assignment.id == SlipLine.assignment_id)
        .where(Assignment.qpv_code == qpv_code, SlipLine.removed_at.is_(None))
    )
    slip_rows = list(
        session.scalars(
            sa.select(Slip)
            .where(slip_filter(user), Slip.id.in_(in_qpv))
            .options(joinedload(Slip.destination), joinedload(Slip.warehouse))
            .order_by(Slip.id.desc())
        )
        .unique()
        .all()
    )
    line_counts: dict[int, int] = dict(
        session.execute(  # type: ignore[arg-type]
            sa.select(SlipLine.slip_id, sa.func.count())
            .join(Assignment, Assignment.id == SlipLine.assignment_id)
            .where(
                Assignment.qpv_code == qpv_code,
                SlipLine.removed_at.is_(None),
                SlipLine.slip_id.in_([s.id for s in slip_rows]),
            )
            .group_by(SlipLine.slip_id)
        ).all()
    )
    return slip_rows, line_counts


def qpv_devices(session: Session, user: User | None, qpv_code: str, *, limit: int) -> list[sa.Row]:
    """A QPV's devices on the board (``status.qpv_devices_query``) with their pupil's reference and their
    slip's number, at most ``limit``."""
    query = (
        status.qpv_devices_query(user, qpv_code)
        .join(Pupil, Pupil.id == Assignment.pupil_id)
        .outerjoin(SlipLine, sa.and_(SlipLine.assignment_id == Assignment.id, SlipLine.removed_at.is_(None)))
        .outerjoin(Slip, Slip.id == SlipLine.slip_id)
        .add_columns(Pupil.reference, Slip.number)
        .options(joinedload(Device.model))
        .limit(limit)
    )
    return list(session.execute(query).all())


def qpv_lost_devices(session: Session, qpv_code: str) -> list[sa.Row]:
    """A QPV's devices reported missing or damaged at reception, with pupil reference and slip number."""
    rows = session.execute(
        sa.select(Device, SlipLine.reception_state, Pupil.reference, Slip.number)
        .join(SlipLine, SlipLine.device_id == Device.id)
        .join(Assignment, Assignment.id == SlipLine.assignment_id)
        .join(Pupil, Pupil.id == Assignment.pupil_id)
        .join(Slip, Slip.id == SlipLine.slip_id)
        .where(
            Assignment.qpv_code == qpv_code,
            SlipLine.removed_at.is_(None),
            SlipLine.reception_state.in_([ReceptionState.MISSING, ReceptionState.DAMAGED]),
        )
        .options(joinedload(Device.model))
        .order_by(SlipLine.id)
    ).all()
    return list(rows)
