"""Who may do what (roles) and see what (scopes). Every page, API endpoint and CLI command asks here."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, joinedload
from sqlalchemy.sql import ColumnElement

from ..models import (
    Assignment,
    Department,
    Device,
    DeviceEvent,
    DeviceModel,
    Envelope,
    Lot,
    Organisation,
    OrganisationKind,
    Qpv,
    Region,
    Role,
    TerritoryKind,
    User,
)
from ..statements import Prepared
from .errors import Forbidden, NotFound


class Permission(StrEnum):
    MANAGE_USERS = "users.manage"
    MANAGE_REFERENTIAL = "referential.manage"
    MANAGE_MONEY = "money.manage"
    VIEW_MONEY = "money.view"
    VIEW_DEVICES = "devices.view"
    RECEIVE_STOCK = "stock.receive"
    VIEW_ORGANISATIONS = "organisations.view"


# The role sets, defined here only: every page, endpoint and domain rule names one of them.
ALL_ROLES = frozenset(Role)
STAFF = frozenset({Role.ADMIN})
WAREHOUSE = frozenset({Role.ADMIN, Role.WAREHOUSE})  # receive stock, prepare and ship slips
COORDINATION = frozenset({Role.ADMIN, Role.COORDINATOR})  # pupils, assignments, slips, reception, handover
OVERSIGHT = frozenset({Role.ADMIN, Role.PREFECTURE})  # the board, the census, the money read-only

PERMISSIONS: dict[Permission, frozenset[Role]] = {
    Permission.MANAGE_USERS: STAFF,
    Permission.MANAGE_REFERENTIAL: STAFF,
    Permission.MANAGE_MONEY: STAFF,
    Permission.VIEW_MONEY: OVERSIGHT,
    Permission.VIEW_DEVICES: ALL_ROLES,
    Permission.RECEIVE_STOCK: WAREHOUSE,
    Permission.VIEW_ORGANISATIONS: ALL_ROLES,
}


def can(user: User | None, permission: Permission) -> bool:
    """Whether the user's role grants ``permission`` (None is the command line, which may do everything)."""
    return user is None or user.role in PERMISSIONS[permission]


def require(user: User | None, permission: Permission) -> None:
    """Raise Forbidden unless the user's role grants ``permission``."""
    if not can(user, permission):
        raise Forbidden()


def user_region(user: User) -> str | sa.ScalarSelect | None:
    """The region a user belongs to (organisation's or territory's); None for admins."""
    if user.organisation is not None:
        return user.organisation.department.region_code
    if user.territory_kind is TerritoryKind.REGION:
        return user.territory_code
    if user.territory_kind is TerritoryKind.DEPARTMENT and user.territory_code:
        return (
            sa.select(Department.region_code).where(Department.code == user.territory_code).scalar_subquery()
        )
    return None


def territory_departments(user: User) -> sa.Select:
    """SQL set of department codes of a prefecture user's territory."""
    if user.territory_kind is TerritoryKind.DEPARTMENT:
        return sa.select(sa.literal(user.territory_code))
    return sa.select(Department.code).where(Department.region_code == user.territory_code)


def territory_qpv_codes(kind: TerritoryKind | None, code: str | None) -> sa.Select | None:
    """SQL set of the QPV codes of a territory (a region or a department); None for everywhere."""
    if kind is TerritoryKind.DEPARTMENT:
        return sa.select(Qpv.code).where(Qpv.department_code == code)
    if kind is TerritoryKind.REGION:
        return (
            sa.select(Qpv.code)
            .join(Department, Qpv.department_code == Department.code)
            .where(Department.region_code == code)
        )
    return None


def territory_qpvs(kind: TerritoryKind | None, code: str | None) -> sa.Select:
    """(code, name, department) of every QPV of the current list (the most recent list year loaded) in a
    territory: those a board or a census must show even when nobody has declared anything there yet."""
    latest = sa.select(sa.func.max(Qpv.list_year)).scalar_subquery()
    query = sa.select(Qpv.code, Qpv.name, Qpv.department_code).where(Qpv.list_year == latest)
    codes = territory_qpv_codes(kind, code)
    return query if codes is None else query.where(Qpv.code.in_(codes))


def departments_of(kind: TerritoryKind | None, code: str | None) -> sa.Select:
    """(code, name) of every department of a territory."""
    query = sa.select(Department.code, Department.name)
    if kind is TerritoryKind.DEPARTMENT:
        return query.where(Department.code == code)
    if kind is TerritoryKind.REGION:
        return query.where(Department.region_code == code)
    return query


def parse_territory(session: Session, code: str) -> tuple[TerritoryKind, str] | None:
    """``32``, ``region:32``, ``departement:59`` or ``dep:59`` as a known territory (None when unknown).

    A bare code names a region when one has that code, else a department (prefix to disambiguate)."""
    kind_hint, _, value = (code or "").strip().rpartition(":")
    value = value.strip().upper()
    if value.isascii() and value.isdigit() and len(value) == 1:
        value = "0" + value
    kind_hint = kind_hint.strip().lower()
    if kind_hint in {"", "region", "reg", "r"} and session.get(Region, value) is not None:
        return TerritoryKind.REGION, value
    if kind_hint in {"", "departement", "dep", "d"} and session.get(Department, value) is not None:
        return TerritoryKind.DEPARTMENT, value
    return None


def _region_departments(region: object) -> sa.Select:
    return sa.select(Department.code).where(Department.region_code == region)


def _nothing() -> ColumnElement[bool]:
    return sa.false()


def organisation_filter(user: User | None) -> ColumnElement[bool]:
    """Organisations a user may see: their own, and those of their region they work with."""
    if user is None or user.role is Role.ADMIN:
        return sa.true()
    if user.role is Role.PREFECTURE:
        return Organisation.department_code.in_(territory_departments(user))
    if user.organisation_id is None:
        return _nothing()
    region = user_region(user)
    same_region = Organisation.department_code.in_(_region_departments(region))
    if user.role is Role.WAREHOUSE:
        # a warehouse ships to the associations and schools of its region
        return sa.or_(
            Organisation.id == user.organisation_id,
            sa.and_(
                same_region, Organisation.kind.in_([OrganisationKind.ASSOCIATION, OrganisationKind.SCHOOL])
            ),
        )
    # coordinators see themselves and the warehouses whose stock they draw from
    return sa.or_(
        Organisation.id == user.organisation_id,
        sa.and_(same_region, Organisation.kind == OrganisationKind.WAREHOUSE),
    )


def device_filter(user: User | None) -> ColumnElement[bool]:
    """Devices a user may see: a warehouse's own stock, the region's for its coordinators and prefecture."""
    if user is None or user.role is Role.ADMIN:
        return sa.true()
    warehouses_in = sa.select(Organisation.id)
    if user.role is Role.WAREHOUSE:
        return Device.warehouse_id == user.organisation_id if user.organisation_id else _nothing()
    if user.role is Role.PREFECTURE:
        # the territory's warehouses, and the devices assigned to pupils of the territory's QPVs
        departments = territory_departments(user)
        return sa.or_(
            Device.warehouse_id.in_(warehouses_in.where(Organisation.department_code.in_(departments))),
            Device.id.in_(
                sa.select(Assignment.device_id).where(
                    Assignment.cancelled_at.is_(None),
                    Assignment.qpv_code.in_(sa.select(Qpv.code).where(Qpv.department_code.in_(departments))),
                )
            ),
        )

    if user.organisation_id is None:
        return _nothing()
    return Device.warehouse_id.in_(
        warehouses_in.where(Organisation.department_code.in_(_region_departments(user_region(user))))
    )


def device_in_scope(user: User | None, device: Device) -> bool | None:
    """``device_filter`` for a loaded device when it needs no query (admins, warehouses), else None."""
    return warehouse_visible(user, device.warehouse_id)


def warehouse_visible(user: User | None, warehouse_id: int) -> bool | None:
    """``device_filter`` for a device of that warehouse when it needs no query (admins, warehouses), else
    None."""
    if user is None or user.role is Role.ADMIN:
        return True
    if user.role is Role.WAREHOUSE:
        return user.organisation_id is not None and warehouse_id == user.organisation_id
    return None


def lot_filter(user: User | None) -> ColumnElement[bool]:
    """Lots a user may see: a warehouse's lots; the region's lots for the others."""
    if user is None or user.role is Role.ADMIN:
        return sa.true()
    if user.role is Role.WAREHOUSE:
        return Lot.warehouse_id == user.organisation_id if user.organisation_id else _nothing()
    region = user_region(user)
    if region is None:
        return _nothing()
    return Lot.envelope_id.in_(sa.select(Envelope.id).where(Envelope.region_code == region))


def envelope_filter(user: User | None) -> ColumnElement[bool]:
    """Envelopes a user may see: admins all, prefecture staff their region's."""
    if user is None or user.role is Role.ADMIN:
        return sa.true()
    if user.role is not Role.PREFECTURE:
        return _nothing()
    return Envelope.region_code == user_region(user)


def get_device(
    session: Session,
    user: User | None,
    *,
    device_id: int | None = None,
    serial: str | None = None,
    asset_tag: str | None = None,
) -> Device:
    """One device visible to the user, or NotFound (unknown and out of scope look the same)."""
    query = sa.select(Device).where(device_filter(user))
    if device_id is not None:
        query = query.where(Device.id == device_id)
    elif serial is not None:
        query = query.where(Device.serial == serial)
    elif asset_tag is not None:
        query = query.where(Device.asset_tag == asset_tag)
    else:
        raise NotFound()
    # its model and lot come with it: every caller shows or checks them
    device = session.scalars(query.options(joinedload(Device.model), joinedload(Device.lot))).one_or_none()
    if device is None:
        raise NotFound("Équipement introuvable, ou hors de votre périmètre.")
    return device


# A device's card, read without loading objects (the API's device read answers many requests): built once.
_CARD = (
    sa.select(
        Device.id,
        Device.serial,
        Device.asset_tag,
        DeviceModel.kind,
        DeviceModel.name.label("model"),
        Device.condition,
        Device.status,
        Lot.reference.label("lot"),
        Device.warehouse_id,
        Device.updated_at,
    )
    .join(DeviceModel, DeviceModel.id == Device.model_id)
    .join(Lot, Lot.id == Device.lot_id)
)
_CARD_BY_SERIAL = Prepared(_CARD.where(Device.serial == sa.bindparam("serial")))
_HISTORY = Prepared(
    sa.select(
        DeviceEvent.at,
        DeviceEvent.actor_label.label("actor"),
        DeviceEvent.action,
        DeviceEvent.from_status,
        DeviceEvent.to_status,
        DeviceEvent.reason,
    )
    .where(DeviceEvent.device_id == sa.bindparam("device_id"))
    .order_by(DeviceEvent.id)
)


def device_card(session: Session, user: User | None, *, serial: str) -> Mapping[str, Any]:
    """One device visible to the user — serial, asset tag, kind, model, condition, status, lot, warehouse,
    last change — as a row, or NotFound (unknown and out of scope look the same)."""
    row: Mapping[str, Any] | None
    if user is not None and user.role not in (Role.ADMIN, Role.WAREHOUSE):  # a region, a territory: a query
        query = _CARD.where(Device.serial == serial, device_filter(user))
        found = session.connection().execute(query).mappings().first()
        row = dict(found) if found is not None else None
    else:
        row = _CARD_BY_SERIAL.mapping(_CARD_BY_SERIAL.first(session, {"serial": serial}))
        if row is not None and not warehouse_visible(user, row["warehouse_id"]):
            row = None
    if row is None:
        raise NotFound("Équipement introuvable, ou hors de votre périmètre.")
    return row


def device_history(session: Session, device_id: int) -> list[dict[str, Any]]:
    """A device's journal, oldest first: at, actor, action, from_status, to_status, reason."""
    return [_HISTORY.mapping(row) for row in _HISTORY.rows(session, {"device_id": device_id})]


def scanned_text(code: str) -> str:
    """What a scanned or typed code names: a serial or an asset tag (from a label's ``…/d/<tag>`` URL too)."""
    text = (code or "").strip()
    if "/d/" in text:
        text = text.rsplit("/d/", 1)[1].split("?")[0].split("#")[0]
    return text.strip().upper()


def get_organisation(session: Session, user: User | None, organisation_id: int) -> Organisation:
    """One organisation visible to the user, or NotFound."""
    org = session.scalars(
        sa.select(Organisation).where(Organisation.id == organisation_id, organisation_filter(user))
    ).one_or_none()
    if org is None:
        raise NotFound("Structure introuvable, ou hors de votre périmètre.")
    return org


def get_lot(
    session: Session, user: User | None, *, lot_id: int | None = None, reference: str | None = None
) -> Lot:
    """One lot visible to the user, or NotFound."""
    query = sa.select(Lot).where(lot_filter(user))
    query = query.where(Lot.id == lot_id) if lot_id is not None else query.where(Lot.reference == reference)
    lot = session.scalars(query).one_or_none()
    if lot is None:
        raise NotFound("Lot introuvable, ou hors de votre périmètre.")
    return lot


def region_of(session: Session, code: str) -> Region | None:
    """The region with that code, if any."""
    return session.get(Region, code)
