"""Envelopes and lots: the money side of the referential."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..formatting import euros
from ..models import (
    CiteEducative,
    DeviceKind,
    DeviceModel,
    Envelope,
    EnvelopeKind,
    Lot,
    LotUnitCost,
    Organisation,
    OrganisationKind,
    Region,
    User,
)
from . import scope, tallies
from .errors import Conflict, ValidationFailed

CITE_2020_CAP_PERCENT = 15


def cite_2020_cap(annual_amount_cents: int) -> int:
    """The most a cité éducative may spend on the plan from its 2020 envelope: 15 % of its annual amount."""
    return annual_amount_cents * CITE_2020_CAP_PERCENT // 100


@dataclass
class EnvelopeData:
    region_code: str
    kind: EnvelopeKind
    label: str
    amount_cents: int
    annual_amount_cents: int | None = None
    cite_educative_code: str = ""


def save_envelope(
    session: Session, data: EnvelopeData, *, by: User | None, envelope: Envelope | None = None
) -> Envelope:
    """Create or update an envelope; a cité éducative 2020 one stays within 15 % of its annual amount."""
    scope.require(by, scope.Permission.MANAGE_MONEY)
    if session.get(Region, data.region_code) is None:
        raise ValidationFailed(f"Région inconnue : {data.region_code}.")
    label = data.label.strip()
    if not label:
        raise ValidationFailed("Le libellé de l'enveloppe est obligatoire.")
    if data.amount_cents < 0:
        raise ValidationFailed("Le montant ne peut pas être négatif.")
    cite = data.cite_educative_code.strip() or None
    annual = None
    if data.kind in (EnvelopeKind.CITE_2019, EnvelopeKind.CITE_2020):
        if not cite:
            raise ValidationFailed("Une enveloppe de cité éducative doit nommer sa cité éducative.")
        cite_row = session.get(CiteEducative, cite)
        if cite_row is None:
            raise ValidationFailed(f"Cité éducative inconnue : {cite}.")
        if cite_row.department_code not in {
            d.code for d in session.get(Region, data.region_code).departments
        }:
            raise ValidationFailed("La cité éducative n'est pas dans la région de l'enveloppe.")
    elif cite:
        raise ValidationFailed("Seules les enveloppes de cité éducative nomment une cité éducative.")
    if data.kind is EnvelopeKind.CITE_2020:
        annual = data.annual_amount_cents
        if not annual or annual <= 0:
            raise ValidationFailed("Indiquez le montant annuel 2020 de la cité éducative.")
        cap = cite_2020_cap(annual)
        if data.amount_cents > cap:
            raise ValidationFailed(
                f"Au plus {CITE_2020_CAP_PERCENT} % de l'enveloppe 2020 peut servir au plan : "
                f"{euros(cap)} au maximum."
            )
    if envelope is not None:
        # the lock an assignment holds while it spends from the envelope (assignments.assign): an assignment
        # being made now is counted once committed, instead of this change passing the check before it
        session.execute(
            sa.select(Envelope.id).where(Envelope.id == envelope.id).with_for_update(key_share=True)
        )
        committed = committed_by_envelope(session, [envelope.id]).get(envelope.id, 0)
        if data.amount_cents < committed:
            raise ValidationFailed(
                "Le montant ne peut pas descendre sous ce qui est déjà engagé sur l'enveloppe."
            )
    env = envelope or Envelope()
    env.region_code = data.region_code
    env.kind = data.kind
    env.label = label
    env.amount_cents = data.amount_cents
    env.annual_amount_cents = annual
    env.cite_educative_code = cite
    if envelope is None:
        session.add(env)
    session.flush()
    return env


def spendable_cents(envelope: Envelope) -> int:
    """What may be committed on an envelope: its amount, and never past 15 % for a cité éducative 2020."""
    if envelope.kind is EnvelopeKind.CITE_2020 and envelope.annual_amount_cents is not None:
        return min(envelope.amount_cents, cite_2020_cap(envelope.annual_amount_cents))
    return envelope.amount_cents


def committed_by_envelope(session: Session, envelope_ids: list[int] | None = None) -> dict[int, int]:
    """Money committed per envelope: the unit costs of its active assignments (read from the board's
    counters, kept in every transaction that changes an assignment: a few rows per envelope, not one per
    assignment)."""
    return tallies.committed_cents(session, envelope_ids)


@dataclass
class LotData:
    reference: str
    supplier: str
    envelope_id: int
    warehouse_id: int
    signed_on: date | None = None
    note: str = ""
    unit_costs: dict[int, int] = field(default_factory=dict)  # model id -> cents


def save_lot(session: Session, data: LotData, *, by: User | None, lot: Lot | None = None) -> Lot:
    """Create or update a lot with its unit cost per model (no commit)."""
    scope.require(by, scope.Permission.MANAGE_MONEY)
    reference = data.reference.strip().upper()
    if not reference:
        raise ValidationFailed("La référence du lot est obligatoire.")
    other = session.scalar(sa.select(Lot).where(Lot.reference == reference))
    if other is not None and other is not lot:
        raise Conflict(f"Un lot porte déjà la référence {reference}.")
    if not data.supplier.strip():
        raise ValidationFailed("Le fournisseur est obligatoire.")
    envelope = session.get(Envelope, data.envelope_id)
    if envelope is None:
        raise ValidationFailed("Enveloppe inconnue.")
    warehouse = session.get(Organisation, data.warehouse_id)
    if warehouse is None or warehouse.kind is not OrganisationKind.WAREHOUSE:
        raise ValidationFailed("Le lot doit être livré à un entrepôt.")
    if warehouse.department.region_code != envelope.region_code:
        raise ValidationFailed("L'entrepôt et l'enveloppe doivent être de la même région.")
    if not data.unit_costs:
        raise ValidationFailed("Indiquez le coût unitaire d'au moins un modèle.")
    for model_id, cents in data.unit_costs.items():
        if session.get(DeviceModel, model_id) is None:
            raise ValidationFailed(f"Modèle inconnu : {model_id}.")
        if cents < 0:
            raise ValidationFailed("Un coût unitaire ne peut pas être négatif.")
    lot = lot or Lot()
    if lot.id is not None and lot.warehouse_id != data.warehouse_id and _has_devices(session, lot):
        raise ValidationFailed("Le lot a déjà des équipements : son entrepôt ne peut plus changer.")
    lot.reference = reference
    lot.supplier = data.supplier.strip()
    lot.envelope = envelope
    lot.warehouse = warehouse
    lot.signed_on = data.signed_on
    lot.note = data.note.strip()
    kept = {uc.model_id: uc for uc in lot.unit_costs}
    used = _models_in_use(session, lot)
    dropped = used - set(data.unit_costs)
    if dropped:
        raise ValidationFailed("Un modèle déjà reçu dans ce lot doit garder son coût unitaire.")
    lot.unit_costs = [
        _unit_cost(kept.get(model_id), model_id, cents) for model_id, cents in sorted(data.unit_costs.items())
    ]
    if lot.id is None:
        session.add(lot)
    session.flush()
    return lot


def _unit_cost(row: LotUnitCost | None, model_id: int, cents: int) -> LotUnitCost:
    row = row or LotUnitCost(model_id=model_id)
    row.unit_cost_cents = cents
    return row


def _has_devices(session: Session, lot: Lot) -> bool:
    from ..models import Device

    return session.scalar(sa.select(sa.func.count(Device.id)).where(Device.lot_id == lot.id)) > 0


def _models_in_use(session: Session, lot: Lot) -> set[int]:
    from ..models import Device

    if lot.id is None:
        return set()
    return set(session.scalars(sa.select(Device.model_id).where(Device.lot_id == lot.id).distinct()))


def get_or_create_model(session: Session, kind: DeviceKind, name: str, *, by: User | None) -> DeviceModel:
    """The device model of that kind and name (case-insensitive), created when new."""
    scope.require(by, scope.Permission.MANAGE_MONEY)
    name = " ".join(name.split())
    if not name:
        raise ValidationFailed("Le nom du modèle est obligatoire.")
    model = find_model(session, kind, name)
    if model is None:
        model = DeviceModel(kind=kind, name=name)
        session.add(model)
        session.flush()
    return model


def find_model(session: Session, kind: DeviceKind, name: str) -> DeviceModel | None:
    """The model of that kind whose name matches, ignoring case and repeated spaces."""
    name = " ".join((name or "").split()).lower()
    return session.scalar(
        sa.select(DeviceModel).where(DeviceModel.kind == kind, sa.func.lower(DeviceModel.name) == name)
    )
