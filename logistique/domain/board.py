"""The board's read model: the queries behind the prefecture's pages and exports (``views/board.py``), on top
of the aggregated counts of ``status``. Pupil references only: no name ever leaves here."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased, joinedload

from ..formatting import to_paris
from ..models import (
    Assignment,
    Device,
    DeviceModel,
    DeviceStatus,
    Lot,
    Organisation,
    Pupil,
    Qpv,
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


def device_rows(session: Session, territory: status.Territory, qpv_code: str | None = None) -> list[list]:
    """The devices behind the board of a territory: actively assigned ones (by their pupil's QPV) and those
    reported missing or damaged at reception — the same devices the board counts. References, never names."""
    warehouse = aliased(Organisation)
    qpvs = scope.territory_qpv_codes(territory.kind, territory.code)
    if qpvs is None:
        qpvs = sa.select(Qpv.code)
    if qpv_code is not None:
        qpvs = qpvs.where(Qpv.code == qpv_code)
    columns = (
        Device.serial,
        Device.asset_tag,
        DeviceModel.kind,
        DeviceModel.name,
        Device.status,
        Lot.reference,
        warehouse.name,
        Assignment.qpv_code,
        Pupil.reference,
        Slip.number,
        Device.updated_at,
    )

    def base(query):
        return (
            query.join(Device, Device.id == Assignment.device_id)
            .join(DeviceModel, DeviceModel.id == Device.model_id)
            .join(Lot, Lot.id == Device.lot_id)
            .join(warehouse, warehouse.id == Device.warehouse_id)
            .join(Pupil, Pupil.id == Assignment.pupil_id)
            .where(Assignment.qpv_code.in_(qpvs))
        )

    active = base(
        sa.select(*columns)
        .select_from(Assignment)
        .outerjoin(SlipLine, sa.and_(SlipLine.assignment_id == Assignment.id, SlipLine.removed_at.is_(None)))
        .outerjoin(Slip, Slip.id == SlipLine.slip_id)
    ).where(Assignment.cancelled_at.is_(None), Device.status.in_(BOARD_STATUSES))
    lost = base(
        sa.select(*columns)
        .select_from(SlipLine)
        .join(Assignment, Assignment.id == SlipLine.assignment_id)
        .join(Slip, Slip.id == SlipLine.slip_id)
    ).where(
        SlipLine.removed_at.is_(None),
        SlipLine.reception_state.in_([ReceptionState.MISSING, ReceptionState.DAMAGED]),
    )
    rows = [*session.execute(active), *session.execute(lost)]
    rows.sort(key=lambda r: (r.qpv_code, r[4].value, r.serial))
    return [
        [
            serial,
            tag,
            kind.label,
            model,
            device_status.label,
            lot,
            warehouse_name,
            qpv,
            reference,
            number or "",
            to_paris(updated).date(),
        ]
        for serial, tag, kind, model, device_status, lot, warehouse_name, qpv, reference, number, updated in (
            rows
        )
    ]


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
