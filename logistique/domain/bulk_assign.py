"""Equipping a class at once: scan to assign (each scanned device goes to the next pupil waiting for it) and
the automatic proposal a coordinator reviews then confirms all or nothing. Every assignment still goes
through :func:`assignments.assign`, so money, quotas, the 15 % cap, scope and races are checked as for one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..models import Assignment, Department, Device, NeedKind, Organisation, Qpv, User
from . import assignments, devices, scope
from .errors import BusinessRuleViolation, Conflict, DomainError, NotFound, ValidationFailed
from .pupils import get_pupil, waiting_list_query
from .slips import parse_scan

# reasons to try the next pupil rather than refuse the scan: this pupil was served meanwhile, or the quota of
# their QPV is reached (a pupil of another QPV may still take the device)
ALREADY_ASSIGNED = "already_assigned_here"  # the device is already assigned within the scanner's structure
_NEXT_PUPIL = {"pupil_served", "quota_reached"}
PROPOSAL_MAX = 200


def find_device(session: Session, user: User | None, code: str) -> Device:
    """The device a scan names (serial, asset tag, or a label's URL), within the user's scope."""
    text = parse_scan(code)
    if not text:
        raise ValidationFailed("Scannez ou saisissez un numéro de série ou une étiquette.")
    found = session.scalar(
        sa.select(Device).where(
            sa.or_(Device.serial == text, Device.asset_tag == text), scope.device_filter(user)
        )
    )
    if found is None:
        raise NotFound(f"Équipement {text} introuvable, ou hors de votre périmètre.")
    return found


def _region_of(session: Session, device: Device) -> str:
    return session.scalar(
        sa.select(Department.region_code)
        .join(Organisation, Organisation.department_code == Department.code)
        .where(Organisation.id == device.warehouse_id)
    )


def _waiting_pupils(session: Session, user: User, kind: NeedKind, region: str, limit: int) -> list[int]:
    """Pupils of the user's organisation waiting for ``kind`` in ``region``, oldest registration first."""
    waiting = waiting_list_query(user)
    return list(
        session.scalars(
            sa.select(waiting.c.pupil_id)
            .join(Qpv, Qpv.code == waiting.c.qpv_code)
            .join(Department, Department.code == Qpv.department_code)
            .where(waiting.c.kind == kind.value, Department.region_code == region)
            .order_by(waiting.c.created_at, waiting.c.pupil_id)
            .limit(limit)
        )
    )


def assign_next(session: Session, code: str, *, by: User, now: datetime | None = None) -> Assignment:
    """Scan to assign: the scanned device goes to the oldest pupil of the coordinator's organisation waiting
    for that kind of device (skipping those whose QPV quota is reached); one assignment, no commit."""
    if by.organisation_id is None or not devices.may("assign", by):
        raise BusinessRuleViolation("L'attribution par scan est celle des coordinateurs d'une structure.")
    device = find_device(session, by, code)
    if not devices.allows("assign", device.status):
        mine = session.scalar(
            sa.select(Assignment).where(
                Assignment.device_id == device.id,
                Assignment.cancelled_at.is_(None),
                Assignment.organisation_id == by.organisation_id,
            )
        )
        if mine is not None:  # scanned twice (a double trigger, a label scanned again): already done
            raise Conflict(
                f"L'équipement {device.serial} est déjà attribué à {mine.pupil.reference} "
                f"({mine.kind.label_lower}) : rien de plus n'est fait.",
                code=ALREADY_ASSIGNED,
            )
        raise Conflict(
            f"L'équipement {device.serial} n'est pas disponible : il est « {device.status.label} ».",
            code="device_taken",
        )
    kind = NeedKind.for_device(device.model.kind)
    last: DomainError | None = None
    for pupil_id in _waiting_pupils(session, by, kind, _region_of(session, device), limit=50):
        pupil = get_pupil(session, by, pupil_id=pupil_id)
        try:
            return assignments.assign(session, pupil=pupil, device=device, by=by, now=now)
        except DomainError as exc:
            if exc.code not in _NEXT_PUPIL:
                raise
            last = exc
    if last is not None:
        raise last
    raise BusinessRuleViolation(
        f"Aucun élève de votre structure n'attend un équipement « {kind.label_lower} » dans cette région.",
        code="nobody_waiting",
    )


@dataclass(frozen=True)
class Pair:
    """One line of a proposal or a batch: a pupil (by reference) and a device (by serial)."""

    pupil: str
    serial: str


def propose(session: Session, *, by: User, count: int) -> list[Pair]:
    """Up to ``count`` (pupil, device) pairs from the waiting list (oldest first) and the regional stock,
    each tried for real inside a savepoint that is then rolled back: what is proposed would pass, money,
    quotas and cap included, as long as nobody else assigns meanwhile (confirmation checks again)."""
    if by.organisation_id is None or not devices.may("assign", by):
        raise BusinessRuleViolation("Les propositions d'attribution sont celles des coordinateurs.")
    if not 1 <= count <= PROPOSAL_MAX:
        raise ValidationFailed(f"Indiquez un nombre d'équipements entre 1 et {PROPOSAL_MAX}.")
    waiting = waiting_list_query(by)
    needs = session.execute(
        sa.select(waiting.c.pupil_id, waiting.c.kind).order_by(waiting.c.created_at, waiting.c.pupil_id)
    ).all()
    pairs: list[Pair] = []
    trial = session.begin_nested()
    try:
        exhausted: set[NeedKind] = set()
        for pupil_id, kind_value in needs:
            kind = NeedKind(kind_value)
            if len(pairs) >= count:
                break
            if kind in exhausted:
                continue
            pupil = get_pupil(session, by, pupil_id=pupil_id)
            offer = assignments.available_devices(session, by, pupil).get(kind, [])
            if not offer:
                exhausted.add(kind)
                continue
            for device in offer[:5]:
                try:
                    with session.begin_nested():
                        assignments.assign(session, pupil=pupil, device=device, by=by)
                except DomainError:
                    continue
                pairs.append(Pair(pupil.reference or "", device.serial))
                break
    finally:
        trial.rollback()
    return pairs


def assign_all(session: Session, pairs: list[Pair], *, by: User) -> list[Assignment]:
    """Confirm a proposal: every pair is assigned, or none (the first refusal, with its line, is raised and
    the request's boundary rolls everything back)."""
    if not pairs:
        raise ValidationFailed("La proposition est vide.")
    if len(pairs) > PROPOSAL_MAX:
        raise ValidationFailed(f"Au plus {PROPOSAL_MAX} attributions à la fois.")
    done = []
    for number, pair in enumerate(pairs, start=1):
        try:
            pupil = get_pupil(session, by, reference=pair.pupil)
            device = find_device(session, by, pair.serial)
            done.append(assignments.assign(session, pupil=pupil, device=device, by=by))
        except DomainError as exc:
            raise type(exc)(
                f"Ligne {number} ({pair.pupil}, {pair.serial}) : {exc.message} Rien n'a été attribué : "
                "faites une nouvelle proposition.",
                code=exc.code,
            ) from exc
    return done
