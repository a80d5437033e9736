"""Assigning a device to a pupil commits money and a quota; cancelling before shipping gives both back."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session, joinedload

from ..db import utcnow
from ..formatting import euros
from ..models import (
    AllocationLine,
    AllocationPlan,
    Assignment,
    Department,
    Device,
    DeviceModel,
    DeviceStatus,
    Envelope,
    EnvelopeKind,
    NeedKind,
    Organisation,
    PlanStatus,
    Pupil,
    Role,
    User,
)
from . import devices, scope, tallies
from .errors import BusinessRuleViolation, Conflict, Forbidden, InvalidTransition, NotFound
from .money import committed_by_envelope, spendable_cents
from .pupils import active_assignment, pupil_filter


def unit_cost(device: Device) -> int:
    """The device's unit cost in its lot."""
    for row in device.lot.unit_costs:
        if row.model_id == device.model_id:
            return row.unit_cost_cents
    raise BusinessRuleViolation(f"Le modèle de {device.serial} n'a pas de coût unitaire dans son lot.")


def applied_plan(session: Session, region_code: str, *, lock: bool = False) -> AllocationPlan | None:
    """The allocation plan in force in a region, if one was applied."""
    query = sa.select(AllocationPlan).where(
        AllocationPlan.region_code == region_code, AllocationPlan.status == PlanStatus.APPLIED
    )
    if lock:
        query = query.with_for_update()
    return session.scalar(query)


def quota_used(session: Session, qpv_code: str, kind: NeedKind) -> int:
    """Active assignments of that kind for pupils of that QPV (from the board's counters)."""
    return tallies.active_assignments(session, qpv_code, kind)


def _region_of_department(session: Session, code: str) -> str:
    return session.scalar(sa.select(Department.region_code).where(Department.code == code))


def available_devices(session: Session, user: User | None, pupil: Pupil) -> dict[NeedKind, list[Device]]:
    """Up to 30 devices of each kind the pupil still needs that may be assigned to them (in stock in their
    region, within the user's scope), for a pick list."""
    region = _region_of_department(session, pupil.qpv.department_code)
    offer: dict[NeedKind, list[Device]] = {}
    for kind in pupil.needs:
        if active_assignment(pupil, kind) is not None:
            continue
        offer[kind] = list(
            session.scalars(
                sa.select(Device)
                .join(DeviceModel, Device.model_id == DeviceModel.id)
                .join(Organisation, Device.warehouse_id == Organisation.id)
                .join(Department, Organisation.department_code == Department.code)
                .where(
                    Device.status.in_(devices.sources("assign")),
                    DeviceModel.kind == kind.device_kind,
                    Department.region_code == region,
                    scope.device_filter(user),
                )
                .options(joinedload(Device.model), joinedload(Device.warehouse))
                .order_by(Device.id)
                .limit(30)
            )
        )
    return offer


def assign(
    session: Session, *, pupil: Pupil, device: Device, by: User | None, now: datetime | None = None
) -> Assignment:
    """Give ``device`` to ``pupil``: state, scope, need, money and quota checked; one event (no commit)."""
    if not devices.may("assign", by):
        raise Forbidden("Votre rôle ne permet pas d'attribuer un équipement.")
    if session.scalar(sa.select(Pupil.id).where(Pupil.id == pupil.id, pupil_filter(by))) is None:
        raise NotFound("Élève introuvable, ou hors de votre périmètre.")
    if session.scalar(sa.select(Device.id).where(Device.id == device.id, scope.device_filter(by))) is None:
        raise NotFound("Équipement introuvable, ou hors de votre périmètre.")
    if pupil.purged_at is not None:
        raise BusinessRuleViolation("Les données de cet élève ont été effacées : l'opération est close.")
    region = _region_of_department(session, pupil.qpv.department_code)
    warehouse = session.get(Organisation, device.warehouse_id)
    if _region_of_department(session, warehouse.department_code) != region:
        raise BusinessRuleViolation(
            f"L'équipement {device.serial} est dans le stock d'une autre région "
            f"que l'élève {pupil.reference}."
        )
    kind = NeedKind.for_device(device.model.kind)
    if kind not in pupil.needs:
        raise BusinessRuleViolation(
            f"L'élève {pupil.reference} n'a pas de besoin « {kind.label_lower} » : "
            f"un équipement {device.model.kind.label_lower} ne lui est pas destiné."
        )
    if not devices.allows("assign", device.status):
        raise InvalidTransition(
            f"L'équipement {device.serial} n'est pas disponible : il est « {device.status.label} ».",
            code="device_taken",
        )
    current = active_assignment(pupil, kind)
    if current is not None:
        raise Conflict(
            f"L'élève {pupil.reference} a déjà un équipement « {kind.label_lower} » attribué "
            f"({current.device.serial}).",
            code="pupil_served",
        )
    # Money: lock the envelope so that two assignments cannot both take its last euros. FOR NO KEY UPDATE
    # (key_share): it still queues assignments on one envelope, but not the foreign-key checks of others
    # writing a new board counter of that envelope, which would otherwise deadlock with us on PostgreSQL.
    envelope = session.scalar(
        sa.select(Envelope).where(Envelope.id == device.lot.envelope_id).with_for_update(key_share=True)
    )
    cost = unit_cost(device)
    committed = committed_by_envelope(session, [envelope.id]).get(envelope.id, 0)
    if committed + cost > spendable_cents(envelope):
        rule = " (plafond de 15 % de la cité éducative)" if envelope.kind is EnvelopeKind.CITE_2020 else ""
        raise BusinessRuleViolation(
            f"L'enveloppe « {envelope.label} » serait dépassée{rule} : il reste "
            f"{euros(spendable_cents(envelope) - committed)}, l'équipement coûte {euros(cost)}.",
            code="envelope_exceeded",
        )
    plan = applied_plan(session, region, lock=True)
    if plan is not None:
        quota = (
            session.scalar(
                sa.select(AllocationLine.quota).where(
                    AllocationLine.plan_id == plan.id,
                    AllocationLine.qpv_code == pupil.qpv_code,
                    AllocationLine.kind == kind,
                )
            )
            or 0
        )
        if quota_used(session, pupil.qpv_code, kind) + 1 > quota:
            raise BusinessRuleViolation(
                f"Le quota du QPV {pupil.qpv_code} pour « {kind.label_lower} » est atteint ({quota}) "
                "dans le plan de répartition en vigueur.",
                code="quota_reached",
            )
    now = now or utcnow()
    devices.transition(session, device, "assign", by=by, reason=f"Attribué à {pupil.reference}", now=now)
    assignment = Assignment(
        device_id=device.id,
        pupil_id=pupil.id,
        kind=kind,
        qpv_code=pupil.qpv_code,
        organisation_id=pupil.organisation_id,
        envelope_id=envelope.id,
        unit_cost_cents=cost,
        device_status=DeviceStatus.ASSIGNED,
        created_at=now,
        created_by_id=by.id if by else None,
    )
    session.add(assignment)
    try:
        with session.begin_nested():
            session.flush()
    except sa.exc.IntegrityError as exc:  # the partial unique indexes: someone else was faster
        raise Conflict(
            "Cet équipement ou cet élève vient d'être attribué par quelqu'un d'autre.", code="device_taken"
        ) from exc
    tallies.move_assignment(session, None, tallies.assignment_key(assignment), cost)
    return assignment


def may_open_pupil(user: User | None, assignment: Assignment) -> bool:
    """Whether ``user`` may open the page of the pupil an assignment serves (its coordination, or admins)."""
    if user is None or user.role is Role.ADMIN:
        return True
    return user.role in scope.COORDINATION and assignment.organisation_id == user.organisation_id


def get_assignment(session: Session, user: User | None, assignment_id: int) -> Assignment:
    """An assignment whose pupil is in the user's scope, or NotFound."""
    assignment = session.scalar(
        sa.select(Assignment)
        .join(Pupil, Assignment.pupil_id == Pupil.id)
        .where(Assignment.id == assignment_id, pupil_filter(user))
    )
    if assignment is None:
        raise NotFound("Attribution introuvable, ou hors de votre périmètre.")
    return assignment


def cancel(
    session: Session,
    assignment: Assignment,
    *,
    by: User | None,
    reason: str = "",
    now: datetime | None = None,
) -> None:
    """Cancel an assignment before shipping: the device goes back to stock and the money is released."""
    if not devices.may("unassign", by):
        raise Forbidden("Votre rôle ne permet pas d'annuler une attribution.")
    if assignment.cancelled_at is not None:
        raise Conflict("Cette attribution est déjà annulée.", code="already_cancelled")
    device = assignment.device
    if not devices.allows("unassign", device.status):
        raise InvalidTransition(
            f"Impossible d'annuler : l'équipement {device.serial} est « {device.status.label} » "
            "(une attribution s'annule avant sa mise sur bordereau)."
        )
    now = now or utcnow()
    devices.transition(
        session,
        device,
        "unassign",
        by=by,
        reason=(reason or f"Attribution à {assignment.pupil.reference} annulée"),
        now=now,
    )
    session.flush()  # the transition ended the assignment (``devices.ENDS_ASSIGNMENT``)


SIDE_EXITS = ("mark_defective", "mark_lost", "restock", "take_back")


def record_side_exit(
    session: Session, device: Device, action: str, *, by: User | None, reason: str = ""
) -> None:
    """A device leaves or re-enters the flow outside slips: defective, lost, back in stock, or given back by
    its family (which ends its assignment: see ``devices.ENDS_ASSIGNMENT``)."""
    if action not in SIDE_EXITS:
        raise InvalidTransition("Cette action passe par les attributions, les bordereaux ou les remises.")
    devices.transition(session, device, action, by=by, reason=reason)
