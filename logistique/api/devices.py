"""The API's devices: list, look up by serial or asset tag, receive into stock.
Each endpoint calls the domain; none holds a rule of its own."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import joinedload

from ..db import db
from ..domain import devices as device_domain
from ..domain import scope
from ..domain.errors import ValidationFailed
from ..domain.money import find_model
from ..domain.scope import PERMISSIONS, Permission
from ..models import Device, DeviceModel, Lot, User
from . import schemas
from .framework import operation


def device_out(device: Device) -> dict:
    """A device as the API shows it."""
    return {
        "serial": device.serial,
        "asset_tag": device.asset_tag,
        "kind": device.model.kind,
        "model": device.model.name,
        "condition": device.condition,
        "status": device.status,
        "lot": device.lot.reference,
        "warehouse_id": device.warehouse_id,
        "updated_at": device.updated_at,
    }


@operation(
    "/devices",
    "GET",
    summary="Équipements du périmètre, filtrés et paginés",
    roles=PERMISSIONS[Permission.VIEW_DEVICES],
    query=schemas.DeviceQuery,
    response=schemas.DevicePage,
    errors=(400,),
)
def list_devices(user: User, *, query: schemas.DeviceQuery) -> dict:
    stmt = sa.select(Device).where(scope.device_filter(user))
    if query.status:
        stmt = stmt.where(Device.status == query.status)
    if query.kind:
        stmt = stmt.where(
            Device.model_id.in_(sa.select(DeviceModel.id).where(DeviceModel.kind == query.kind))
        )
    if query.lot:
        stmt = stmt.where(
            Device.lot_id.in_(sa.select(Lot.id).where(Lot.reference == query.lot.strip().upper()))
        )
    total = db.session.scalar(sa.select(sa.func.count()).select_from(stmt.subquery()))
    rows = db.session.scalars(
        stmt.options(joinedload(Device.model), joinedload(Device.lot))
        .order_by(Device.id)
        .limit(query.per_page)
        .offset((query.page - 1) * query.per_page)
    )
    return {
        "items": [device_out(d) for d in rows],
        "page": query.page,
        "per_page": query.per_page,
        "total": total,
    }


@operation(
    "/devices/<serial>",
    "GET",
    summary="Un équipement et son journal",
    roles=PERMISSIONS[Permission.VIEW_DEVICES],
    response=schemas.DeviceWithHistory,
    errors=(404,),
    path_params={"serial": "Numéro de série"},
)
def get_device(user: User, *, serial: str) -> dict:
    card = scope.device_card(db.session, user, serial=serial.strip().upper())
    history = [dict(event) for event in scope.device_history(db.session, card["id"])]
    return {**{k: v for k, v in card.items() if k != "id"}, "history": history}


@operation(
    "/devices",
    "POST",
    summary="Réceptionner un équipement d'un lot (entrepôt)",
    roles=PERMISSIONS[Permission.RECEIVE_STOCK],
    body=schemas.DeviceIn,
    response=schemas.Device,
    status=201,
    errors=(400, 404, 409),
    description="Le stock entre dans l'entrepôt du lot ; le modèle doit avoir un coût unitaire dans le lot.",
)
def create_device(user: User, *, body: schemas.DeviceIn) -> dict:
    lot = scope.get_lot(db.session, user, reference=body.lot.strip().upper())
    model = find_model(db.session, body.kind, body.model)
    if model is None:
        raise ValidationFailed(f"Modèle inconnu : {body.model} ({body.kind.label_lower}).")
    device = device_domain.receive_device(
        db.session,
        lot=lot,
        model=model,
        serial=body.serial,
        condition=body.condition,
        by=user,
        asset_tag=body.asset_tag,
    )
    return device_out(device)
