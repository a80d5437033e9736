"""End of loan (docs/architecture.md, « Retours »): the family brings devices back, a *restitution* with a
receipt; ``domain/return_slips.py`` then takes them back to their warehouse.

The coordinator scans the devices into a draft (nothing changes yet; scanning twice is harmless), then records
it: every device moves (``return_by_family`` or ``return_defective``, which end the assignment) in one
transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session, joinedload

from ..db import rows_changed, utcnow
from ..models import (
    Assignment,
    Device,
    DeviceStatus,
    Restitution,
    RestitutionLine,
    RestitutionStatus,
    Role,
    User,
)
from . import devices, scope, tallies
from .errors import BusinessRuleViolation, Conflict, Forbidden, InvalidTransition, NotFound, ValidationFailed
from .slips import ScanResult, parse_scan

# the state a family's device comes back in → the device transition that records it
RETURN_ACTIONS = {DeviceStatus.RETURNED: "return_by_family", DeviceStatus.DEFECTIVE: "return_defective"}
MAX_LINES = 500


def _coordinator_org(by: User | None) -> int:
    """The organisation a restitution is recorded for: a coordinator's own (family papers are theirs)."""
    if by is None or by.role is not Role.COORDINATOR or by.organisation_id is None:
        raise Forbidden("Seule la coordination d'une structure enregistre les restitutions des familles.")
    return by.organisation_id


# ---------------------------------------------------------------- restitutions: scope and lookup


def get_restitution(session: Session, user: User | None, restitution_id: int) -> Restitution:
    """A restitution and its papers (they carry the pupil's name): coordinators of its organisation only."""
    restitution = session.get(Restitution, restitution_id)
    if (
        restitution is None
        or restitution.status is not RestitutionStatus.RECORDED
        or (
            user is not None
            and (user.role is not Role.COORDINATOR or user.organisation_id != restitution.organisation_id)
        )
    ):
        raise NotFound("Restitution introuvable, ou hors de votre périmètre.")
    return restitution


def open_draft(session: Session, by: User) -> Restitution | None:
    """The restitution this coordinator is scanning, if any."""
    return session.scalar(
        sa.select(Restitution)
        .where(Restitution.created_by_id == by.id, Restitution.status == RestitutionStatus.DRAFT)
        .order_by(Restitution.id.desc())
        .limit(1)
    )


def recent(session: Session, by: User, *, limit: int = 10) -> list[Restitution]:
    """The organisation's last recorded restitutions, newest first."""
    return list(
        session.scalars(
            sa.select(Restitution)
            .where(
                Restitution.organisation_id == _coordinator_org(by),
                Restitution.status == RestitutionStatus.RECORDED,
            )
            .options(joinedload(Restitution.pupil))
            .order_by(Restitution.id.desc())
            .limit(limit)
        )
    )


# ---------------------------------------------------------------- restitutions: scanning a draft


def _find_device(session: Session, text: str) -> Device | None:
    return session.scalar(sa.select(Device).where(sa.or_(Device.serial == text, Device.asset_tag == text)))


def _already_returned(session: Session, device: Device, organisation_id: int) -> str | None:
    """The number of the recorded restitution of this organisation that brought this device back, while the
    device still is what that restitution made of it (a second scan, or a retried request)."""
    if device.status not in RETURN_ACTIONS:
        return None
    return session.scalar(
        sa.select(Restitution.number)
        .join(RestitutionLine, RestitutionLine.restitution_id == Restitution.id)
        .where(
            RestitutionLine.device_id == device.id,
            Restitution.organisation_id == organisation_id,
            Restitution.status == RestitutionStatus.RECORDED,
        )
        .order_by(Restitution.id.desc())
        .limit(1)
    )


@dataclass(frozen=True)
class Added:
    """What adding a device to a restitution did: ``added`` False when it was already there."""

    line: RestitutionLine
    added: bool


def add_device(
    session: Session,
    restitution: Restitution,
    code: str,
    *,
    state: DeviceStatus,
    reason: str = "",
    by: User | None,
) -> Added:
    """Put one device the family brought back on a draft restitution (nothing moves until ``record``).
    Refused in French: a device of another organisation, not handed over, or another pupil's."""
    organisation_id = _coordinator_org(by)
    if restitution.organisation_id != organisation_id:
        raise NotFound("Restitution introuvable, ou hors de votre périmètre.")
    if restitution.status is not RestitutionStatus.DRAFT:
        raise InvalidTransition(f"La restitution {restitution.number} est déjà enregistrée.")
    if state not in RETURN_ACTIONS:
        raise ValidationFailed("État de retour inconnu : « retourné » ou « défectueux ».")
    reason = (reason or "").strip()
    text = parse_scan(code)
    if not text:
        raise ValidationFailed("Code vide : scannez l'étiquette de l'équipement.")
    device = _find_device(session, text)
    if device is None:
        raise NotFound(f"{text} : aucun équipement ne porte ce numéro de série ou cette étiquette.")
    for line in restitution.lines:
        if line.device_id == device.id:
            return Added(line, False)
    assignment = session.scalar(
        sa.select(Assignment).where(Assignment.device_id == device.id, Assignment.cancelled_at.is_(None))
    )
    if assignment is None or assignment.organisation_id != organisation_id:
        number = _already_returned(session, device, organisation_id)
        if number:
            raise Conflict(
                f"{device.serial} a déjà été rendu (restitution {number}).", code="already_returned"
            )
        raise NotFound(
            f"{device.serial} n'a pas été remis par votre structure : ne le reprenez pas, "
            "la famille doit le rendre à la structure qui le lui a prêté."
        )
    action = RETURN_ACTIONS[state]
    devices.check(action, device, by, reason=reason)
    if restitution.pupil_id is not None and restitution.pupil_id != assignment.pupil_id:
        raise BusinessRuleViolation(
            f"{device.serial} a été prêté à un autre élève : une restitution par élève — enregistrez "
            "celle-ci, puis scannez cet équipement dans une nouvelle."
        )
    if len(restitution.lines) >= MAX_LINES:
        raise ValidationFailed(f"Une restitution compte au plus {MAX_LINES} équipements.")
    restitution.pupil_id = assignment.pupil_id
    line = RestitutionLine(
        restitution=restitution,
        device_id=device.id,
        assignment_id=assignment.id,
        qpv_code=assignment.qpv_code,
        kind=assignment.kind,
        state=state,
        reason=reason[:500],
    )
    session.add(line)
    try:
        with session.begin_nested():  # a racing double scan of the same device: the unique line wins
            session.flush()
    except sa.exc.IntegrityError:
        session.expire(restitution, ["lines"])
        existing = next(ln for ln in restitution.lines if ln.device_id == device.id)
        return Added(existing, False)
    return Added(line, True)


def start(session: Session, *, by: User | None, now: datetime | None = None) -> Restitution:
    """The coordinator's draft restitution: the open one, or a new one."""
    organisation_id = _coordinator_org(by)
    assert by is not None
    draft = open_draft(session, by)
    if draft is None:
        draft = Restitution(
            status=RestitutionStatus.DRAFT,
            organisation_id=organisation_id,
            created_at=now or utcnow(),
            created_by_id=by.id,
        )
        session.add(draft)
        session.flush()
    return draft


def scan(
    session: Session, code: str, *, state: DeviceStatus, reason: str = "", by: User | None
) -> ScanResult:
    """One scan on the returns page: the device joins the coordinator's draft; a second scan is harmless;
    anything else is refused and nothing changes."""
    _coordinator_org(by)
    try:
        with session.begin_nested():  # a refused scan leaves nothing behind, not even a new draft
            draft = start(session, by=by)
            done = add_device(session, draft, code, state=state, reason=reason, by=by)
    except (ValidationFailed, NotFound, Conflict, InvalidTransition, BusinessRuleViolation) as exc:
        assert by is not None
        existing = open_draft(session, by)
        count = len(existing.lines) if existing is not None else 0
        return ScanResult("refused", exc.message, count, count, scope.scanned_text(code) or None)
    count = len(draft.lines)
    serial = done.line.device.serial
    if not done.added:
        return ScanResult("already", f"{serial} est déjà dans la restitution.", count, count, serial)
    what = "défectueux" if state is DeviceStatus.DEFECTIVE else "rendu"
    return ScanResult("picked", f"{serial} ajouté ({what}).", count, count, serial)


def remove_device(session: Session, restitution: Restitution, line_id: int, *, by: User | None) -> None:
    """Take a device off a draft restitution (scanned by mistake)."""
    if restitution.organisation_id != _coordinator_org(by):
        raise NotFound("Restitution introuvable, ou hors de votre périmètre.")
    if restitution.status is not RestitutionStatus.DRAFT:
        raise InvalidTransition(f"La restitution {restitution.number} est déjà enregistrée.")
    for line in restitution.lines:
        if line.id == line_id:
            restitution.lines.remove(line)
            if not restitution.lines:
                restitution.pupil_id = None
            session.flush()
            return


def record(
    session: Session, restitution: Restitution, *, by: User | None, now: datetime | None = None
) -> Restitution:
    """Record the draft at once: each device becomes retourne or defectueux (its assignment ends), the
    restitution gets its number and its receipt. Recording it again is harmless."""
    organisation_id = _coordinator_org(by)
    if restitution.organisation_id != organisation_id:
        raise NotFound("Restitution introuvable, ou hors de votre périmètre.")
    if restitution.status is RestitutionStatus.RECORDED:
        return restitution
    if not restitution.lines:
        raise ValidationFailed("Scannez au moins un équipement rendu par la famille.")
    for line in restitution.lines:
        if not devices.allows(RETURN_ACTIONS[line.state], line.device.status):
            raise Conflict(
                f"{line.device.serial} est maintenant « {line.device.status.label} » (rendu ailleurs ?) : "
                "retirez-le de la restitution."
            )
    now = now or utcnow()
    won = rows_changed(
        session.execute(
            sa.update(Restitution)
            .where(Restitution.id == restitution.id, Restitution.status == RestitutionStatus.DRAFT)
            .values(status=RestitutionStatus.RECORDED, returned_at=now, received_by_id=by.id if by else None)
            .execution_options(synchronize_session=False)
        )
    )
    if won != 1:
        raise Conflict("Cette restitution vient d'être enregistrée par ailleurs ; rechargez la page.")
    session.expire(restitution, ["status", "returned_at", "received_by_id"])
    number = f"RS-{restitution.organisation.department_code}-{now.year}-{restitution.id:06d}"
    restitution.number = number
    for line in restitution.lines:
        devices.transition(
            session,
            line.device,
            RETURN_ACTIONS[line.state],
            by=by,
            reason=(line.reason or "Rendu par la famille") + f" — restitution {number}",
            now=now,
        )
        line.outcome = line.state
        tallies.move_return(session, None, (line.qpv_code, line.kind, line.state, line.state))
    session.flush()
    return restitution


@dataclass(frozen=True)
class ReturnItem:
    serial: str
    state: DeviceStatus
    reason: str = ""


def record_return(
    session: Session, items: list[ReturnItem], *, by: User | None, now: datetime | None = None
) -> Restitution:
    """A whole restitution at once (API): every device or none. The same devices sent again, already
    recorded together, give back the first restitution."""
    organisation_id = _coordinator_org(by)
    if not items:
        raise ValidationFailed("Indiquez au moins un équipement rendu.")
    numbers = set()
    for item in items:
        device = _find_device(session, parse_scan(item.serial))
        numbers.add(_already_returned(session, device, organisation_id) if device else None)
    if len(numbers) == 1 and None not in numbers:
        done = session.scalar(sa.select(Restitution).where(Restitution.number == numbers.pop()))
        if done is not None and {ln.device.serial for ln in done.lines} >= {
            parse_scan(i.serial) for i in items
        }:
            return done
    assert by is not None
    restitution = Restitution(
        status=RestitutionStatus.DRAFT,
        organisation_id=organisation_id,
        created_at=now or utcnow(),
        created_by_id=by.id,
    )
    session.add(restitution)
    session.flush()
    for item in items:
        add_device(session, restitution, item.serial, state=item.state, reason=item.reason, by=by)
    return record(session, restitution, by=by, now=now)
